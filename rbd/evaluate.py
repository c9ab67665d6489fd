"""Evaluating a detector on a labelled MVTec-layout category: metrics, timings, per-image rows."""

from __future__ import annotations

import numbers
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import metrics
from .calibration import checked_threshold
from .datasets import mvtec_test_set, read_truth_mask, test_folder, truth_folder, truth_mask
from .detector import Detector, predict_files
from .errors import DatasetLayoutError, ImageReadError, InvalidInputError
from .images import find_images, mask_covering, upright_size
from .notices import collect, notify, some
from .visualize import outlined, overlay

MISRANKED_COUNT = 5  # images of each kind `Evaluation.misranked` picks
ROW_COLUMNS = ("file", "defect", "label", "score", "normalized_score", "verdict")  # of `Evaluation.rows`
# `Evaluation.summary`'s keys (the JSON of `rbd evaluate --json`) and what a reader is shown for each
SUMMARY_NAMES = {
    "image_auroc": "image AUROC",
    "pixel_auroc": "pixel AUROC",
    "aupro": "AUPRO (up to 30% false-positive pixels)",
    "image_f1max": "image F1 at its best threshold",
    "threshold": "threshold (raw score)",
    "false_alarm_rate": "false alarms (share of good images flagged)",
    "recall": "recall (share of defective images flagged)",
    "n_images": "test images",
    "ms_per_image": "ms per image",
}


