"""What a review's decisions mean: labels, final masks, what to show next, metrics and recalibration.

The threshold is not part of a session: the app's control can move at any time. Each decision
therefore records the verdict and threshold the inspector saw: "accept" means that verdict was
right, "reject" that it was wrong, so a reviewed label never changes when the threshold moves,
while the model's verdicts (and so precision and recall) are judged at the current threshold.

Everything here reads the session's score and label arrays, or one item's files: nothing grows
with the number of images beyond a vectorised pass over those arrays.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..calibration import Calibration, calibrate, is_defective
from ..errors import InvalidInputError, NoImagesError
from ..metrics import auroc
from ..thresholds import RATE_RANGE

FILTERS = ("all", "unreviewed", "defective", "grey", "out-of-domain")


def label_of(decision, painted: bool | None) -> bool:
    """True (defective) or False (good) for a decision. accept keeps the verdict the inspector saw,
    reject flips it, correct is defective iff the inspector's mask (`painted`) has any pixel set."""
    if decision.decision == "correct":
        return bool(painted)
    flagged = decision.verdict == "defective"
    return flagged if decision.decision == "accept" else not flagged


def final_label(session, item_id: int) -> bool | None:
    """True (defective) or False (good) after review, None if unreviewed."""
    label = session.labels[session.item(item_id).id]
    return None if np.isnan(label) else bool(label)


def final_mask(session, item_id: int) -> np.ndarray | None:
    """The defect mask after review, (H, W) bool; None if unreviewed (`decided_mask`)."""
    decision = session.decision(item_id)
    return None if decision is None else decided_mask(session, item_id, decision, bool(final_label(session, item_id)))


def decided_mask(session, item_id: int, decision, defective: bool) -> np.ndarray:
    """The defect mask a decision gives, (H, W) bool; `defective` is its final label.

    correct: the inspector's mask. accept/reject: the model's mask at the decision's threshold
    (frozen into a file if the session was re-scored since) if the final label is defective, else
    empty. A rejected "good" verdict therefore gets the model's mask, which is empty: a defect whose place
    is not known (the export gives it no mask); the inspector corrects, rather than rejects, to say where it is.
    """
    if decision.mask is not None:
        return session.read_mask(decision.mask)
    if defective:
        return session.prediction_mask(item_id, decision.threshold)
    item = session.item(item_id)
    return np.zeros((item.height, item.width), dtype=bool)


def place_unknown(session, item_id: int) -> bool:
    """Whether the review calls the image defective but says not where (a "good" verdict rejected, nothing painted):
    the export gives it no mask."""
    return bool(final_label(session, item_id)) and not final_mask(session, item_id).any()


def mask_to_edit(session, item_id: int, threshold: float) -> np.ndarray:
    """The mask the inspector starts drawing from: the final one if reviewed, else the model's at `threshold`."""
    mask = final_mask(session, item_id)
    return session.prediction_mask(item_id, threshold) if mask is None else mask


def first_unreviewed(session, order: np.ndarray) -> int:
    """The position in `order` (item ids) of its first unreviewed item: where a review picks up again
    in a reloaded page or after a restart (0 when every item is reviewed)."""
    unreviewed = np.flatnonzero(np.isnan(session.labels[order]))
    return int(unreviewed[0]) if len(unreviewed) else 0


def ordered(session, show: str = "all", threshold: float | None = None, low: float | None = None,
            high: float | None = None) -> np.ndarray:
    """Ids of the items to show, most anomalous first (score descending, then id).

    show: "all"; "unreviewed"; "defective" (flagged by the model at `threshold`); "grey"
    (low <= score < high: the uncertain band around the threshold, where review pays most);
    "out-of-domain" (unlike the scoring model's training images: detector.OUT_OF_DOMAIN_MEANS).
    """
    if show not in FILTERS:
        raise InvalidInputError(f"show must be one of {', '.join(FILTERS)}, got {show!r}")
    if show == "defective" and threshold is None:
        raise InvalidInputError("show='defective' needs a threshold")
    if show == "grey" and (low is None or high is None):
        raise InvalidInputError("show='grey' needs low and high")
    scores = session.scores
    keep = {
        "all": lambda: np.ones(scores.shape, bool),
        "unreviewed": lambda: np.isnan(session.labels),
        "defective": lambda: is_defective(scores, threshold),
        "grey": lambda: (low <= scores) & (scores < high),
        "out-of-domain": lambda: session.out_of_domain,
    }[show]()
    ids = np.flatnonzero(keep)
    return ids[np.lexsort((ids, -scores[ids]))]


