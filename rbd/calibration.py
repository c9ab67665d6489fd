"""Turning raw anomaly scores into decisions, from normal images only.

Raw scores have no natural unit, so after training we score every normal image as one the
model has not seen (held-out images, and training images with the memory blind to their own
patches: train.py) and set the threshold at the score that only a stated fraction of normal
images exceeds: the false-alarm rate (default 1%). With n images the empirical quantile cannot
resolve rates below about 1/n (with 20 images its "99%" point is really their maximum, which one
new normal image in 21 exceeds), so we also fit a normal distribution to the scores and always
take the larger of the two thresholds: with few images the fitted tail usually wins; with many,
a heavy right tail keeps the empirical quantile. Where the rate is below 1/n the threshold lies
above every score (an outlier cannot pull the fitted quantile under itself).
How much the threshold would move with other images of the same kind is estimated by applying
the same rule to bootstrap resamples of the scores, and by the normal fit's standard error where
that is wider (few images): its 95% interval is shown with it.
We also score some of the images with synthetic defects painted on and report how many the
threshold catches, a rough sanity check of sensitivity before any real defect is seen.

The normalised score maps the raw score through a logistic curve centred on the threshold,
with the spread of normal scores as its unit: 0.5 is exactly the threshold, and the
threshold can be moved at run time without retraining.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np

from .errors import InvalidInputError


def percent(rate: float, digits: int = 2) -> str:
    """A share as a person reads it, "1.2%": `digits` significant digits, and a share too small to tell from 0 as one."""
    return f"{100 * rate:.{digits}g}%" if rate >= 1e-4 else "under 0.01%"


def is_defective(score, threshold: float):
    """The one decision rule, for images (their score) and pixels (their map value) alike: at or above the
    threshold. A NaN (a broken number, never a normal part's) counts as defective, so no part passes on one."""
    flagged = np.logical_not(np.less(score, threshold))
    return bool(flagged) if np.ndim(flagged) == 0 else flagged


@dataclass
class Calibration:
    threshold: float
    scale: float  # spread (std) of the normal scores
    false_alarm_rate: float
    normal_scores: list[float] = field(default_factory=list)
    synthetic_scores: list[float] = field(default_factory=list)
    interval: tuple[float, float] | None = None  # 95% bootstrap interval of the threshold; None from one image
    # the last normal scores, of images reviews accepted as good (`rules.recalibrated`): each review's tag and count
    reviews: tuple[tuple[str, int], ...] = ()

    @property
    def fingerprint(self) -> str:
        """What tells one model from another: a retrained model (or a Hub branch pushed again) has other
        normal scores, while a copy of one (shared in the app, downloaded, loaded by another path) keeps them."""
        return hashlib.sha1(json.dumps([self.threshold, self.scale, list(self.normal_scores)]).encode()).hexdigest()[:16]

    @property
    def reviewed(self) -> int:
        """How many of the normal scores are of images reviewed as good."""
        return sum(count for _, count in self.reviews)

    @property
    def synthetic_catch_rate(self) -> float | None:
        """Fraction of synthetic-defect images caught at the calibrated threshold (None if none were scored)."""
        return self.caught(self.threshold)

    def caught(self, threshold: float) -> float | None:
        """Fraction of synthetic-defect images at or above `threshold` (None if none were scored)."""
        if not self.synthetic_scores:
            return None
        return float(np.mean(is_defective(np.asarray(self.synthetic_scores), threshold)))

    def expected_false_alarm_rate(self, threshold: float | None = None) -> float:
        """The share of normal images expected at or above `threshold`, by the same rule that set it:
        the larger of the empirical share of calibration scores above it and the fitted normal tail."""
        t = self.threshold if threshold is None else threshold
        normal = np.asarray(self._normal_scores(), dtype=np.float64)
        rate = float(np.mean(is_defective(normal, t)))
        spread = sample_spread(normal)
        if spread > 0:
            rate = max(rate, 1.0 - NormalDist(float(normal.mean()), spread).cdf(t))
        return rate

    def threshold_for(self, false_alarm_rate: float) -> float:
        """The threshold this calibration's scores give for another false-alarm rate (the rule
        alone: a review's rate control asks on every key press, and the interval costs 1000 resamples)."""
        return threshold_rule(checked_scores(self._normal_scores()), checked_rate(false_alarm_rate))

    def _normal_scores(self) -> list[float]:
        """The normal scores, which every rate other than the calibrated one needs (a calibration made by
        hand may have none)."""
        if not self.normal_scores:
            raise InvalidInputError(f"this calibration stores no normal scores: its threshold is known only for the "
                                    f"{100 * self.false_alarm_rate:g}% false-alarm rate it was made for")
        return self.normal_scores

    def normalize(self, score, threshold: float | None = None):
        """Logistic map of raw scores (a float or an array): 0.5 at the threshold, the normal spread as unit."""
        t = self.threshold if threshold is None else threshold
        z = np.clip((np.asarray(score, dtype=np.float64) - t) / self.scale, -50.0, 50.0)
        normalized = 1.0 / (1.0 + np.exp(-z))
        return float(normalized) if normalized.ndim == 0 else normalized.astype(np.float32)

    def problems(self, threshold: float | None = None) -> list[str]:
        """What a person should know before trusting `threshold` (default: the calibrated one). The
        interval is the calibrated threshold's, so only that threshold is called uncertain by it."""
        t = self.threshold if threshold is None else threshold
        found = []
        if len(self.normal_scores) < 10:
            found.append(f"the threshold rests on only {len(self.normal_scores)} normal images: it is a rough guess")
        elif t == self.threshold and self.interval is not None and self.interval[1] - self.interval[0] > 2 * self.scale:
            # in false alarms, the unit a person chose the threshold by, rather than the raw scores' own
            most, fewest = (percent(self.expected_false_alarm_rate(end)) for end in self.interval)
            found.append(f"the threshold is uncertain: its 95% interval is wider than two normal spreads, from {fewest} to "
                         f"{most} expected false alarms; a {percent(self.false_alarm_rate)} rate rests on the highest few of "
                         f"the {len(self.normal_scores)} normal scores: a higher rate rests on more of them, and a "
                         "recalibration in the app adds the images a review accepted as good")
        if self.caught(t) == 0.0:
            found.append("it flags none of the synthetic defects: the model may see no defect at all")
        return found

    def grey_zone(self, threshold: float | None = None, width: float = 2.0) -> tuple[float, float]:
        """Scores within `width` normal spreads of the threshold: where a human look pays most."""
        t = self.threshold if threshold is None else threshold
        return t - width * self.scale, t + width * self.scale

    def to_dict(self) -> dict:
        values = asdict(self)
        values["synthetic_catch_rate"] = self.synthetic_catch_rate
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "Calibration":
        return cls(
            threshold=float(values["threshold"]),
            scale=float(values["scale"]),
            false_alarm_rate=float(values["false_alarm_rate"]),
            normal_scores=_listed_numbers(values, "normal_scores"),
            synthetic_scores=kept_synthetic_scores(_listed_numbers(values, "synthetic_scores")),
            interval=tuple(float(v) for v in values["interval"]) if values.get("interval") else None,
            reviews=_reviews(values),
        )


def _reviews(values: dict) -> tuple[tuple[str, int], ...]:
    """`values["reviews"]` (none: none) as (tag, count) pairs, counting no more than the normal scores."""
    listed = values.get("reviews") or []
    pairs = tuple(tuple(pair) for pair in listed) if isinstance(listed, (list, tuple)) else None
    if pairs is None or not all(len(pair) == 2 and isinstance(pair[0], str) and type(pair[1]) is int and pair[1] > 0
                                for pair in pairs) or sum(pair[1] for pair in pairs) > len(values.get("normal_scores") or []):
        raise ValueError(f"reviews must be [tag, count] pairs counting some of the normal scores, got {listed!r}")
    return pairs


def _listed_numbers(values: dict, key: str) -> list[float]:
    """`values[key]` (none: empty) as floats, from a list only: a string's characters read as scores ("123": 1, 2, 3)."""
    listed = values.get(key, [])
    if not isinstance(listed, (list, tuple)):
        raise ValueError(f"{key} must be a list of numbers, got {type(listed).__name__}")
    return [float(s) for s in listed]


def kept_synthetic_scores(scores) -> list[float]:
    """Synthetic-defect scores as floats; a NaN is refused (it counted as caught). An infinite one is a defect caught
    (or missed), kept as the largest float: a checkpoint's JSON holds no infinity (one was written as a bare Infinity,
    which is not JSON, and is read back so)."""
    scores = [float(s) for s in scores]
    if any(math.isnan(s) for s in scores):
        raise ValueError("synthetic-defect scores must be numbers (found NaN)")
    return [min(max(s, -sys.float_info.max), sys.float_info.max) for s in scores]


def sample_spread(normal: np.ndarray) -> float:
    """The scores' sample standard deviation; 0 for one score, which has none."""
    return float(normal.std(ddof=1)) if normal.size > 1 else 0.0


def threshold_rule(normal: np.ndarray, false_alarm_rate: float) -> float:
    """The larger of the (1 - false_alarm_rate) quantile of `normal` scores and the same quantile
    of a normal distribution fitted to them (see the module docstring); above every score where the
    rate is below 1/n, which n scores cannot resolve (an outlier would otherwise pull the fitted
    quantile under the highest one); and never on a score itself, whose ties `is_defective` would flag."""
    threshold = float(np.quantile(normal, 1.0 - false_alarm_rate))
    spread = sample_spread(normal)
    if spread > 0:
        threshold = max(threshold, float(normal.mean()) + NormalDist().inv_cdf(1.0 - false_alarm_rate) * spread)
    if false_alarm_rate * normal.size < 1:
        threshold = max(threshold, float(normal.max()))
    if np.any(normal == threshold):
        threshold = float(np.nextafter(threshold, np.inf))
    return threshold


def threshold_interval(normal: np.ndarray, false_alarm_rate: float, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval of `threshold_rule`: the bootstrap's, widened to at least the normal fit's own
    (mean + z * std has standard error std * sqrt(1/n + z^2 / (2(n-1)))), since with a dozen
    scores the bootstrap alone is far too sure."""
    rng = np.random.default_rng(seed)
    thresholds = [threshold_rule(rng.choice(normal, normal.size), false_alarm_rate) for _ in range(resamples)]
    low, high = np.quantile(thresholds, [0.025, 0.975])
    threshold = threshold_rule(normal, false_alarm_rate)
    z, n = NormalDist().inv_cdf(1.0 - false_alarm_rate), normal.size
    half = 1.96 * float(normal.std(ddof=1)) * np.sqrt(1 / n + z * z / (2 * (n - 1)))
    low, high = min(low, threshold - half), max(high, threshold + half)
    return float(low), float(high)


def checked_threshold(value) -> float:
    """A raw threshold as a float. A NaN, an infinity (minus: every image defective, every pixel in the mask; plus:
    none, and no checkpoint may hold it) or a non-number (True is one to Python) is refused."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError("a truth value")
        threshold = float(value)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"a threshold must be a number (a raw score), got {value!r}") from err
    if not math.isfinite(threshold):
        raise InvalidInputError(f"a threshold must be a finite number (a raw score), got {'NaN' if math.isnan(threshold) else threshold}")
    return threshold


def checked_scores(normal_scores) -> np.ndarray:
    """The normal scores as a float64 array; at least one, all finite (ValueError otherwise)."""
    normal = np.asarray(normal_scores, dtype=np.float64)
    if normal.ndim != 1:
        raise ValueError(f"calibration scores are one number per image: a flat list, got an array of shape {normal.shape}")
    if normal.size == 0:
        raise ValueError("calibration needs at least one normal score")
    if not np.isfinite(normal).all():
        raise ValueError("calibration scores must be finite (found NaN or inf)")
    return normal


RATE_ABOVE_0 = "a rate of 0 has no finite threshold (the fitted normal tail reaches every score): ask for a small rate such as 0.001"


def checked_rate(false_alarm_rate: float) -> float:
    """A false-alarm rate to calibrate for: above 0 (RATE_ABOVE_0) and below 1. A checkpoint saved with a rate of 0
    before it was refused still loads and judges at its stored threshold (`thresholds.threshold_at`)."""
    if not 0.0 < false_alarm_rate < 1.0:
        raise InvalidInputError(f"false_alarm_rate must be above 0 and below 1, got {false_alarm_rate}"
                                + (f": {RATE_ABOVE_0}" if false_alarm_rate == 0 else ""))
    return false_alarm_rate


def calibrate(normal_scores, synthetic_scores=(), false_alarm_rate: float = 0.01) -> Calibration:
    """Calibration from normal scores of images scored as unseen (module docstring): the threshold by
    `threshold_rule`, its bootstrap interval, and the normal spread as the unit of normalised scores."""
    normal, false_alarm_rate = checked_scores(normal_scores), checked_rate(false_alarm_rate)
    synthetic_scores = kept_synthetic_scores(synthetic_scores)
    threshold = threshold_rule(normal, false_alarm_rate)
    spread = sample_spread(normal)
    scale = spread if spread > 0 else max(0.05 * abs(threshold), 1e-6)  # never a zero unit, even with one image
    interval = threshold_interval(normal, false_alarm_rate) if normal.size > 1 else None
    return Calibration(threshold, scale, false_alarm_rate, normal.tolist(), synthetic_scores, interval)
