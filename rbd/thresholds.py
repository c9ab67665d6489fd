"""The threshold as a person sets it: the share of good parts one accepts to see flagged.

A raw anomaly score means nothing outside its model (0.3345 for one, 0.52 for another), while
"1% of good parts flagged" means the same for every model. Each model's calibration turns
that expected false-alarm rate into its own raw threshold, so one setting judges a review
scored by one model and an Inspect upload scored by another alike.
"""

from __future__ import annotations

import dataclasses
import math

from .calibration import Calibration, percent

RATE_RANGE = (0.0001, 0.30)  # the rates a control offers: one in 10,000 good parts flagged, up to 30%
RATE_STEP = 0.0001  # a control's step (0.01 %)


def threshold_at(calibration: Calibration, rate: float) -> float:
    """The raw threshold for an expected false-alarm rate (a fraction). At the rate the model was
    calibrated for this is exactly its stored threshold, whatever rule a checkpoint was made with."""
    if math.isclose(rate, calibration.false_alarm_rate, rel_tol=1e-9, abs_tol=1e-12):
        return calibration.threshold
    return calibration.threshold_for(rate)


def set_by_hand(calibration: Calibration, threshold: float) -> Calibration:
    """`calibration` judging at a threshold set by hand (`Detector.threshold`, saved in a checkpoint),
    which a control offering rates must start at and return to: it becomes the calibrated threshold,
    for the rate expected at it (within RATE_RANGE, to the control's step, so that the control's value
    gives exactly this threshold back). The interval, which was the calibrated threshold's, is dropped."""
    if threshold == calibration.threshold:
        return calibration
    if not calibration.normal_scores:  # made by hand too: no rate can be told for it, the stored one stays
        return dataclasses.replace(calibration, threshold=float(threshold), interval=None)
    low, high = RATE_RANGE
    rate = min(max(round(calibration.expected_false_alarm_rate(threshold) / RATE_STEP) * RATE_STEP, low), high)
    return dataclasses.replace(calibration, threshold=float(threshold), false_alarm_rate=round(rate, 6), interval=None)


def describe(calibration: Calibration, rate: float | None = None) -> str:
    """One line for people: the raw threshold for `rate` (by default the calibration's own), what calibrates it,
    how sure it is, the synthetic defects it catches, and any problem a person should know of."""
    rate = calibration.false_alarm_rate if rate is None else rate
    threshold = threshold_at(calibration, rate)
    n = len(calibration.normal_scores)
    past = _past_the_control(calibration, rate, threshold)
    if past is None:
        rated = f" for {100 * rate:.4g}% expected false alarms ("
    else:
        rated = f", set by hand, for {percent(past, 4)} expected false alarms (past the control's {100 * rate:.4g}%; "
    text = f"raw threshold {threshold:.4f}{rated}{n} normal images calibrate it"
    if n and rate * n < 1 and past is None:  # calibration.threshold_rule: at least just above the highest of their scores
        text += f"; {100 * rate:.4g}% is rarer than 1 in {n}, which they cannot tell apart: it lies above all their scores"
    if calibration.interval is not None and threshold == calibration.threshold:
        text += f"; 95% interval {calibration.interval[0]:.4f}-{calibration.interval[1]:.4f}"
    text += ")"
    caught = calibration.caught(threshold)
    text += f" · catches {100 * caught:.0f}% of synthetic defects" if caught is not None else ""
    return text + "".join(f" · ⚠️ {problem}" for problem in calibration.problems(threshold))


def _past_the_control(calibration: Calibration, rate: float, threshold: float) -> float | None:
    """The false-alarm rate expected at a threshold set by hand past an end of the control, whose rate
    `set_by_hand` had to stop at that end; None for any other threshold."""
    if not calibration.normal_scores or rate not in RATE_RANGE:
        return None
    expected = calibration.expected_false_alarm_rate(threshold)
    low, high = RATE_RANGE
    rule = calibration.threshold_for(rate)
    if (rate == high and threshold < rule and expected > high) or (rate == low and threshold > rule and expected < low):
        return expected
    return None


def tested(metrics: dict) -> str | None:
    """What a model's own test (`rbd.evaluate`, recorded in its checkpoint) found at the threshold it was tested at:
    the real defects it flagged, beside the synthetic ones the calibration counts (ksdd's 70% synthetic, 38% real).
    None where no such test is recorded."""
    if not all(isinstance(metrics.get(key), (int, float)) for key in ("recall", "false_alarm_rate", "threshold", "n_images")):
        return None
    return (f"on its test set ({metrics['n_images']} images) at raw threshold {metrics['threshold']:.4f}: flagged "
            f"{100 * metrics['recall']:.0f}% of the defective parts and {100 * metrics['false_alarm_rate']:.1f}% of the good ones")