def metrics(session, threshold: float) -> dict:
    """How the model's verdicts at `threshold` compare with the reviewed labels (reviewed images only).

    auroc is None unless both classes were reviewed; precision is None when the model flags
    none of the reviewed images, recall when none of them is defective.
    """
    reviewed = ~np.isnan(session.labels)
    labels = session.labels[reviewed] == 1.0
    scores = session.scores[reviewed]
    flagged = is_defective(scores, threshold)
    hits = int((flagged & labels).sum())
    n_defective = int(labels.sum())
    return {
        "n_reviewed": int(reviewed.sum()),
        "n_defective": n_defective,
        "auroc": auroc(labels, scores) if 0 < n_defective < labels.size else None,
        "precision": hits / int(flagged.sum()) if flagged.any() else None,
        "recall": hits / n_defective if n_defective else None,
    }


def reviewed_normal(session) -> np.ndarray:
    """By id: reviewed as good and like the scoring model's training images. An image of another
    product rejected as "no defect" is good, but not normal data for this product."""
    return (session.labels == 0.0) & ~session.out_of_domain


def normal_images(session) -> list[Path]:
    """Paths of the images reviewed as good (`reviewed_normal`): more normal data for fine-tuning."""
    return [session.item(int(i)).image_path for i in np.flatnonzero(reviewed_normal(session))]


def good_like_defects(session) -> list[tuple[str, float]]:
    """(file name, score) of the images reviewed as good (`reviewed_normal`) that score at least as high as the median
    synthetic defect: a defect accepted by mistake would lift a recalibrated threshold past real defects."""
    synthetic = session.calibration.synthetic_scores if session.calibration is not None else []
    if not synthetic:
        return []
    ids = np.flatnonzero(reviewed_normal(session) & (session.scores >= float(np.median(synthetic))))
    return [(session.item(int(i)).file_name, float(session.scores[i])) for i in ids]


def recalibrated(session, false_alarm_rate: float | None = None, start: Calibration | None = None) -> Calibration:
    """The session's calibration, also counting the images reviewed as good (`reviewed_normal`) as held-out normal scores.

    It starts from the stored calibration, the one the images were scored with (or `start`, a recalibration of that
    model by reviews, as the app's model bar holds one), so the scores are never mixed with another model's and the
    reviewed ones never count twice: where the model was recalibrated by this review already (in the bar, or downloaded
    or pushed so and the review re-scored by it), the scores it added then are replaced by its own now; another review's
    are kept (`Calibration.reviews`). The synthetic-defect scores are kept, so the catch rate stays comparable.
    NoImagesError, saying why, when no image counts: a recalibration from nothing would only repeat the old threshold.
    """
    if session.calibration is None:
        raise InvalidInputError("this review holds no images yet")
    normal = reviewed_normal(session)
    if not normal.any():
        good = int((session.labels == 0.0).sum())
        why = (f"the {good} image(s) reviewed as good are all out of this model's domain, so none of them is normal data for it"
               if good else "no image is reviewed as good yet, so there is nothing to recalibrate with: accept good verdicts "
                            "(or reject wrong defective ones) first")
        raise NoImagesError(f"{why}; the threshold is unchanged")
    good = session.scores[normal].tolist()
    calibration = start or session.calibration
    rate = calibration.false_alarm_rate if false_alarm_rate is None else false_alarm_rate
    rate = max(rate, RATE_RANGE[0])  # a checkpoint saved with a rate of 0 (refused since: calibration.RATE_ABOVE_0)
    tag = hashlib.sha256(session.session_id.encode()).hexdigest()[:12]  # not the id, which opens the review
    scores, reviews, end = list(calibration.normal_scores), [], len(calibration.normal_scores) - calibration.reviewed
    kept = scores[:end]  # held out, or training images scored blind
    for other, count in calibration.reviews:
        if other != tag:
            kept += scores[end : end + count]
            reviews.append((other, count))
        end += count
    return replace(calibrate(kept + good, calibration.synthetic_scores, rate), reviews=(*reviews, (tag, len(good))))
