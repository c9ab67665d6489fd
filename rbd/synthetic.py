"""Synthetic defects: the only "anomalies" training ever sees.

Training has normal images alone, so we paint plausible defects onto them (in the spirit of
DRAEM): a random region, either a Perlin-noise blob or a thin scratch, is filled with foreign
content and blended in. The foreign content is either a procedural texture (the tool is
offline, so no texture dataset is downloaded) or displaced content of another normal image.
The student learns to reconstruct the clean features under these regions, and the
prediction-consistency loss learns to light them up in the anomaly map.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw


def perlin_noise(batch: int, height: int, width: int, cells: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """(batch, height, width) 2-D gradient (Perlin) noise with `cells` lattice cells per axis, about in [-1, 1]."""
    cy, cx = cells
    angles = 2 * math.pi * torch.rand(batch, cy + 1, cx + 1, generator=generator)
    gradients = torch.stack((torch.cos(angles), torch.sin(angles)), dim=-1)
    ys = torch.linspace(0, cy, height + 1)[:-1]
    xs = torch.linspace(0, cx, width + 1)[:-1]
    y0, x0 = ys.floor().long(), xs.floor().long()
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]

    def corner(dy: int, dx: int) -> torch.Tensor:
        g = gradients[:, y0 + dy][:, :, x0 + dx]  # (batch, height, width, 2)
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    fade = lambda t: t * t * t * (t * (t * 6 - 15) + 10)  # noqa: E731 - Perlin's quintic
    wy, wx = fade(fy), fade(fx)
    top = corner(0, 0) * (1 - wx) + corner(0, 1) * wx
    bottom = corner(1, 0) * (1 - wx) + corner(1, 1) * wx
    return math.sqrt(2) * (top * (1 - wy) + bottom * wy)


def smooth_noise(height: int, width: int, cells: tuple[int, int], generator: torch.Generator, coarse: int = 4) -> torch.Tensor:
    """(height, width) Perlin noise computed on a grid `coarse` times coarser and upsampled.

    The field is smooth anyway, so this looks the same at a fraction of the cost, which matters:
    defects are painted on every training batch, on the same two cores as the network.
    """
    small = perlin_noise(1, -(-height // coarse), -(-width // coarse), cells, generator)
    return F.interpolate(small[None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]


def blob_mask(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A binary (height, width) mask of Perlin blobs covering a few percent of the image."""
    for _ in range(10):
        cells = tuple(2 ** int(torch.randint(1, 5, (1,), generator=generator)) for _ in range(2))
        mask = smooth_noise(height, width, cells, generator) > 0.5
        if mask.any():
            return mask.float()
    return mask.float()


def scratch_mask(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A binary mask of one to three thin, wandering strokes, like cracks and scratches."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    for _ in range(rng.integers(1, 4)):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        heading = rng.uniform(0, 2 * math.pi)
        points = [(x, y)]
        step = max(height, width) / 40
        for _ in range(rng.integers(4, 20)):
            heading += rng.normal(0, 0.4)
            x, y = x + step * math.cos(heading), y + step * math.sin(heading)
            points.append((x, y))
        draw.line(points, fill=255, width=int(rng.integers(1, max(2, max(height, width) // 64) + 1)))
    return torch.from_numpy(np.asarray(canvas) > 0).float()


def foreign_texture(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A (3, height, width) procedural texture: coloured Perlin octaves plus fine noise."""
    texture = torch.zeros(3, height, width)
    for octave in range(int(torch.randint(1, 4, (1,), generator=generator))):
        cells = (2 ** (octave + 2), 2 ** (octave + 2))
        noise = smooth_noise(height, width, cells, generator)
        colour = torch.rand(3, 1, 1, generator=generator) * 2 - 1
        texture += colour * noise / (octave + 1)
    base = torch.rand(3, 1, 1, generator=generator)
    grain = 0.1 * torch.rand(1, generator=generator) * torch.randn(1, height, width, generator=generator)
    return (base + 0.5 * texture + grain).clamp(0, 1)


def displaced_content(images: torch.Tensor, index: int, generator: torch.Generator) -> torch.Tensor:
    """Another image of the batch (the same one only in a batch of one), shifted and brightness-jittered."""
    n = images.shape[0]
    source = images[(index + int(torch.randint(1, n, (1,), generator=generator))) % n if n > 1 else index]
    h, w = source.shape[-2:]
    shift = (int(torch.randint(-h // 2, h // 2 + 1, (1,), generator=generator)), int(torch.randint(-w // 2, w // 2 + 1, (1,), generator=generator)))
    moved = torch.roll(source, shifts=shift, dims=(-2, -1))
    if torch.rand(1, generator=generator) < 0.5:
        moved = moved.flip(-1)
    gain = 0.6 + 0.8 * torch.rand(1, generator=generator)
    offset = 0.3 * (torch.rand(1, generator=generator) - 0.5)
    return (moved * gain + offset).clamp(0, 1)


MIN_VISIBLE_CHANGE = 0.05  # mean absolute change per defect pixel (image range 0..1) below which we repaint


def _grey_if(grey: bool, fill: torch.Tensor) -> torch.Tensor:
    """Grey inputs get grey defects: a colour cast would be a give-away no real defect has."""
    return fill.mean(dim=0, keepdim=True).expand_as(fill) if grey else fill


def _fallback_fills(image: torch.Tensor, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Fills for a defect that came out invisible: two fresh textures, then the image's opposite
    (white on dark, black on bright), which always shows."""
    for _ in range(2):
        yield foreign_texture(image.shape[1], image.shape[2], generator)
    yield (image < 0.5).float()


def add_defects(images: torch.Tensor, generator: torch.Generator, probability: float = 0.7) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt each image of a (B, 3, H, W) batch in [0, 1] with probability `probability`.

    Returns the corrupted batch and the (B, 1, H, W) defect masks (all zero where untouched).
    The region is blended with opacity in [0.25, 1] so that faint defects are seen too.
    """
    batch, _, height, width = images.shape
    corrupted, masks = images.clone(), torch.zeros(batch, 1, height, width)
    grey = (images.amax(dim=1) - images.amin(dim=1)).flatten(1).amax(dim=1) < 1e-3
    for i in range(batch):
        if torch.rand(1, generator=generator) >= probability:
            continue
        use_scratch = torch.rand(1, generator=generator) < 0.4
        mask = (scratch_mask if use_scratch else blob_mask)(height, width, generator)
        use_texture = torch.rand(1, generator=generator) < 0.5
        fill = foreign_texture(height, width, generator) if use_texture else displaced_content(images, i, generator)
        opacity = 0.25 + 0.75 * torch.rand(1, generator=generator)
        fallbacks = _fallback_fills(images[i], generator)
        change = opacity * mask * (_grey_if(grey[i], fill) - images[i])
        while change.abs().mean(dim=0).sum() < MIN_VISIBLE_CHANGE * mask.sum():  # invisible: nothing to learn from
            change = mask * (_grey_if(grey[i], next(fallbacks)) - images[i])
        corrupted[i] = images[i] + change
        masks[i, 0] = mask
    return corrupted, masks


def feature_dropout(features: torch.Tensor, generator: torch.Generator, fraction: float = 0.1) -> torch.Tensor:
    """Zero random square patches of a (B, C, h, w) feature map: the student must infer them."""
    batch, _, h, w = features.shape
    side = max(1, min(h, w) // 8)
    keep = torch.rand(batch, 1, -(-h // side), -(-w // side), generator=generator) >= fraction
    keep = F.interpolate(keep.float(), scale_factor=side, mode="nearest")[..., :h, :w]
    return features * keep.to(features.device, features.dtype)
