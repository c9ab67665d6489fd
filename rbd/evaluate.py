"""Evaluating a detector on a labelled MVTec-layout category: metrics, timings, per-image rows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import metrics
from .datasets import mvtec_test_set
from .detector import Detector
from .errors import ImageReadError
from .images import read_image
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
    rows, maps, masks, times = [], [], [], []
    for index, item in enumerate(items):
        start = time.perf_counter()
        try:
            prediction = detector.rethreshold(detector.predict(read_image(item.path)), threshold)
        except ImageReadError as err:
            notify(f"skipped: {err}")
            continue
        times.append(time.perf_counter() - start)
        rows.append({"file": str(item.path.relative_to(category)), "defect": item.defect, "label": int(item.is_anomalous),
                     "score": prediction.score, "normalized_score": prediction.normalized_score, "verdict": prediction.verdict})
        if with_masks:
            maps.append(prediction.anomaly_map)
            masks.append(_read_mask(item.mask_path, prediction.anomaly_map.shape) if item.mask_path else np.zeros(prediction.anomaly_map.shape, bool))
        if progress is not None:
            progress(index + 1, len(items))
    labels = np.array([r["label"] for r in rows])
    scores = np.array([r["score"] for r in rows])
    summary = metrics.summarize(labels, scores, masks if with_masks else None, maps if with_masks else None)
    return Evaluation(n_images=len(rows), ms_per_image=round(1000 * float(np.median(times)), 2), rows=rows,
                      roc=metrics.roc_curve(labels, scores), **summary)


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    mask = read_image(path)[..., 0] > 0.5
    if mask.shape != shape:
        raise ImageReadError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {shape[1]}x{shape[0]}")
    return mask
