"""Pictures of a prediction: heat-map overlays and masks, on a colour scale anchored to the threshold.

Each pixel's colour is its normalised score (the same logistic map as the image's normalised
score, 0.5 at the threshold), so one colour means the same evidence on every image: the middle
of the colour map is exactly "at the threshold", whatever the image's own range.
"""

from __future__ import annotations

import matplotlib
import numpy as np

from .calibration import Calibration
from .images import to_uint8

COLORMAP = "turbo"


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


def mask_image(mask: np.ndarray) -> np.ndarray:
    """(H, W) uint8, 255 on defect pixels: the PNG masks rbd writes."""
    return mask.astype(np.uint8) * 255
