"""Anomaly-detection metrics: AUROC, F1-max and AUPRO on numpy arrays.

Only numpy and scipy are used, so evaluation does not depend on scikit-learn.
All metrics are computed exactly from the distinct score values (tied scores
are handled as in the Mann-Whitney U statistic), never on a coarse grid
unless one is asked for explicitly (``aupro(..., num_thresholds=n)``).
"""

from __future__ import annotations

import numpy as np

from .calibration import is_defective
from .regions import label


def _as_labels(labels) -> np.ndarray:
    """Return ``labels`` as a 1-D bool array, rejecting anything not binary."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    if arr.dtype != bool:
        if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
            raise ValueError("labels must be binary (bool or 0/1)")
        arr = arr.astype(bool)
    return arr


def _as_scores(scores) -> np.ndarray:
    """Return ``scores`` as a 1-D numeric array; NaN would break sorting."""
    arr = np.asarray(scores)
    if arr.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"scores must be numeric, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError("scores must be finite (found NaN or inf)")
    return arr


def _labels_and_scores(labels, scores) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Validate a (labels, scores) pair; return them with the class counts."""
    labels, scores = _as_labels(labels), _as_scores(scores)
    if labels.shape != scores.shape:
        raise ValueError(
            f"labels and scores must have the same length, got {labels.size} and {scores.size}"
        )
    n_pos = int(labels.sum())
    return labels, scores, n_pos, labels.size - n_pos


