"""Fitting images of any size to the model and bringing anomaly maps back to the image.

Squashing a long strip (ksdd parts are about 1:2.5) into a square makes thin cracks thinner
still, so we keep the aspect ratio: the short side is resized to `image_size` and the long
side follows (capped at `max_aspect` times the short side). Both sides are then rounded to a
multiple of the network's coarsest stride (`ModelConfig.input_multiple`), a stretch of at most a
few percent. We resize
rather than pad because padding puts content at the image edge that training never saw,
and the map lights up there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

@dataclass(frozen=True)
class Fit:
    """An image of `size` (h, w) is fed to the model at `input` (h, w)."""

    size: tuple[int, int]
    input: tuple[int, int]


def fit(height: int, width: int, image_size: int, max_aspect: float, multiple: int) -> Fit:
    """Short side -> `image_size`, long side in proportion up to `max_aspect`, both multiples of `multiple`."""
    short, long = min(height, width), max(height, width)
    long_scaled = min(long * image_size / short, image_size * max_aspect)
    sides = tuple(max(multiple, round(side / multiple) * multiple) for side in (image_size, long_scaled))
    return Fit((height, width), sides if height <= width else sides[::-1])


def to_input(image: np.ndarray, fitted: Fit) -> torch.Tensor:
    """(H, W, 3) float array in [0, 1] -> (3, h, w) tensor at the model input size."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    if fitted.input != fitted.size:
        shrinking = fitted.input[0] < fitted.size[0] or fitted.input[1] < fitted.size[1]
        x = F.interpolate(x, size=fitted.input, mode="bilinear", align_corners=False, antialias=shrinking)
    return x[0].clamp_(0.0, 1.0)


def to_image_size(maps: torch.Tensor, fitted: Fit) -> torch.Tensor:
    """(..., h, w) maps at the model input size -> (..., H, W) at the image's size."""
    if fitted.input == fitted.size:
        return maps
    lead = maps.shape[:-2]
    resized = F.interpolate(maps.reshape(-1, 1, *fitted.input), size=fitted.size, mode="bilinear", align_corners=False)
    return resized.reshape(*lead, *fitted.size)
