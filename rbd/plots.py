"""Figures the app shows and scripts can save: the calibration histogram and the ROC curve.

Figures are built without pyplot: pyplot keeps every figure in a global registry (a leak in a
long-running server) and is not safe to use from several request threads at once.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .calibration import Calibration


def calibration_figure(calibration: Calibration, threshold: float | None = None) -> Figure:
    """Held-out normal scores and synthetic-defect scores, with the threshold line between them."""
    threshold = calibration.threshold if threshold is None else threshold
    scores = calibration.normal_scores + calibration.synthetic_scores + [threshold]
    width = (max(scores) - min(scores)) / 29 or 1.0  # about 30 bins, one edge on the threshold: no bar straddles it, as if
    bins = threshold + width * np.arange(np.floor((min(scores) - threshold) / width), np.ceil((max(scores) - threshold) / width) + 1)
    # a normal image were flagged (a bin's left edge is in it: a score on the threshold is drawn on its flagged side);
    # the outer edges widened to every score (rounding could leave the lowest or highest out), two edges at least
    bins = np.concatenate([[min(bins[0], min(scores))], bins[1:-1], [max(bins[-1], max(scores), bins[0] + width)]])
    figure = Figure(figsize=(6, 3.6), layout="constrained")
    axes = figure.add_subplot()
    axes.hist(calibration.normal_scores, bins=bins, alpha=0.7, color="tab:blue", label=f"normal ({len(calibration.normal_scores)})")
    if calibration.synthetic_scores:
        caught = calibration.caught(threshold)
        axes.hist(calibration.synthetic_scores, bins=bins, alpha=0.6, color="tab:red",
                  label=f"synthetic defects ({len(calibration.synthetic_scores)}, {100 * caught:.0f}% caught)")
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4f}")
    if calibration.interval is not None and threshold == calibration.threshold:  # how sure the calibrated threshold is
        low, high = calibration.interval
        axes.axvspan(low, high, color="grey", alpha=0.15, label=f"its 95% interval {low:.4f}-{high:.4f}")
    axes.set_title("Calibration: normal and synthetic-defect scores", fontsize=10)
    axes.set_xlabel("anomaly score")
    axes.set_ylabel("images")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of images: no 0.25 of one
    figure.legend(loc="outside lower center", ncols=2, fontsize=8)  # below the bars: inside it covered some (a phone's helper)
    return figure


def roc_figure(roc: dict, auroc: float | None = None) -> Figure:
    """Image-level ROC curve from `rbd.metrics.roc_curve` output."""
    figure = Figure(figsize=(4.2, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(roc["fpr"], roc["tpr"], drawstyle="default", color="tab:blue", label=None if auroc is None else f"AUROC {auroc:.3f}")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axes.set_title("ROC curve of the image scores", fontsize=10)
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    if auroc is not None:
        axes.legend(loc="lower right")
    return figure