def metric_text(key: str, value) -> str:
    """A summary's value as people read it (the command line, the model card, the app): a metric to 4 decimals, a time
    to 1 (12.5, where 12.5000 claimed a precision no timing has), a count as it is, a missing figure as "–"."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}" if key == "ms_per_image" else f"{value:.4f}"
    return str(value)


@dataclass
class Evaluation:
    image_auroc: float
    pixel_auroc: float | None
    aupro: float | None
    image_f1max: float
    threshold: float  # the verdicts' threshold (the detector's unless another was given)
    false_alarm_rate: float  # share of the normal test images flagged at it
    recall: float  # share of the defective test images found at it
    n_images: int
    ms_per_image: float  # median wall time per image: decode, predict, map at image size
    rows: list[dict] = field(default_factory=list)  # one per image, keyed by ROW_COLUMNS
    roc: dict = field(default_factory=dict)  # image-level false/true positive rates

    def summary(self) -> dict:
        """The JSON written by `rbd evaluate --json`."""
        return {k: getattr(self, k) for k in SUMMARY_NAMES}

    def misranked(self, count: int = MISRANKED_COUNT) -> tuple[list[dict], list[dict]]:
        """Where the ranking goes wrong: the rows of the `count` highest-scoring good images, highest
        first, and of the `count` lowest-scoring defective ones, lowest first. Image AUROC is lost
        exactly where these two groups overlap."""
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            raise InvalidInputError(f"misranked takes a count of images, 0 or more, got {count!r}")
        good = sorted((row for row in self.rows if row["label"] == 0), key=lambda row: -row["score"])
        defective = sorted((row for row in self.rows if row["label"] == 1), key=lambda row: row["score"])
        return good[:count], defective[:count]

    def ranked_wrong_against(self, row: dict) -> int:
        """How many images of the other kind `row`'s image is ranked wrongly against: for a good image the defective
        ones scoring at or below it, for a defective image the good ones at or above it (0: it is ranked right, as
        every one of `misranked`'s is when image AUROC is 1)."""
        others = np.array([other["score"] for other in self.rows if other["label"] != row["label"]])
        return int((others <= row["score"]).sum() if row["label"] == 0 else (others >= row["score"]).sum())


def evaluation_picture(detector: Detector, category: str | Path, file: str, threshold: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8: the test image `file` (a row's, relative to `category`) under its heat map at
    `threshold` (default: the detector's), its truth mask outlined where it has one: what the model
    saw beside what is there."""
    category = Path(os.path.abspath(category))
    path = Path(os.path.abspath(category / file))  # a row's file, or the same file by its absolute path
    if not path.is_relative_to(test_folder(category)):
        raise InvalidInputError(f"{file} is not a test image of {category.name}: a row's file, under {category.name}/test/")
    with collect():  # its notice of a huge image downscaled: `evaluate` gave it once already
        [(_, image, prediction)] = predict_files(detector, [path], batch_size=1)  # read and scored as `evaluate` did
    threshold = detector.threshold if threshold is None else checked_threshold(threshold)
    picture = overlay(image, prediction.anomaly_map, detector.calibration, threshold)
    is_good = path.relative_to(test_folder(category)).parts[0].casefold() == "good"  # a good image has no defect to outline (`evaluate`)
    mask = None if is_good else truth_mask(category, path)
    if mask is None:
        return picture
    try:
        return outlined(picture, _at_size(_read_mask(mask, path), picture.shape[:2]))
    except ImageReadError as err:  # `evaluate` already named it and scored without it: the picture goes without its outline
        notify(f"{err}: {file} is drawn without its truth mask")
        return picture


def evaluate(detector: Detector, category: str | Path, progress: Callable[[int, int], None] | None = None,
             threshold: float | None = None) -> Evaluation:
    """Score every test image; pixel metrics only when every defective image has a usable mask.

    Images are read and scored as `predict_files` does (unreadable ones skipped, huge ones
    downscaled, each with one notice). A defective image's missing or unusable mask (unreadable, or not its image's
    size) costs the pixel metrics, with a notice naming it, and never the image metrics; a good image's mask is not used.
    `threshold` (default: the detector's) sets the verdicts: the rows' and the false-alarm rate
    and recall they add up to; the other metrics do not depend on it.
    """
    threshold = detector.threshold if threshold is None else checked_threshold(threshold)
    items = mvtec_test_set(category)
    with_masks = any(item.mask_path for item in items)
    truths = truth_folder(category)
    if not with_masks and truths.is_dir() and find_images(truths):
        example = next(item for item in items if item.is_anomalous).path.relative_to(test_folder(category))
        notify(f"no file in ground_truth/ is named as a mask of a test image (for test/{example.as_posix()}: "
               f"ground_truth/{example.with_name(example.stem + '_mask.png').as_posix()}): pixel metrics skipped")
    # a defective image without a mask costs the pixel metrics, unless scoring will skip it (unreadable, with its own notice)
    unmasked = [item.path.relative_to(category).as_posix() for item in items
                if with_masks and item.is_anomalous and not item.mask_path and _scored_size(item.path) is not None]
    if unmasked:
        notify(f"{len(unmasked)} defective image(s) have no mask ({some(unmasked)}; "
               "a mask is named ground_truth/<defect>/<name>_mask.png): pixel metrics skipped")
        with_masks = False
    truth, bad_masks, unused = {}, [], []
    for item in items:
        try:
            truth[item.path] = _read_mask(item.mask_path, item.path) if with_masks and item.mask_path else None
        except ImageReadError as err:  # a good image's mask is never used (below): it costs nothing
            (bad_masks if item.is_anomalous else unused).append(str(err))
            truth[item.path] = None
    if bad_masks:
        notify(f"{len(bad_masks)} unusable mask(s): pixel metrics skipped ({'; '.join(bad_masks)})")
        with_masks = False
    if with_masks and unused:
        notify(f"{len(unused)} good image(s) have an unusable mask, not used: a good image has no defect pixel ({'; '.join(unused)})")
    marked = [item for item in items if not item.is_anomalous and truth.get(item.path) is not None and truth[item.path].any()]
    if with_masks and marked:  # a good image has no defect pixel: such a mask is another image's, or wrong
        notify(f"{len(marked)} good image(s) have a mask that marks defect pixels, not used: a good image has none "
               f"({some([item.mask_path.relative_to(category).as_posix() for item in marked])})")
        truth.update({item.path: None for item in marked})
    blank = [item.mask_path.relative_to(category).as_posix() for item in items
             if item.is_anomalous and truth.get(item.path) is not None and not truth[item.path].any()]
    if with_masks and blank and len(blank) < sum(truth.get(item.path) is not None for item in items if item.is_anomalous):
        notify(f"{len(blank)} defective image(s) have an empty mask (no defect pixel; {some(blank)}): their pixels count as "
               "normal in the pixel metrics, their defect's own among them")  # (all empty: skipped, said below)
    by_path = {item.path: item for item in items}
    rows, maps, masks, times, unfamiliar = [], [], [], [], []
    start = time.perf_counter()
    for path, _, prediction in predict_files(detector, list(by_path), batch_size=1, progress=progress):
        times.append(time.perf_counter() - start)  # decode, predict, map at image size
        item, prediction = by_path[path], detector.rethreshold(prediction, threshold)
        if prediction.out_of_domain and not item.is_anomalous:
            unfamiliar.append(path.relative_to(category).as_posix())
        rows.append(dict(zip(ROW_COLUMNS, (str(path.relative_to(category)), item.defect, int(item.is_anomalous), prediction.score,
                                           prediction.normalized_score, prediction.verdict))))
        if with_masks:
            maps.append(prediction.anomaly_map)
            masks.append(_at_size(truth[path], prediction.anomaly_map.shape))
        start = time.perf_counter()
    labels = np.array([r["label"] for r in rows])
    if len(set(labels.tolist())) < 2:
        raise DatasetLayoutError(f"{category}: image metrics need readable good and defective test images; "
                                 f"only {len(rows)} of {len(items)} could be read, all of one class")
    if unfamiliar:  # a defect may be unlike the training images; a good image of the model's own product is not
        good = int((labels == 0).sum())
        notify(f"{len(unfamiliar)} of the {good} good test image(s) look unlike the model's training images ({some(unfamiliar)}): "
               + ("the set shows another product than the model learned (or another camera or lighting), and its metrics say "
                  "little about the model on its own product" if 2 * len(unfamiliar) >= good else "their scores say little"))
    scores = np.array([r["score"] for r in rows])
    if with_masks and not any(mask.any() for mask in masks):
        notify("every defective image's mask is empty (no defect pixel): pixel metrics need some, skipped")
    summary = metrics.summarize(labels, scores, masks if with_masks else None, maps if with_masks else None)
    verdicts = metrics.at_threshold(labels, scores, threshold)
    return Evaluation(n_images=len(rows), ms_per_image=round(1000 * float(np.median(times)), 2), rows=rows,
                      roc=metrics.roc_curve(labels, scores), **summary,
                      **{k: verdicts[k] for k in ("threshold", "false_alarm_rate", "recall")})


def _read_mask(path: Path, image_path: Path) -> np.ndarray | None:
    """The ground-truth mask, which must match its image's (upright) size; None if the image
    itself is unreadable (scoring skips it, with its own notice)."""
    size = _scored_size(image_path)
    if size is None:
        return None
    (width, height), mask = size, read_truth_mask(path)
    if mask.shape != (height, width):
        raise ImageReadError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {width}x{height}")
    return mask


def _scored_size(path: Path) -> tuple[int, int] | None:
    """The image's (width, height) upright, from its header; None where scoring will skip it (with its own notice)."""
    try:
        return upright_size(path)
    except ImageReadError:
        return None


def _at_size(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The mask at the anomaly map's `shape` (`mask_covering`: a huge image is scored downscaled), all normal for a
    good image."""
    return np.zeros(shape, bool) if mask is None else mask_covering(mask, shape)
