"""Pictures of a prediction: heat-map overlays and masks, on a colour scale anchored to the threshold.

Each pixel's colour is its normalised score (the same logistic map as the image's normalised
score, 0.5 at the threshold), so one colour means the same evidence on every image: the middle
of the colour map is exactly "at the threshold", whatever the image's own range.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np

from .calibration import Calibration
from .images import to_uint8

COLORMAP = "turbo"
OUTLINE = (255, 0, 255)  # magenta: a colour the heat map never takes, for masks drawn over it
# What the app shows of one image and lets the inspector paint on, at most: a browser took half a
# minute to open a 4096 x 3277 mask editor and over a minute to send it back, and the overlay took
# 10 s to draw; a mask is drawn by hand, so a megapixel is plenty. A pixel budget, not a side, so
# that a long strip keeps its height.
SHOWN_PIXELS = 1024 * 1024


def shown_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) at which the app shows and edits an image: its own size, or shrunk to SHOWN_PIXELS."""
    scale = min(1.0, math.sqrt(SHOWN_PIXELS / (height * width)))
    return max(1, round(height * scale)), max(1, round(width * scale))


def subsample_step(height: int, width: int, max_side: int) -> int:
    """The `step` of `subsample` for an array of height x width."""
    return -(-max(height, width) // max_side)


def subsample(array: np.ndarray, max_side: int) -> np.ndarray:
    """Every `step`-th pixel, so the long side is at most `max_side`: a cheap, exact-colour shrink
    (fine for smooth maps and the masks cut from them; `rbd.review.editor_canvas` shrinks a hand-drawn
    mask so that a one-pixel line survives)."""
    step = subsample_step(*array.shape[:2], max_side)
    return array[::step, ::step]


def heatmap(anomaly_map: np.ndarray, calibration: Calibration, threshold: float) -> np.ndarray:
    """(H, W, 3) uint8 colour image of the per-pixel normalised score."""
    colours = matplotlib.colormaps[COLORMAP](calibration.normalize(anomaly_map, threshold))[..., :3]
    return (colours * 255).astype(np.uint8)


def overlay(image: np.ndarray, anomaly_map: np.ndarray, calibration: Calibration, threshold: float, opacity: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8: the image (RGB, uint8 or float in [0, 1]) blended with its heat map."""
    if image.shape[:2] != anomaly_map.shape:
        raise ValueError(f"image {image.shape[:2]} and map {anomaly_map.shape} differ in size")
    base = image.astype(np.float32) / 255 if image.dtype == np.uint8 else image
    colours = heatmap(anomaly_map, calibration, threshold).astype(np.float32) / 255
    blended = (1 - opacity) * base + opacity * colours
    return to_uint8(blended)


def outlined(image: np.ndarray, mask: np.ndarray, width: int = 2) -> np.ndarray:
    """(H, W, 3) uint8: `image` with the edge of `mask` drawn in OUTLINE, `width` pixels inside the
    mask, so that a mask one pixel wide is drawn whole and nothing outside it is covered."""
    inner = mask
    for _ in range(width):
        padded = np.pad(inner, 1, constant_values=False)
        inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    drawn = image.copy()
    drawn[mask & ~inner] = OUTLINE
    return drawn


def mask_image(mask: np.ndarray) -> np.ndarray:
    """(H, W) uint8, 255 on defect pixels: the PNG masks rbd writes."""
    return mask.astype(np.uint8) * 255


def colour_scale(stops: int = 11) -> list[tuple[float, str]]:
    """(normalised score, "#rrggbb") at evenly spaced points of the heat map's colours, for a legend:
    0.5, the middle, is the threshold."""
    positions = np.linspace(0.0, 1.0, stops)
    colours = (matplotlib.colormaps[COLORMAP](positions)[:, :3] * 255).round().astype(int)
    return [(float(p), "#{:02x}{:02x}{:02x}".format(*c)) for p, c in zip(positions, colours)]


def fold(image: np.ndarray, max_aspect: float = 4.0, gap: int = 6, fill=255) -> np.ndarray:
    """A long strip cut into equal pieces laid below (or, for a tall one, beside) each other with a
    `gap` of `fill` between them, so a 2000 x 50 weld seam shows as a block a person can read
    instead of a sliver; an image within `max_aspect` comes back as it is. Works on images and masks."""
    height, width = image.shape[:2]
    if _folding(min(height, width), max(height, width), max_aspect)[0] <= 1:
        return image  # itself, also when tall: callers tell "not folded" by identity
    if height > width:  # a tall strip: fold its transpose, so the pieces stand side by side
        return np.swapaxes(fold(np.swapaxes(image, 0, 1), max_aspect, gap, fill), 0, 1)
    pieces, step = _folding(height, width, max_aspect)
    out = np.full((*folded_shape(height, width, max_aspect, gap), *image.shape[2:]), fill, dtype=image.dtype)
    for i in range(pieces):
        piece = image[:, i * step:(i + 1) * step]
        out[i * (height + gap):i * (height + gap) + height, :piece.shape[1]] = piece
    return out


def unfold(folded: np.ndarray, height: int, width: int, max_aspect: float = 4.0, gap: int = 6) -> np.ndarray:
    """The inverse of `fold` for an image of `height` x `width`: the pieces laid end to end again
    (whatever was drawn in the gaps is dropped), e.g. a mask painted on a folded strip."""
    if height > width:
        return np.swapaxes(unfold(np.swapaxes(folded, 0, 1), width, height, max_aspect, gap), 0, 1)
    pieces, step = _folding(height, width, max_aspect)
    if pieces <= 1:
        return folded
    return np.concatenate([folded[i * (height + gap):i * (height + gap) + height, :min(step, width - i * step)]
                           for i in range(pieces)], axis=1)


def folded_shape(height: int, width: int, max_aspect: float = 4.0, gap: int = 6) -> tuple[int, int]:
    """(height, width) of `fold` of an image of `height` x `width`."""
    if height > width:
        return folded_shape(width, height, max_aspect, gap)[::-1]
    pieces, step = _folding(height, width, max_aspect)
    return (height, width) if pieces <= 1 else (pieces * height + (pieces - 1) * gap, step)


def _folding(height: int, width: int, max_aspect: float) -> tuple[int, int]:
    """(pieces, width of each) that `fold` cuts a wide image of height x width into."""
    pieces = int(np.ceil(np.sqrt(width / height / max_aspect)))
    return pieces, -(-width // max(pieces, 1))