def _counts_per_score(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative counts per distinct score, highest score first.

    Grouping by distinct score is what makes ties exact: a threshold can never
    separate samples with equal scores.
    """
    values, levels = np.unique(scores, return_inverse=True)
    pos = np.bincount(levels[labels], minlength=values.size)
    neg = np.bincount(levels, minlength=values.size) - pos
    return pos[::-1], neg[::-1]


def auroc(labels, scores) -> float:
    """Area under the ROC curve, used for both image- and pixel-level AUROC.

    Computed as the Mann-Whitney U statistic: the probability that a random
    positive scores higher than a random negative, counting ties as 1/2. This
    equals the trapezoidal area under the ROC curve, ties included.
    """
    labels, scores, n_pos, n_neg = _labels_and_scores(labels, scores)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"AUROC needs both classes, got {n_pos} positive and {n_neg} negative samples"
        )
    pos, neg = _counts_per_score(labels, scores)
    pos_above = np.cumsum(pos) - pos
    u = np.sum(neg * (pos_above + 0.5 * pos))
    return float(u / (n_pos * n_neg))


def roc_curve(labels, scores) -> dict:
    """ROC points from the strictest threshold to the loosest: {"fpr": [...], "tpr": [...], "thresholds": [...]}.

    One point per distinct score (samples with equal scores move together), starting at (0, 0).
    """
    labels, scores, n_pos, n_neg = _labels_and_scores(labels, scores)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"a ROC curve needs both classes, got {n_pos} positive and {n_neg} negative samples")
    pos, neg = _counts_per_score(labels, scores)
    thresholds = np.unique(scores)[::-1]
    return {
        "fpr": [0.0] + (np.cumsum(neg) / n_neg).tolist(),
        "tpr": [0.0] + (np.cumsum(pos) / n_pos).tolist(),
        "thresholds": [float("inf")] + thresholds.tolist(),
    }


def f1_max(labels, scores) -> float:
    """Best F1 score over all thresholds.

    Every distinct score is tried as a threshold (predicted positive if
    ``score >= threshold``), so this is the F1 an oracle-chosen threshold
    would reach, independent of score calibration.
    """
    labels, scores, n_pos, _ = _labels_and_scores(labels, scores)
    if n_pos == 0:
        raise ValueError("F1-max needs at least one positive sample")
    pos, neg = _counts_per_score(labels, scores)
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    # F1 = 2 TP / (2 TP + FP + FN) and TP + FN = n_pos.
    return float(np.max(2 * tp / (tp + fp + n_pos)))


def at_threshold(labels, scores, threshold: float) -> dict:
    """What verdicts at `threshold` get right and wrong: the share of normal images flagged (false
    alarms) and of defective images found (recall), with their counts; a score at the threshold
    is defective (`calibration.is_defective`). A rate is None when its class is absent."""
    labels, scores, n_pos, n_neg = _labels_and_scores(labels, scores)
    flagged = is_defective(scores, threshold)
    false_alarms, found = int((flagged & ~labels).sum()), int((flagged & labels).sum())
    return {"threshold": float(threshold), "false_alarm_rate": false_alarms / n_neg if n_neg else None,
            "false_alarms": false_alarms, "good_images": n_neg,
            "recall": found / n_pos if n_pos else None, "found": found, "defective_images": n_pos}


def _as_images(images, name: str) -> list[np.ndarray]:
    """Accept one (H, W) image, an (N, H, W) array or a list of (H, W) arrays."""
    if isinstance(images, np.ndarray):
        if images.ndim == 2:
            return [images]
        if images.ndim != 3:
            raise ValueError(
                f"{name} must be (H, W), (N, H, W) or a list of (H, W) arrays, "
                f"got shape {images.shape}"
            )
        return list(images)
    out = [np.asarray(image) for image in images]
    for i, image in enumerate(out):
        if image.ndim != 2:
            raise ValueError(f"{name}[{i}] must be 2-D (H, W), got shape {image.shape}")
    return out


def _image_pairs(masks, maps) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validate that masks and anomaly maps match image by image."""
    masks, maps = _as_images(masks, "masks"), _as_images(maps, "maps")
    if len(masks) != len(maps):
        raise ValueError(f"got {len(masks)} masks but {len(maps)} anomaly maps")
    if not masks:
        raise ValueError("need at least one image")
    for i, (mask, amap) in enumerate(zip(masks, maps)):
        if mask.shape != amap.shape:
            raise ValueError(
                f"image {i}: mask shape {mask.shape} != anomaly map shape {amap.shape}"
            )
    return masks, maps


def _concat_maps(maps: list[np.ndarray]) -> np.ndarray:
    """Flatten all maps into one array, written in place to save memory: float32 (rbd's maps) unless a
    map needs more (float64 maps, integers), whose values float32 would round into ties or overflow."""
    dtype = np.result_type(np.float32, *(amap.dtype for amap in maps))
    scores = np.empty(sum(amap.size for amap in maps), dtype=dtype if np.issubdtype(dtype, np.floating) else np.float64)
    offset = 0
    for amap in maps:
        scores[offset : offset + amap.size] = amap.ravel()
        offset += amap.size
    return scores


def pixel_auroc(masks, maps) -> float:
    """Pixel-level AUROC over all pixels of all images.

    Masks may be bool, 0/1 or 0/255 (anything > 0 is anomalous); images may
    differ in size when given as lists. float32 maps are pooled as float32 to
    keep ~100 images of 640x256 within a few hundred MB.
    """
    masks, maps = _image_pairs(masks, maps)
    labels = np.concatenate([(mask > 0).ravel() for mask in masks])
    return auroc(labels, _concat_maps(maps))


def _partial_area(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoidal area under a curve with non-decreasing x, from x[0] to x_max.

    The curve is linearly interpolated at exactly ``x_max`` so the result does
    not depend on where the last threshold happens to fall.
    """
    n_inside = int(np.searchsorted(x, x_max, side="right"))
    xs, ys = x[:n_inside], y[:n_inside]
    if n_inside < x.size:
        x0, x1, y0, y1 = x[n_inside - 1], x[n_inside], y[n_inside - 1], y[n_inside]
        xs = np.append(xs, x_max)
        ys = np.append(ys, y0 + (y1 - y0) * (x_max - x0) / (x1 - x0))
    return float(np.trapezoid(ys, xs))


def aupro(masks, maps, fpr_limit: float = 0.3, num_thresholds: int | None = None) -> float:
    """Normalized area under the per-region-overlap (PRO) curve, as in MVTec AD.

    PRO weights every connected defect region equally (3x3 connectivity), so
    small defects count as much as large ones, unlike pixel AUROC. For each
    threshold, PRO is the mean over all regions of the fraction of the region
    predicted anomalous (``map >= threshold``), and the FPR is taken over all
    normal pixels of all images, defect-free images included. PRO is
    integrated over FPR in [0, fpr_limit] (trapezoidal rule, interpolated at
    ``fpr_limit``) and divided by ``fpr_limit`` so a perfect map scores 1.0.

    By default the curve is exact: every distinct map value is a threshold,
    like the official MVTec evaluation code. ``num_thresholds=n`` instead uses
    n evenly spaced thresholds over the map value range (approximate, cheaper
    when maps have very many distinct values).
    """
    if not 0 < fpr_limit <= 1:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    if num_thresholds is not None and num_thresholds < 2:
        raise ValueError(f"num_thresholds must be None or >= 2, got {num_thresholds}")
    masks, maps = _image_pairs(masks, maps)

    # Region id per pixel: 0 for normal pixels, 1..n_regions for defect regions.
    region_ids = []
    n_regions = 0
    for mask in masks:
        labeled, n = label(mask)  # 8-connectivity, the MVTec AD convention
        labeled[labeled > 0] += n_regions
        region_ids.append(labeled.ravel())
        n_regions += n
    region = np.concatenate(region_ids)
    del region_ids
    if n_regions == 0:
        raise ValueError("AUPRO needs at least one anomalous pixel, but all masks are empty")
    sizes = np.bincount(region, minlength=n_regions + 1)
    if sizes[0] == 0:
        raise ValueError("AUPRO needs normal pixels to measure false positives, found none")

    scores = _as_scores(_concat_maps(maps))
    # levels[i] = index of the highest threshold that pixel i reaches.
    if num_thresholds is None:
        thresholds, levels = np.unique(scores, return_inverse=True)
    else:
        thresholds = np.linspace(scores.min(), scores.max(), num_thresholds)
        levels = np.searchsorted(thresholds, scores, side="right") - 1
    del scores

    normal = region == 0
    false_pos = np.bincount(levels[normal], minlength=thresholds.size)
    region_weight = 1.0 / (sizes * n_regions)  # each region contributes 1 / n_regions in total
    overlap = np.bincount(
        levels[~normal], weights=region_weight[region[~normal]], minlength=thresholds.size
    )
    # Sweep thresholds from high to low; (0, 0) is the threshold above the maximum.
    fpr = np.concatenate(([0.0], np.cumsum(false_pos[::-1]) / sizes[0]))
    pro = np.concatenate(([0.0], np.cumsum(overlap[::-1])))
    return _partial_area(fpr, pro, fpr_limit) / fpr_limit


def summarize(labels, scores, masks=None, maps=None) -> dict:
    """Standard report: image AUROC / F1-max, plus pixel AUROC / AUPRO.

    Pixel metrics are None when no masks are given or every mask is empty,
    since they are undefined without anomalous pixels.
    """
    result = {
        "image_auroc": auroc(labels, scores),
        "image_f1max": f1_max(labels, scores),
        "pixel_auroc": None,
        "aupro": None,
    }
    if masks is None:
        return result
    if maps is None:
        raise ValueError("maps are required when masks are given")
    masks, maps = _image_pairs(masks, maps)
    if len(masks) != len(labels):
        raise ValueError(f"got {len(masks)} masks for {len(labels)} image labels")
    if any((mask > 0).any() for mask in masks):
        result["pixel_auroc"] = pixel_auroc(masks, maps)
        result["aupro"] = aupro(masks, maps)
    return result
