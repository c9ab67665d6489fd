"""Evaluating a detector on a labelled MVTec-layout category: metrics, timings, per-image rows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from . import metrics
from .datasets import mvtec_test_set
from .detector import Detector
from .errors import DatasetLayoutError, ImageReadError
from .images import read_image, read_image_for_scoring, upright_size
from .notices import notify


@dataclass
class Evaluation:
    image_auroc: float
    pixel_auroc: float | None
    aupro: float | None
    image_f1max: float
    n_images: int
    ms_per_image: float  # median wall time per image: decode, predict, map at image size
    rows: list[dict] = field(default_factory=list)  # file, defect, label, score, normalized_score, verdict
    roc: dict = field(default_factory=dict)  # image-level false/true positive rates

    def summary(self) -> dict:
        """The JSON written by `rbd evaluate --json`."""
        keys = ("image_auroc", "pixel_auroc", "aupro", "image_f1max", "n_images", "ms_per_image")
        return {k: getattr(self, k) for k in keys}


def evaluate(detector: Detector, category: str | Path, progress: Callable[[int, int], None] | None = None,
             threshold: float | None = None) -> Evaluation:
    """Score every test image; pixel metrics only when every defective image has a mask.

    `threshold` (default: the detector's) only sets the verdict column of the rows: the metrics
    do not depend on it.
    """
    items = mvtec_test_set(category)
    with_masks = any(item.mask_path for item in items)
    if with_masks and not all(item.mask_path for item in items if item.is_anomalous):
        notify("some defective images have no mask: pixel metrics skipped")
        with_masks = False
    rows, maps, masks, times, skipped, downscaled = [], [], [], [], [], []
    for index, item in enumerate(items):
        start = time.perf_counter()
        try:
            image, notice = read_image_for_scoring(item.path)
            prediction = detector.rethreshold(detector.predict(image), threshold)
            elapsed = time.perf_counter() - start
            if with_masks:
                shape = prediction.anomaly_map.shape
                mask = _read_mask(item.mask_path, item.path, shape) if item.mask_path else np.zeros(shape, bool)
        except ImageReadError as err:
            skipped.append(str(err))
            continue
        downscaled += [notice] if notice else []
        times.append(elapsed)
        rows.append({"file": str(item.path.relative_to(category)), "defect": item.defect, "label": int(item.is_anomalous),
                     "score": prediction.score, "normalized_score": prediction.normalized_score, "verdict": prediction.verdict})
        if with_masks:
            maps.append(prediction.anomaly_map)
            masks.append(mask)
        if progress is not None:
            progress(index + 1, len(items))
    if skipped:
        notify(f"skipped {len(skipped)} file(s): {'; '.join(skipped)}")
    if downscaled:
        notify("; ".join(downscaled))
    labels = np.array([r["label"] for r in rows])
    if len(set(labels.tolist())) < 2:
        raise DatasetLayoutError(f"{category}: image metrics need readable good and defective test images; "
                                 f"only {len(rows)} of {len(items)} could be read, all of one class")
    scores = np.array([r["score"] for r in rows])
    summary = metrics.summarize(labels, scores, masks if with_masks else None, maps if with_masks else None)
    return Evaluation(n_images=len(rows), ms_per_image=round(1000 * float(np.median(times)), 2), rows=rows,
                      roc=metrics.roc_curve(labels, scores), **summary)


def _read_mask(path: Path, image_path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The ground-truth mask at the anomaly map's `shape`: it must match its image's size, and is
    shrunk with it where a huge image was scored downscaled."""
    mask = read_image(path)[..., 0] > 0.5
    width, height = upright_size(image_path)
    if mask.shape != (height, width):
        raise ImageReadError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {width}x{height}")
    if mask.shape != shape:
        mask = np.asarray(Image.fromarray(mask).resize((shape[1], shape[0]), Image.Resampling.NEAREST))
    return mask
