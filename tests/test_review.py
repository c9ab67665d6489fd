"""Review sessions: decisions survive restarts and crashes; labels, metrics, recalibration and export follow them."""

import csv
import errno
import io
import json
import os
import threading
import time
import unicodedata
import zipfile
from pathlib import PurePosixPath

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from rbd import metrics
from rbd.calibration import calibrate
from rbd.coco import decode_rle
from rbd.detector import Prediction, defect_mask, verdict
from rbd.errors import InvalidInputError, NoImagesError
from rbd.images import read_image, to_rgb_array
from rbd import review
from rbd.review import ReviewSession, ScoredBy, store
from rbd.visualize import OUTLINE, outlined, overlay, shown_size

THRESHOLD = 0.5


class BrightnessDetector:
    """Stands in for a Detector where exact scores matter: the map is the image, the score its mean."""

    def __init__(self, normal_scores=(0.1, 0.2, 0.3, 0.4)):
        self.calibration = calibrate(normal_scores, [0.9], false_alarm_rate=0.25)
        self.threshold = THRESHOLD

    def predict_batch(self, images, batch_size=8):
        predictions = []
        for image in images:
            amap = to_rgb_array(image)[..., 0]
            score = float(amap.mean())
            predictions.append(Prediction(score, self.calibration.normalize(score, self.threshold), self.threshold, amap))
        return predictions


class Dimmer(BrightnessDetector):
    """Another model: every score and map a quarter of the first's; `fail_after` batches, it raises
    (a crash, as far as the session can tell)."""

    def __init__(self, fail_after=None):
        super().__init__([0.01, 0.02, 0.03, 0.04])
        self.fail_after = fail_after

    def predict_batch(self, images, batch_size=8):
        if self.fail_after is not None:
            if self.fail_after == 0:
                raise RuntimeError("the app stopped")
            self.fail_after -= 1
        return [Prediction(p.score / 4, p.normalized_score, p.threshold, p.anomaly_map / 4)
                for p in super().predict_batch(images, batch_size)]


class Familiar(BrightnessDetector):
    """A model with a patch memory: the brighter a part, the less of it looks familiar."""

    def predict_batch(self, images, batch_size=8):
        return [Prediction(p.score, p.normalized_score, p.threshold, p.anomaly_map, familiarity=1 - p.score)
                for p in super().predict_batch(images, batch_size)]


def _part(path, level):
    """An 8 x 10 part of the given grey level with a bright 2 x 2 spot: the spot is the mask of a dim part."""
    image = np.full((8, 10), round(level * 255), np.uint8)
    image[1:3, 1:3] = 255
    named = PngImagePlugin.PngInfo()
    named.add_text("part", str(path))  # parts of one level are distinct files (a review adds a file's bytes once)
    Image.fromarray(image).save(path, pnginfo=named)
    return path


@pytest.fixture
def parts(tmp_path):
    """Four parts, brightest (most anomalous) first."""
    folder = tmp_path / "upload"
    folder.mkdir()
    return [_part(folder / f"{name}.png", level) for name, level in [("a", 0.9), ("b", 0.8), ("c", 0.3), ("d", 0.1)]]


@pytest.fixture
def session(tmp_path, parts):
    return ReviewSession.create(tmp_path / "sessions", "s1", BrightnessDetector(), parts)


def _reopened(session):
    """The same session as a restarted app sees it: a new object read from disk."""
    return ReviewSession.open(session.folder.parent, session.session_id)


def test_create_decide_and_resume_after_restart(detector, category, tmp_path):
    paths = sorted((category / "test").rglob("*.png"))
    calls = []
    session = ReviewSession.create(tmp_path, "line-3_A", detector, paths, progress=lambda done, total: calls.append((done, total)), batch_size=4)
    assert calls == [(4, 10), (8, 10), (10, 10)]
    assert session.folder == tmp_path / "line-3_A"

    expected = detector.predict_batch(paths)
    for item, path, prediction in zip(session.items, paths, expected):
        assert item.image_path.read_bytes() == path.read_bytes()
        assert item.score == pytest.approx(prediction.score, rel=1e-5)
        assert item.verdict == prediction.verdict and (item.height, item.width) == (64, 80)
        assert np.load(session.folder / "maps" / f"{item.id}.npy", allow_pickle=False).dtype == np.float16
        np.testing.assert_allclose(session.anomaly_map(item.id), prediction.anomaly_map, rtol=2e-3, atol=1e-4)

    drawn = np.zeros((64, 80), bool)
    drawn[10:20, 30:45] = True
    session.decide(0, "accept", detector.threshold)
    session.decide(5, "reject", detector.threshold)
    session.decide(7, "correct", detector.threshold, drawn)

    resumed = ReviewSession.open(tmp_path, "line-3_A")
    assert resumed is not session and resumed.items == session.items
    for item in session.items:
        assert resumed.decision(item.id) == session.decision(item.id)
    assert [resumed.decision(i).decision for i in (0, 5, 7)] == ["accept", "reject", "correct"]
    assert resumed.decision(1) is None
    np.testing.assert_array_equal(review.final_mask(resumed, 7), drawn)
    assert ReviewSession.open(tmp_path, "nobody") is None


@pytest.mark.parametrize("bad", ["../x", "", "a/b", "/abs", "a\\b", ".", "..", "a b", "x" * 65, "s1\n", "é"])
def test_session_ids_from_the_browser_are_checked(tmp_path, parts, bad):
    with pytest.raises(ValueError, match="session id"):
        ReviewSession.open(tmp_path, bad)
    with pytest.raises(ValueError, match="session id"):
        ReviewSession.create(tmp_path, bad, BrightnessDetector(), parts)
    assert list(tmp_path.iterdir()) == [tmp_path / "upload"]


def test_latest_decision_wins_and_the_log_only_grows(session):
    first = session.decide(0, "accept", THRESHOLD)
    latest = session.decide(0, "reject", THRESHOLD)
    assert session.decision(0) == latest != first
    assert _reopened(session).decision(0) == latest
    lines = (session.folder / "decisions.jsonl").read_text().splitlines()
    assert [json.loads(line)["decision"] for line in lines] == ["accept", "reject"]
    record = json.loads(lines[1])
    assert record.keys() == {"id", "decision", "verdict", "threshold", "timestamp", "mask"} and record["mask"] is None
    assert record["verdict"] == "defective" and record["threshold"] == THRESHOLD
    assert record["timestamp"].endswith("+00:00")


def test_a_line_torn_by_a_crash_is_dropped_and_earlier_ones_kept(session):
    session.decide(0, "accept", THRESHOLD)
    session.decide(1, "reject", THRESHOLD)
    log = session.folder / "decisions.jsonl"
    intact = log.read_bytes()
    with open(log, "ab") as f:
        f.write(b'{"id": 2, "decision": "acc')
    with pytest.warns(UserWarning, match="incomplete last line"):
        resumed = _reopened(session)
    assert [resumed.decision(i) for i in range(4)] == [session.decision(0), session.decision(1), None, None]
    assert log.read_bytes() == intact  # cut off, so the next append starts on a line of its own
    resumed.decide(2, "accept", THRESHOLD)
    assert _reopened(resumed).decision(2).decision == "accept"


def test_a_decision_whose_write_fails_is_cut_off_and_the_next_one_is_read(session, monkeypatch):
    """A full disk takes half the line, then fails: the half line must not stay in front of the next decision."""
    session.decide(0, "accept", THRESHOLD)
    intact = (session.folder / "decisions.jsonl").read_bytes()

    class FullDisk:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def write(fd, data):
            os.write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "os", FullDisk())
    with pytest.raises(OSError, match="No space"):
        session.decide(1, "reject", THRESHOLD)
    monkeypatch.undo()
    assert (session.folder / "decisions.jsonl").read_bytes() == intact
    session.decide(2, "accept", THRESHOLD)
    resumed = _reopened(session)
    assert [resumed.decision(i) and resumed.decision(i).decision for i in range(3)] == ["accept", None, "accept"]


def test_images_scored_before_a_failure_stay_in_the_session_on_disk_too(tmp_path, parts):
    """Scoring that fails on its second batch keeps the first batch's images, in memory and in items.json alike,
    so a decision on one of them stays on that image after more are added."""
    with pytest.raises(RuntimeError, match="stopped"):
        ReviewSession.create(tmp_path / "sessions", "new", Dimmer(fail_after=0), parts)
    assert ReviewSession.open(tmp_path / "sessions", "new") is None  # nothing stored: still no session
    session = ReviewSession(tmp_path / "sessions" / "cut")
    with pytest.raises(RuntimeError, match="stopped"):
        session.add(Dimmer(fail_after=1), parts, batch_size=2)
    assert [item.file_name for item in _reopened(session).items] == [item.file_name for item in session.items] == ["a.png", "b.png"]
    session.decide(1, "accept", THRESHOLD)
    session.add(Dimmer(), parts[2:])
    resumed = _reopened(session)
    assert [item.file_name for item in resumed.items] == ["a.png", "b.png", "c.png", "d.png"]
    assert resumed.decision(1).decision == "accept" and resumed.decision(2) is None


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "0.5"])
def test_a_decision_at_a_threshold_that_is_no_finite_number_is_refused(session, threshold):
    """Written, its line made the whole review impossible to open again (from Python: the app's control sends none)."""
    if isinstance(threshold, str):
        assert session.decide(0, "accept", threshold).threshold == 0.5  # a number as text is one
        return
    with pytest.raises(InvalidInputError, match="a threshold must be a finite number"):
        session.decide(0, "accept", threshold)
    assert _reopened(session).decision(0) is None


def test_a_corrupt_line_before_the_last_is_an_error(session):
    session.decide(0, "accept", THRESHOLD)
    log = session.folder / "decisions.jsonl"
    log.write_text("not json\n" + log.read_text())
    with pytest.raises(ValueError, match="line 1"):
        _reopened(session)


def test_a_hand_edited_log_or_a_file_gone_is_said_clearly(session):
    """A blank line made the review unopenable, a threshold of text failed every view with numpy's error, and a
    map or painted mask deleted gave a bare FileNotFoundError."""
    session.decide(0, "accept", THRESHOLD)
    session.decide(1, "correct", THRESHOLD, np.ones((session.item(1).height, session.item(1).width), bool))
    log = session.folder / "decisions.jsonl"
    lines = log.read_text().splitlines()
    log.write_text(lines[0] + "\n\n" + lines[1] + "\n")
    assert _reopened(session).decision(1).decision == "correct"  # the blank line skipped
    log.write_text(json.dumps({**json.loads(lines[0]), "threshold": "x"}) + "\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match="line 1: not a decision record"):
        _reopened(session)
    log.write_text(lines[0] + "\n" + lines[1] + "\n")
    next((session.folder / "maps").glob("0.npy")).unlink()
    with pytest.raises(InvalidInputError, match=f"{session.item(0).file_name}: its anomaly map is missing from the review's folder"):
        _reopened(session).anomaly_map(0)
    (session.folder / session.decision(1).mask).unlink()
    with pytest.raises(InvalidInputError, match="a mask painted in this review, is missing from the review.s folder"):
        _reopened(session)


def test_decisions_are_checked(session):
    with pytest.raises(ValueError):
        session.decide(0, "maybe", THRESHOLD)
    with pytest.raises(ValueError):
        session.decide(0, "correct", THRESHOLD)  # no mask
    with pytest.raises(ValueError):
        session.decide(0, "accept", THRESHOLD, np.zeros((8, 10), bool))
    with pytest.raises(ValueError):
        session.decide(0, "correct", THRESHOLD, np.zeros((10, 8), bool))  # transposed
    with pytest.raises(KeyError):
        session.decide(4, "accept", THRESHOLD)
    with pytest.raises(KeyError):
        session.decision("0")
    assert not (session.folder / "decisions.jsonl").exists()


def test_final_labels_and_masks(session):
    a, b, c, d = session.items
    assert a.score > b.score > THRESHOLD > c.score > d.score
    assert session.anomaly_map(d.id)[1:3, 1:3].min() > THRESHOLD  # its spot crosses the threshold, but
    assert not session.prediction_mask(d.id, THRESHOLD).any()  # a passed part has no defect mask
    np.testing.assert_array_equal(session.prediction_mask(a.id, THRESHOLD), np.ones((8, 10), bool))

    assert review.final_label(session, a.id) is None and review.final_mask(session, a.id) is None
    session.decide(a.id, "accept", THRESHOLD)  # flagged, confirmed: the model's mask
    session.decide(b.id, "reject", THRESHOLD)  # flagged, but good: no mask
    session.decide(c.id, "reject", THRESHOLD)  # passed, but defective: the model's mask, empty
    drawn = np.zeros((8, 10), bool)
    drawn[5:7, 6:9] = True
    session.decide(d.id, "correct", THRESHOLD, drawn)

    assert [review.final_label(session, i.id) for i in (a, b, c, d)] == [True, False, True, True]
    np.testing.assert_array_equal(review.final_mask(session, a.id), np.ones((8, 10), bool))
    np.testing.assert_array_equal(review.final_mask(session, b.id), np.zeros((8, 10), bool))
    np.testing.assert_array_equal(review.final_mask(session, c.id), np.zeros((8, 10), bool))
    np.testing.assert_array_equal(review.final_mask(session, d.id), drawn)
    saved = np.asarray(Image.open(session.folder / session.decision(d.id).mask))
    assert saved.dtype == np.uint8 and set(np.unique(saved)) == {0, 255}

    session.decide(a.id, "accept", a.score + 0.01)  # at a stricter threshold a was passed: accept means good
    assert review.final_label(session, a.id) is False and not review.final_mask(session, a.id).any()
    session.decide(d.id, "correct", THRESHOLD, np.zeros((8, 10), bool))  # an empty correction: good after all
    assert review.final_label(session, d.id) is False


def test_filters_and_ordering(session):
    a, b, c, d = session.items
    assert review.ordered(session, "all").tolist() == [a.id, b.id, c.id, d.id]
    session.decide(b.id, "accept", THRESHOLD)
    assert review.ordered(session, "unreviewed").tolist() == [a.id, c.id, d.id]
    assert review.ordered(session, "defective", THRESHOLD).tolist() == [a.id, b.id]
    assert review.ordered(session, "grey", THRESHOLD, low=c.score, high=a.score).tolist() == [b.id, c.id]  # low included, high not
    with pytest.raises(ValueError):
        review.ordered(session, "grey", THRESHOLD)
    with pytest.raises(ValueError):
        review.ordered(session, "defective")
    with pytest.raises(ValueError):
        review.ordered(session, "everything", THRESHOLD)


def test_images_out_of_the_models_domain_are_kept_and_shown_apart(tmp_path, parts):
    session = ReviewSession.create(tmp_path / "sessions", "other", Familiar(), parts)
    a, b, c, d = session.items  # familiarity 0.09 and 0.19 (out of domain), 0.67 and 0.86
    for s in (session, _reopened(session)):
        assert [i.familiarity for i in s.items] == pytest.approx([1 - i.score for i in (a, b, c, d)])
        assert s.out_of_domain.tolist() == [True, True, False, False]
        assert review.ordered(s, "out-of-domain").tolist() == [a.id, b.id]
    session.rescore(Dimmer(), ScoredBy("dimmer", "dimmer"))  # a model without memory claims nothing
    for s in (session, _reopened(session)):
        assert [i.familiarity for i in s.items] == [None] * 4 and not s.out_of_domain.any()
        assert review.ordered(s, "out-of-domain").tolist() == []


def test_sessions_written_before_familiarity_was_recorded_still_open(tmp_path, parts):
    session = ReviewSession.create(tmp_path / "sessions", "old", Familiar(), parts)
    path = session.folder / "items.json"
    data = json.loads(path.read_text())
    for record in data["items"]:
        del record["familiarity"]
    path.write_text(json.dumps({**data, "format_version": 4}))
    old = _reopened(session)
    assert [i.score for i in old.items] == [i.score for i in session.items]
    assert [i.familiarity for i in old.items] == [None] * 4 and not old.out_of_domain.any()
    assert old.domain_unchecked.all() and not session.domain_unchecked.any()
    old.rescore(Familiar(), ScoredBy("familiar", "familiar"))  # a re-score measures it
    assert not old.domain_unchecked.any()


class PeakBelow(BrightnessDetector):
    """A defective verdict from a score above a map whose own peak stays just below the threshold (the memory's part
    of a score can do that): `PEAK_THRESHOLD` lies above the map's peak and below its float16 rounding up."""

    def predict_batch(self, images, batch_size=8):
        amap = np.linspace(0, 9.9041, 64 * 80, dtype=np.float32).reshape(64, 80)
        return [Prediction(10.29, 1.0, PEAK_THRESHOLD, amap) for _ in images]


PEAK_THRESHOLD = float(np.nextafter(np.float32(9.9041), np.float32(np.inf)))


def test_a_defective_verdict_whose_map_stays_below_the_threshold_masks_the_hottest_pixels(tmp_path, parts):
    """The kept map is rounded up to float16: a few rounded pixels reached the threshold, and the review's mask (shown,
    edited, exported) was those 5 pixels where `rbd predict`'s is the map's hottest 1 %."""
    session = ReviewSession.create(tmp_path / "sessions", "peak", PeakBelow(), parts[:1])
    amap = PeakBelow().predict_batch([None])[0].anomaly_map
    expected = defect_mask(amap, 10.29, PEAK_THRESHOLD)
    assert (session.anomaly_map(0) >= PEAK_THRESHOLD).sum() < expected.sum() / 10  # what the mask was
    for s in (session, _reopened(session)):
        np.testing.assert_array_equal(s.prediction_mask(0, PEAK_THRESHOLD), expected)
    path = session.folder / "items.json"  # a review written before the peak was recorded opens, its map as kept
    data = json.loads(path.read_text())
    del data["items"][0]["peak"]
    path.write_text(json.dumps({**data, "format_version": 5}))
    assert _reopened(session).item(0).peak is None


def test_ties_keep_upload_order(tmp_path):
    paths = [_part(tmp_path / f"{name}.png", 0.5) for name in "zyx"]
    session = ReviewSession.create(tmp_path / "sessions", "ties", BrightnessDetector(), paths)
    assert [session.item(i).file_name for i in review.ordered(session, "all")] == ["z.png", "y.png", "x.png"]


def test_metrics_by_hand(session):
    a, b, c, d = session.items
    empty = {"n_reviewed": 0, "n_defective": 0, "auroc": None, "precision": None, "recall": None}
    assert review.metrics(session, THRESHOLD) == empty

    session.decide(d.id, "accept", THRESHOLD)  # one good image, passed: no positives anywhere
    assert review.metrics(session, THRESHOLD) == {**empty, "n_reviewed": 1}

    session.decide(a.id, "accept", THRESHOLD)  # defective, flagged
    session.decide(b.id, "reject", THRESHOLD)  # good, flagged
    session.decide(c.id, "reject", THRESHOLD)  # defective, passed
    # Flagged {a, b}, defective {a, c}: precision 1/2, recall 1/2. Defective scores {a, c} vs good {b, d}:
    # a beats b and d, c beats d only -> AUROC 3/4.
    result = review.metrics(session, THRESHOLD)
    assert result == {"n_reviewed": 4, "n_defective": 2, "auroc": 0.75, "precision": 0.5, "recall": 0.5}
    assert result["auroc"] == metrics.auroc([True, False, True, False], [i.score for i in (a, b, c, d)])


def test_recalibration_adds_images_reviewed_as_good(session):
    a, b, c, d = session.items
    session.decide(a.id, "accept", THRESHOLD)  # defective: not a normal score
    session.decide(b.id, "reject", THRESHOLD)  # good
    session.decide(c.id, "reject", THRESHOLD)  # passed at 0.5, so defective there
    session.decide(d.id, "accept", THRESHOLD)  # good
    calibration = BrightnessDetector().calibration
    combined = calibration.normal_scores + [b.score, d.score]
    assert review.normal_images(session) == [b.image_path, d.image_path]

    updated = review.recalibrated(_reopened(session))  # from the stored calibration: no detector needed
    assert updated.threshold == calibrate(combined, false_alarm_rate=0.25).threshold
    assert sorted(updated.normal_scores) == sorted(combined)
    assert updated.synthetic_scores == calibration.synthetic_scores and updated.false_alarm_rate == 0.25
    assert review.recalibrated(session, 0.5).threshold == calibrate(combined, false_alarm_rate=0.5).threshold
    # the model's card says so (downloaded or pushed from the app): it said all were held out or training images
    from rbd.calibration import Calibration
    from rbd.checkpoint import _threshold_line

    assert Calibration.from_dict(updated.to_dict()) == updated and updated.reviewed == 2 and calibration.reviewed == 0
    assert (f"on 6 normal images: 2 reviewed as good in the app, the others held-out ones or training images scored by a "
            "memory blind to their own patches") in _threshold_line(updated.threshold, updated)
    # that model downloaded, the review re-scored by it and recalibrated again: its images were counted twice (8 of 6)
    recalibrated_model = BrightnessDetector()
    recalibrated_model.calibration = updated
    session.rescore(recalibrated_model, ScoredBy("recalibrated", "recalibrated"))
    again = review.recalibrated(session)
    assert sorted(again.normal_scores) == sorted(combined) and again.reviewed == 2
    # another review on that model keeps the first one's images (it dropped them) and adds its own
    other = ReviewSession.create(session.folder.parent, "s2", recalibrated_model, [a.image_path, d.image_path])
    other.decide(1, "accept", THRESHOLD)  # good
    both = review.recalibrated(other)
    assert len(both.normal_scores) == 7 and both.reviewed == 3 and [count for _, count in both.reviews] == [2, 1]
    assert session.session_id not in json.dumps(both.to_dict())  # its tag only: the id opens the review


def test_a_model_calibrated_for_a_rate_of_0_recalibrates_at_the_controls_smallest_rate(tmp_path, parts):
    """A checkpoint saved with a rate of 0 (refused since): Recalibrate asked calibrate() for 0, and failed."""
    import dataclasses

    from rbd.thresholds import RATE_RANGE

    detector = BrightnessDetector()
    detector.calibration = dataclasses.replace(detector.calibration, false_alarm_rate=0.0)
    session = ReviewSession.create(tmp_path / "sessions", "s0", detector, parts)
    session.decide(session.items[1].id, "reject", THRESHOLD)  # good
    assert review.recalibrated(session).false_alarm_rate == RATE_RANGE[0]


def test_images_accepted_as_good_that_score_like_the_synthetic_defects_are_named(session):
    """A defect accepted as good by mistake lifts a recalibrated threshold past real defects: the app names them first."""
    synthetic = BrightnessDetector().calibration.synthetic_scores
    typical = float(np.median(synthetic))
    for item in session.items:
        session.decide(item.id, "reject" if item.score >= THRESHOLD else "accept", THRESHOLD)  # every image called good
    named = review.good_like_defects(session)
    assert named == [(item.file_name, item.score) for item in session.items if item.score >= typical] and named


def _exported_rows(path):
    with zipfile.ZipFile(path) as archive:
        return list(csv.DictReader(io.StringIO(archive.read("decisions.csv").decode())))


def test_export_zip(session, tmp_path):
    a, b, c, d = session.items
    drawn = np.zeros((8, 10), bool)
    drawn[5:7, 6:9] = True
    drawn[0, 9] = True  # a second region
    session.decide(a.id, "reject", THRESHOLD)
    session.decide(d.id, "correct", THRESHOLD, drawn)

    path = review.export_zip(session, tmp_path / "out" / "review.zip", THRESHOLD)
    assert path == tmp_path / "out" / "review.zip" and [p.name for p in path.parent.iterdir()] == ["review.zip"]
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["coco.json", "decisions.csv", "masks/a.png", "masks/d.png"]
        rows = list(csv.DictReader(io.StringIO(archive.read("decisions.csv").decode())))
        masks = {name: np.asarray(Image.open(io.BytesIO(archive.read(f"masks/{name}.png")))) for name in "ad"}
        coco = json.loads(archive.read("coco.json"))

    assert [(r["file"], r["verdict"], r["decision"], r["corrected"], r["label"], r["decided_on"], r["mask"]) for r in rows] == [
        ("a.png", "defective", "reject", "no", "good", "defective", "masks/a.png"),
        ("b.png", "defective", "", "", "", "", ""),
        ("c.png", "good", "", "", "", "", ""),
        ("d.png", "good", "correct", "yes", "defective", "good", "masks/d.png"),
    ]
    rows = _exported_rows(review.export_zip(session, tmp_path / "later.zip", a.score + 0.01))  # a threshold above a's score
    assert (rows[0]["verdict"], rows[0]["decision"], rows[0]["label"], rows[0]["decided_on"]) == ("good", "reject", "good", "defective")
    assert float(rows[0]["score"]) == pytest.approx(a.score, abs=1e-6)
    assert rows[0]["timestamp"] == session.decision(a.id).timestamp and rows[1]["timestamp"] == ""

    assert masks["a"].shape == (8, 10) and not masks["a"].any()
    np.testing.assert_array_equal(masks["d"], drawn.astype(np.uint8) * 255)

    assert [image["file_name"] for image in coco["images"]] == ["a.png", "d.png"]
    d_id = coco["images"][1]["id"]
    regions = [decode_rle(ann["segmentation"]) for ann in coco["annotations"]]
    assert len(regions) == 2 and all(ann["image_id"] == d_id for ann in coco["annotations"])
    np.testing.assert_array_equal(np.logical_or.reduce(regions), drawn)


def test_a_rejected_good_verdict_is_a_defect_with_no_known_place_in_the_export(session, tmp_path):
    """An empty mask would tell whoever trains on coco.json or masks/ that the defective image is defect-free."""
    c = session.items[2]
    session.decide(c.id, "reject", THRESHOLD)  # c was good: the inspector says defective, and paints nothing
    path = review.export_zip(session, tmp_path / "review.zip", THRESHOLD)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["decisions.csv", "coco.json"]
        coco = json.loads(archive.read("coco.json"))
    row = _exported_rows(path)[2]
    assert (row["file"], row["decision"], row["label"], row["mask"]) == ("c.png", "reject", "defective", "unknown")
    assert coco["images"] == [] and coco["annotations"] == []
    painted = np.zeros((8, 10), bool)
    painted[4, 4] = True
    session.decide(c.id, "correct", THRESHOLD, painted)  # now it has a place
    assert _exported_rows(review.export_zip(session, tmp_path / "again.zip", THRESHOLD))[2]["mask"] == "masks/c.png"


def test_an_export_is_of_the_review_as_it_stood_when_it_began(session, tmp_path, monkeypatch):
    """The inspector goes on deciding while an export runs: it neither fails (a mask name missing for an image
    decided meanwhile) nor mixes one image's decision with a later one's label."""
    a, b = session.items[:2]
    session.decide(a.id, "accept", THRESHOLD)
    decided_mask = review.export.decided_mask

    def meanwhile(*args):
        if session.decision(b.id) is None:
            session.decide(b.id, "accept", THRESHOLD)  # a key pressed during the export
            session.decide(a.id, "reject", THRESHOLD)
        return decided_mask(*args)

    monkeypatch.setattr(review.export, "decided_mask", meanwhile)
    rows = _exported_rows(review.export_zip(session, tmp_path / "review.zip", THRESHOLD))
    assert [(r["decision"], r["label"]) for r in rows[:2]] == [("accept", "defective"), ("", "")]
    assert session.decision(b.id).decision == "accept"  # kept for the next export


def test_an_export_judges_every_decision_by_one_model(session, tmp_path, monkeypatch):
    """A re-score that switched models during an export judged a decision of its snapshot by the new model's map
    (an accepted defect's mask came out empty: "unknown"). It waits for the export."""
    a = session.items[0]
    session.decide(a.id, "accept", THRESHOLD)  # defective: its mask is the model's
    rescoring = []
    decided_mask = review.export.decided_mask

    def meanwhile(*args):
        if not rescoring:
            rescoring.append(threading.Thread(target=session.rescore, args=(Dimmer(), ScoredBy("dimmer"))))
            rescoring[0].start()
            time.sleep(0.5)  # a re-score of four small images would have switched by now
        return decided_mask(*args)

    monkeypatch.setattr(review.export, "decided_mask", meanwhile)
    rows = _exported_rows(review.export_zip(session, tmp_path / "review.zip", THRESHOLD))
    rescoring[0].join()
    assert rows[0]["mask"] == "masks/a.png" and session.scored_by.name == "dimmer"  # then re-scored, its mask frozen
    np.testing.assert_array_equal(review.final_mask(session, a.id), np.ones((8, 10), bool))


def test_an_export_pressed_while_images_are_added_is_of_the_review_at_the_press(session, tmp_path):
    """It waited for the whole upload's scoring (minutes for a folder), then took the images added after the press."""
    held, scored_one = threading.Event(), threading.Event()

    class Held(BrightnessDetector):
        def predict_batch(self, images, batch_size=8):
            if scored_one.is_set():
                held.wait(10)  # the second batch waits until the export is done
            scored_one.set()
            return super().predict_batch(images, batch_size)

    more = [_part(tmp_path / f"more{i}.png", 0.2 + i / 10) for i in range(2)]
    adding = threading.Thread(target=session.add, args=(Held(), more), kwargs={"batch_size": 1})
    adding.start()
    try:
        assert scored_one.wait(10)
        started = time.monotonic()
        rows = _exported_rows(review.export_zip(session, tmp_path / "review.zip", THRESHOLD))
        assert time.monotonic() - started < 5 and not held.is_set()  # done while the upload is still scored
        assert len(rows) <= 5  # the four, and the image added before the press at most
    finally:
        held.set()
        adding.join()
    assert len(session.items) == 6


def test_a_decision_on_an_image_still_being_scored_survives_a_crash_with_its_image(tmp_path, parts, monkeypatch):
    """The review shows images as their batch is scored, before items.json is next written: a decision on one is
    saved with its item, or after a crash the next image added would take its id, and the decision with it."""
    session = ReviewSession(tmp_path / "sessions" / "s")
    session.add(BrightnessDetector(), parts[:2])
    died = False
    write_items = store.ReviewSession._write_items
    monkeypatch.setattr(store.ReviewSession, "_write_items", lambda self: None if died else write_items(self))

    def decide_then_die(done, total):
        nonlocal died
        if len(session.items) == 3 and not died:
            session.decide(2, "reject", THRESHOLD)
            died = True  # the server stops here: nothing more is written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.add(BrightnessDetector(), parts[2:], progress=decide_then_die, batch_size=1)
    resumed = _reopened(session)
    assert [item.file_name for item in resumed.items] == ["a.png", "b.png", "c.png"] and resumed.decision(2).decision == "reject"


def test_a_review_says_while_images_are_scored_into_it_from_another_thread(tmp_path, parts):
    """A page reloaded during a Score showed the images scored so far as if they were all: the review now says so."""
    import threading

    session = ReviewSession(tmp_path / "sessions" / "s")
    seen, go_on = threading.Event(), threading.Event()

    def held(done, total):
        seen.set()
        go_on.wait(10)

    scoring = threading.Thread(target=session.add, args=(BrightnessDetector(), parts[:2]), kwargs={"progress": held, "batch_size": 1})
    assert not session.scoring
    scoring.start()
    assert seen.wait(10)
    assert session.scoring and ReviewSession(session.folder).scoring  # any object on the folder (another request's) knows
    go_on.set()
    scoring.join(10)
    assert not session.scoring and len(session.items) == 2


def test_decisions_on_images_lost_before_they_were_saved_are_dropped(session, tmp_path):
    """A log written by older versions may hold a decision on an image items.json lacks: it is cut out, not given
    to the next image added."""
    lost = {"id": 4, "decision": "reject", "verdict": "good", "threshold": THRESHOLD, "timestamp": "2026-12-01T00:00:00.000+00:00",
            "mask": None}
    session.decide(0, "accept", THRESHOLD)
    with open(session.folder / store.DECISIONS_FILE, "a") as f:
        f.write(json.dumps(lost) + "\n")
    resumed = _reopened(session)
    resumed.add(BrightnessDetector(), [_part(tmp_path / "fifth.png", 0.3)])  # a fifth image: id 4
    again = _reopened(resumed)
    assert again.decision(4) is None and np.isnan(again.labels[4]) and again.decision(0).decision == "accept"
    assert len((session.folder / store.DECISIONS_FILE).read_text().splitlines()) == 1


def test_uploading_more_keeps_decisions_and_names_unique(session, tmp_path):
    drawn = np.zeros((8, 10), bool)
    drawn[2, 2] = True
    session.decide(0, "accept", THRESHOLD)
    session.decide(3, "correct", THRESHOLD, drawn)
    more = tmp_path / "more"
    more.mkdir()
    extra = [_part(more / "A.png", 0.6), _part(more / "e.jpg", 0.2)]  # "A" clashes with "a" on case-blind disks

    grown = ReviewSession.create(session.folder.parent, session.session_id, BrightnessDetector(), extra)
    resumed = _reopened(session)
    assert [i.id for i in resumed.items] == [0, 1, 2, 3, 4, 5]
    assert [i.file_name for i in resumed.items] == ["a.png", "b.png", "c.png", "d.png", "A_1.png", "e.jpg"]
    assert resumed.items[4].image_path.read_bytes() == extra[0].read_bytes()
    for s in (grown, resumed):
        assert s.decision(0).decision == "accept" and s.decision(4) is None
        np.testing.assert_array_equal(review.final_mask(s, 3), drawn)


def test_images_the_review_holds_already_are_not_added_again(session, parts, tmp_path):
    """A folder scored again once a new image had joined it: every image came in a second time (`a_1.png`), to be
    reviewed and counted twice."""
    folder = tmp_path / "line3"
    folder.mkdir()
    again = [folder / p.name for p in parts[:2]]
    for source, copy in zip(parts, again):
        copy.write_bytes(source.read_bytes())
    new = _part(folder / "new.png", 0.7)
    twice = folder / "new_copy.png"
    twice.write_bytes(new.read_bytes())  # a copy under another name in the same upload: taken once too
    with pytest.warns(UserWarning, match=r"3 image\(s\) with the same bytes as an image of this review, or an earlier one of this "
                                         r"upload, were not added again: line3/a.png, line3/b.png, line3/new_copy.png"):
        added = session.add(BrightnessDetector(), [*again, new, twice], upload=tmp_path)
    assert [item.file_name for item in added] == ["line3/new.png"] and len(_reopened(session).items) == len(parts) + 1
    with pytest.warns(UserWarning, match="same bytes as an image of this review"):
        assert session.add(BrightnessDetector(), again, upload=tmp_path) == []  # nothing new: nothing scored


def test_images_keep_their_folders_in_the_upload_through_the_export(tmp_path):
    upload = tmp_path / "upload"
    for folder in ("line/good", "line/broken", "line/v1.2"):
        (upload / folder).mkdir(parents=True)
    paths = [_part(upload / "line/good/000.png", 0.1), _part(upload / "line/broken/000.png", 0.9),
             _part(upload / "line/v1.2/000.png", 0.5), _part(tmp_path / "elsewhere.png", 0.3)]
    session = ReviewSession.create(tmp_path / "sessions", "tree", BrightnessDetector(), paths, upload=upload)
    more = tmp_path / "later"
    (more / "line/good").mkdir(parents=True)
    _part(more / "line/good/000.png", 0.2)  # the same path in a second upload: numbered
    # and said: the review and its export name a file the user does not have
    with pytest.warns(UserWarning, match=r"^1 image\(s\) took a name already in this review and are listed numbered: "
                                         r"line/good/000.png as line/good/000_1.png$"):
        session.add(BrightnessDetector(), [more / "line/good/000.png"], upload=more)
    names = ["line/good/000.png", "line/broken/000.png", "line/v1.2/000.png", "elsewhere.png", "line/good/000_1.png"]
    assert [item.file_name for item in _reopened(session).items] == names
    assert [item.image_path.relative_to(session.folder / "images").as_posix() for item in session.items] == [
        f"{i}.png" for i in range(5)]  # copies by id: no name clashes with another upload's folder (`photo.png/`)
    for item in session.items[:2]:
        session.decide(item.id, "accept", THRESHOLD)

    with zipfile.ZipFile(review.export_zip(session, tmp_path / "review.zip", THRESHOLD)) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("decisions.csv").decode())))
        coco = json.loads(archive.read("coco.json"))
        masks = sorted(name for name in archive.namelist() if name.startswith("masks/"))
    assert [row["file"] for row in rows] == names
    assert masks == ["masks/line/broken/000.png", "masks/line/good/000.png"]
    assert [image["file_name"] for image in coco["images"]] == names[:2]



def test_a_long_scoring_writes_its_items_as_it_goes(tmp_path, monkeypatch):
    """items.json is rewritten while scoring (every SAVE_EVERY_S), so a crash loses little."""
    monkeypatch.setattr(store, "SAVE_EVERY_S", -1.0)  # at every image
    written, write = [], ReviewSession._write_items
    monkeypatch.setattr(ReviewSession, "_write_items", lambda self: written.append(len(self._items)) or write(self))
    ReviewSession.create(tmp_path / "sessions", "long", BrightnessDetector(), [_part(tmp_path / f"{i}.png", i / 4) for i in range(3)])
    assert written == [1, 2, 3, 3]  # and once at the end


def test_names_alike_in_two_unicode_forms_are_one_name_numbered_apart(tmp_path, monkeypatch):
    """"é" as one letter and as e plus an accent (as macOS writes names) look alike: they were kept as two names, and
    their masks as two files of the export that macOS unpacks as one, one overwriting the other."""
    upload = tmp_path / "upload"
    upload.mkdir()
    composed, decomposed = "fissure_\u00e9.png", "fissure_e\u0301.png"
    paths = [_part(upload / composed, 0.8), _part(upload / decomposed, 0.9)]
    with pytest.warns(UserWarning, match="listed numbered"):
        session = ReviewSession.create(tmp_path / "sessions", "forms", BrightnessDetector(), paths, upload=upload)
    assert sorted(item.file_name for item in session.items) == [composed, "fissure_\u00e9_1.png"]
    for item in session.items:
        session.decide(item.id, "accept", THRESHOLD)
    with zipfile.ZipFile(review.export_zip(session, tmp_path / "review.zip", THRESHOLD)) as archive:
        masks = [name for name in archive.namelist() if name.startswith("masks/")]
    assert len({unicodedata.normalize("NFC", name) for name in masks}) == len(masks) == 2
    with monkeypatch.context() as before:  # a review begun before names were kept in one form
        before.setattr(store, "_upload_name", lambda path, upload: PurePosixPath(path.relative_to(upload).as_posix()))
        begun_before = ReviewSession.create(tmp_path / "sessions", "begun", BrightnessDetector(), [paths[1]], upload=upload)
    with pytest.warns(UserWarning, match="listed numbered"):
        begun_before.add(BrightnessDetector(), [paths[0]], upload=upload)
    assert [item.file_name for item in begun_before.items] == [decomposed, "fissure_\u00e9_1.png"]


def test_a_mask_named_as_a_folder_of_another_mask_is_numbered_so_the_zip_unpacks(tmp_path):
    """`photo.png` beside a folder `photo.png/` (macOS zips a file as `photo.png.zip`): its mask
    `masks/photo.png` would also be a folder of `masks/photo.png/photo.png`, and unzipping fails on one."""
    first, second = tmp_path / "first", tmp_path / "second"
    (second / "photo.png").mkdir(parents=True)
    first.mkdir()
    session = ReviewSession.create(tmp_path / "sessions", "clash", BrightnessDetector(),
                                   [_part(first / "photo.png", 0.9), _part(first / "photo_1.png", 0.8)], upload=first)
    session.add(BrightnessDetector(), [_part(second / "photo.png/photo.png", 0.2)], upload=second)
    for item in session.items:
        session.decide(item.id, "accept", THRESHOLD)
    path = review.export_zip(session, tmp_path / "review.zip", THRESHOLD)
    with zipfile.ZipFile(path) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("decisions.csv").decode())))
        archive.extractall(tmp_path / "unpacked")
    assert [(row["file"], row["mask"]) for row in rows] == [
        ("photo.png", "masks/photo_2.png"), ("photo_1.png", "masks/photo_1.png"), ("photo.png/photo.png", "masks/photo.png/photo.png")]
    for row in rows:
        assert Image.open(tmp_path / "unpacked" / row["mask"]).size == (10, 8)

def test_an_uploaded_folder_named_as_a_stored_image_is_stored_too(tmp_path):
    """macOS zips one file as `photo.png.zip`, which unpacks to a folder `photo.png/`."""
    first, second = tmp_path / "first", tmp_path / "second"
    (second / "photo.png").mkdir(parents=True)
    first.mkdir()
    session = ReviewSession.create(tmp_path / "sessions", "clash", BrightnessDetector(), [_part(first / "photo.png", 0.9)], upload=first)
    session.add(BrightnessDetector(), [_part(second / "photo.png/photo.png", 0.2)], upload=second)
    resumed = _reopened(session)
    assert [item.file_name for item in resumed.items] == ["photo.png", "photo.png/photo.png"]
    assert resumed.image(1).mean() < resumed.image(0).mean()


def test_two_objects_on_one_session_do_not_overwrite_each_other(session, tmp_path):
    """The app opens a new ReviewSession per request, so objects on one folder often overlap."""
    other = _reopened(session)
    first, second = np.zeros((8, 10), bool), np.zeros((8, 10), bool)
    first[0, 0] = second[7, 9] = True
    session.decide(0, "correct", THRESHOLD, first)
    other.decide(0, "correct", THRESHOLD, second)  # its count of lines is stale
    lines = [json.loads(line) for line in (session.folder / "decisions.jsonl").read_text().splitlines()]
    assert lines[0]["mask"] != lines[1]["mask"]
    np.testing.assert_array_equal(np.asarray(Image.open(session.folder / lines[0]["mask"])) > 0, first)
    np.testing.assert_array_equal(review.final_mask(_reopened(session), 0), second)

    (tmp_path / "more").mkdir()
    other.add(BrightnessDetector(), [_part(tmp_path / "more" / "a.png", 0.1)])
    session.add(BrightnessDetector(), [_part(tmp_path / "more" / "b.png", 0.2)])  # its items are stale
    assert [(i.id, i.file_name) for i in _reopened(session).items[4:]] == [(4, "a_1.png"), (5, "b_1.png")]


def test_unreadable_uploads_are_skipped(tmp_path, parts):
    junk = tmp_path / "notes.png"
    junk.write_text("not an image")
    with pytest.warns(UserWarning, match="notes.png"):
        session = ReviewSession.create(tmp_path / "sessions", "s", BrightnessDetector(), [junk, parts[0]])
    assert [i.file_name for i in session.items] == ["a.png"]
    with pytest.raises(NoImagesError, match="no usable image among 1 file.*notes.png"):
        ReviewSession.create(tmp_path / "sessions", "none", BrightnessDetector(), [junk])
    assert ReviewSession.open(tmp_path / "sessions", "none") is None


def test_item_sizes_follow_the_decoded_image(session, parts):
    for item, path in zip(session.items, parts):
        assert read_image(item.image_path).shape[:2] == (item.height, item.width) == session.anomaly_map(item.id).shape


def test_opening_waits_for_an_append_in_progress(session):
    """Opening cuts off a torn last line; another object's line still being written is not torn."""
    session.decide(0, "accept", THRESHOLD)
    log = session.folder / "decisions.jsonl"
    line = log.read_bytes().replace(b'"id": 0', b'"id": 1')
    opened = []
    with session._lock:  # as decide() holds it while appending
        with open(log, "ab") as f:
            f.write(line[:20])
        opener = threading.Thread(target=lambda: opened.append(_reopened(session)))
        opener.start()
        opener.join(0.3)
        assert opener.is_alive()  # waiting for the lock, not reading half a line
        with open(log, "ab") as f:
            f.write(line[20:])
    opener.join()
    assert opened[0].decision(1).decision == "accept"
    assert log.read_bytes().count(b"\n") == 2


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[]", b'{"items": []}', b'{"format_version": 99, "items": []}',
                                     b'{"format_version": 1, "items": []}', b'{"format_version": 2, "items": []}',
                                     b'{"format_version": 2, "items": [{"id": 0}], "calibration": null}',
                                     b'{"format_version": 3, "items": [], "calibration": null}'])
def test_unreadable_items_json_is_a_clear_error(session, content):
    (session.folder / "items.json").write_bytes(content)
    with pytest.raises(InvalidInputError, match="items.json"):
        _reopened(session)


def test_decisions_without_items_json_are_an_error(session, parts):
    """Else the old decisions would be taken for decisions on the next images added."""
    session.decide(0, "accept", THRESHOLD)
    (session.folder / "items.json").unlink()
    with pytest.raises(InvalidInputError, match="items.json is missing"):
        ReviewSession.create(session.folder.parent, session.session_id, BrightnessDetector(), parts)


def test_the_session_keeps_the_model_that_scored_it(session, parts, tmp_path):
    assert _reopened(session).calibration == BrightnessDetector().calibration
    retrained = BrightnessDetector([0.1, 0.2, 0.3, 0.45])
    with pytest.raises(InvalidInputError, match="scored by unnamed model: re-score it"):
        ReviewSession.create(session.folder.parent, session.session_id, retrained, parts)
    assert len(_reopened(session).items) == 4

    moved = BrightnessDetector()
    moved.threshold = 0.7  # the slider moved: still the same model
    assert len(ReviewSession.create(session.folder.parent, session.session_id, moved, [_part(tmp_path / "e.png", 0.1)]).items) == 5


def test_a_named_model_is_recorded_and_told_apart_by_its_calibration_not_its_key(tmp_path, parts):
    """A model shared in the app, or downloaded, is the same model under another key; a model retrained
    into the same folder, or a Hub branch pushed again, is another model under the same key."""
    bottle = ScoredBy("bottle", "models/private/b1/bottle")
    session = ReviewSession.create(tmp_path, "named", BrightnessDetector(), parts[:2], model=bottle)
    assert _reopened(session).scored_by == bottle
    session.add(BrightnessDetector(), parts[2:3], model=ScoredBy("bottle", "models/shared/bottle"))  # shared: the same model
    with pytest.raises(InvalidInputError, match="scored by bottle"):  # the same key, retrained
        session.add(BrightnessDetector([0.1, 0.2, 0.3, 0.45]), parts[3:], model=bottle)
    assert len(_reopened(session).items) == 3


def test_rescoring_keeps_decisions_and_freezes_the_old_models_masks(session, parts):
    a, b, c, d = session.items
    session.decide(a.id, "accept", THRESHOLD)  # defective: the model's mask at 0.5, all ones
    session.decide(b.id, "reject", THRESHOLD)  # good: no mask
    old_mask = review.final_mask(session, a.id)
    assert old_mask.all()

    dimmer = Dimmer()
    session.rescore(dimmer, ScoredBy("dimmer", "dimmer"))
    for s in (session, _reopened(session)):
        assert [i.score for i in s.items] == pytest.approx([i.score / 4 for i in (a, b, c, d)])
        assert s.scored_by.name == "dimmer" and s.calibration == dimmer.calibration
        assert [s.decision(i).decision if s.decision(i) else None for i in range(4)] == ["accept", "reject", None, None]
        assert review.final_label(s, a.id) is True and review.final_label(s, b.id) is False
        np.testing.assert_array_equal(review.final_mask(s, a.id), old_mask)  # not the new map at 0.5 (all below)
        np.testing.assert_allclose(s.anomaly_map(a.id), session.anomaly_map(a.id), atol=1e-3)
    assert not session.prediction_mask(a.id, THRESHOLD).any()
    session.add(dimmer, parts[:1], model=ScoredBy("dimmer", "dimmer"))  # images scored by the new model are welcome


def _state(session):
    """What a re-score changes: model, calibration, scores and maps."""
    return (session.scored_by, session.calibration, [i.score for i in session.items],
            [session.anomaly_map(i.id).tolist() for i in session.items])


def test_a_rescore_cut_short_leaves_the_session_as_the_old_model_scored_it(session):
    before = _state(session)
    with pytest.raises(RuntimeError, match="stopped"):
        session.rescore(Dimmer(fail_after=1), ScoredBy("dimmer", "dimmer"), batch_size=2)  # the second batch fails
    for s in (session, _reopened(session)):
        assert _state(s) == before
    assert sorted(p.name for p in session.folder.glob("maps*")) == ["maps"]


def test_a_rescore_with_an_unreadable_image_changes_nothing_and_says_which(session):
    before = _state(session)
    session.items[2].image_path.write_bytes(b"not an image any more")
    with pytest.warns(UserWarning, match=r"^skipped 1 unreadable file\(s\): c.png: ") as told, pytest.raises(
            InvalidInputError, match=r"1 of this review's images can no longer be read \(c.png\)"):
        session.rescore(Dimmer(), ScoredBy("dimmer", "dimmer"))
    assert str(session.folder) not in str(told[0].message)  # the stored copy's server path
    assert _state(_reopened(session)) == _state(session) == before


def test_maps_left_by_a_crashed_rescore_are_cleared_by_the_next(session):
    (session.folder / "maps-7").mkdir()
    (session.folder / "maps-7" / "0.npy").write_bytes(b"half a map")  # a crash before items.json switched to it
    session.rescore(Dimmer(), ScoredBy("dimmer", "dimmer"))
    assert sorted(p.name for p in session.folder.glob("maps*")) == ["maps-1"]
    (session.folder / "maps").mkdir()  # a crash after the switch, before the old folder was removed
    session.rescore(BrightnessDetector(), ScoredBy("bright", "bright"))  # and back: each re-score in a new folder
    assert sorted(p.name for p in session.folder.glob("maps*")) == ["maps-2"]
    reopened = _reopened(session)
    assert _state(reopened) == _state(session) and reopened.scored_by.name == "bright"
    assert reopened.anomaly_map(0).max() == pytest.approx(1.0, abs=1e-3)  # the bright spot, at full strength again


def test_a_failed_switch_keeps_memory_and_disk_alike(session, monkeypatch):
    before = _state(session)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ReviewSession, "_write_items", disk_full)
    with pytest.raises(OSError, match="No space"):
        session.rescore(Dimmer(), ScoredBy("dimmer", "dimmer"))
    monkeypatch.undo()
    assert _state(session) == _state(_reopened(session)) == before
    assert sorted(p.name for p in session.folder.glob("maps*")) == ["maps"]


def test_another_object_on_the_folder_follows_a_rescore(session):
    other = _reopened(session)  # as a request that still holds the session while another re-scores it
    session.rescore(Dimmer(), ScoredBy("dimmer", "dimmer"))
    np.testing.assert_array_equal(other.anomaly_map(0), session.anomaly_map(0))
    assert other.scored_by.name == "dimmer"


def test_an_items_file_naming_a_maps_folder_outside_the_session_is_refused(session):
    path = session.folder / "items.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "maps": "../../elsewhere"}))
    with pytest.raises(InvalidInputError, match="corrupt"):
        _reopened(session)


def test_sessions_written_before_models_were_recorded_still_open(session):
    session.decide(0, "accept", THRESHOLD)
    path = session.folder / "items.json"
    data = json.loads(path.read_text())
    del data["model"]
    path.write_text(json.dumps({**data, "format_version": 2}))
    old = _reopened(session)
    assert old.items == session.items and old.decision(0).decision == "accept"
    assert "before rbd named them" in old.scored_by.name
    old.add(BrightnessDetector(), [_part(session.folder.parent / "e.png", 0.1)])  # told apart by calibration, as then
    assert len(_reopened(session).items) == 5


def test_huge_images_are_scored_on_a_downscaled_copy(tmp_path, parts, monkeypatch):
    monkeypatch.setattr("rbd.review.store.MAX_SIDE", 6)
    with pytest.warns(UserWarning, match="a.png is 10x8: downscaled to 6x5; b.png is 10x8"):
        session = ReviewSession.create(tmp_path / "sessions", "huge", BrightnessDetector(), parts)
    for item, path in zip(session.items, parts):
        assert (item.height, item.width) == session.anomaly_map(item.id).shape == (5, 6)  # 8 x 10, long side to 6
        assert session.image(item.id).shape == (5, 6, 3)
        assert item.image_path.read_bytes() == path.read_bytes()
    with pytest.warns(UserWarning, match="^a.png is 10x8: downscaled to 6x5; b.png is 10x8"):  # the stored copies' names, 0.png, 1.png
        session.rescore(BrightnessDetector(), ScoredBy("again", "again"))
    assert review.overlay(session, 0, THRESHOLD).shape == review.mask_to_edit(session, 0, THRESHOLD).shape + (3,) == (5, 6, 3)
    painted = np.zeros((5, 6), bool)
    painted[:, 3:] = True  # the right half
    session.decide(0, "correct", THRESHOLD, painted)

    with zipfile.ZipFile(review.export_zip(session, tmp_path / "review.zip", THRESHOLD)) as archive:  # at the file's own size
        exported = np.asarray(Image.open(io.BytesIO(archive.read("masks/a.png")))) > 0
        coco = json.loads(archive.read("coco.json"))
    assert exported.shape == (8, 10) and exported[:, 5:].all() and not exported[:, :5].any()
    assert (coco["images"][0]["height"], coco["images"][0]["width"]) == (8, 10)
    np.testing.assert_array_equal(decode_rle(coco["annotations"][0]["segmentation"]), exported)


def test_the_gallery_reads_thumbnails_stored_at_scoring_time(tmp_path, monkeypatch):
    from rbd.review import THUMB_SIDE

    path = tmp_path / "wide.png"
    pixels = np.random.default_rng(0).integers(0, 256, (300, 700, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    session = ReviewSession.create(tmp_path / "sessions", "t", BrightnessDetector(), [path])
    full = review.overlay(session, 0, THRESHOLD, 0.3)
    monkeypatch.setattr(ReviewSession, "image", lambda *a: pytest.fail("the full image was decoded"))
    thumb = review.overlay(session, 0, THRESHOLD, 0.3, max_side=THUMB_SIDE)
    np.testing.assert_array_equal(thumb, full[::3, ::3])  # 700 px long side -> every 3rd pixel: 100 x 234
    assert thumb.shape == (100, 234, 3)


def test_outlined_draws_a_masks_edge_inside_it_and_a_thin_line_whole():
    image = np.zeros((12, 14, 3), np.uint8)
    mask = np.zeros((12, 14), bool)
    mask[2:9, 3:11] = True  # a block 7 x 8
    mask[11, :] = True  # a line one pixel high along the bottom edge
    drawn = outlined(image, mask, width=2)
    coloured = (drawn == OUTLINE).all(axis=-1)
    assert not coloured[~mask].any() and (drawn[~coloured] == 0).all()  # nothing outside the mask, nothing else changed
    inner = np.zeros_like(mask)
    inner[4:7, 5:9] = True  # two pixels in from every side of the block
    np.testing.assert_array_equal(coloured, mask & ~inner)
    assert coloured[11].all()
    assert (image == 0).all()  # drawn on a copy


def test_a_painted_mask_is_outlined_on_the_review_picture_until_another_decision(session):
    a = session.items[0]
    before = review.overlay(session, a.id, THRESHOLD, max_side=256)
    assert not (before == OUTLINE).all(axis=-1).any()
    drawn = np.zeros((8, 10), bool)
    drawn[4, 1:9] = True  # a crack one pixel high
    session.decide(a.id, "correct", THRESHOLD, drawn)
    picture = review.overlay(session, a.id, THRESHOLD, max_side=256)
    np.testing.assert_array_equal((picture == OUTLINE).all(axis=-1), drawn)
    np.testing.assert_array_equal(picture[~drawn], before[~drawn])
    smaller = review.overlay(session, a.id, THRESHOLD, max_side=5)  # every 2nd pixel: row 4 would be kept, row 5 not
    assert (smaller == OUTLINE).all(axis=-1)[2, :].sum() >= 4
    session.decide(a.id, "accept", THRESHOLD)
    np.testing.assert_array_equal(review.overlay(session, a.id, THRESHOLD, max_side=256), before)


def test_pictures_for_the_app(session, parts):
    a, b, c, d = session.items
    full = overlay(read_image(parts[0]), session.anomaly_map(a.id), BrightnessDetector().calibration, THRESHOLD, 0.3)
    np.testing.assert_array_equal(review.overlay(session, a.id, THRESHOLD, 0.3), full)
    # 8 x 10 -> 4 x 5: every 2nd pixel of the map, on the picture decoded at that size
    smaller = overlay(read_image(parts[0], size=(4, 5)), session.anomaly_map(a.id)[::2, ::2], BrightnessDetector().calibration,
                      THRESHOLD, 0.3)
    np.testing.assert_array_equal(review.overlay(session, a.id, THRESHOLD, 0.3, max_side=5), smaller)
    assert review.overlay(session, a.id, THRESHOLD, max_side=256).shape == (8, 10, 3)
    assert review.overlay(session, a.id, THRESHOLD, max_side=1).shape == (1, 1, 3)
    with pytest.raises(InvalidInputError):
        review.overlay(session, a.id, THRESHOLD, max_side=0)

    np.testing.assert_array_equal(review.mask_to_edit(session, d.id, THRESHOLD), session.prediction_mask(d.id, THRESHOLD))
    drawn = np.zeros((8, 10), bool)
    drawn[5:7, 6:9] = True
    session.decide(d.id, "correct", THRESHOLD, drawn)
    np.testing.assert_array_equal(review.mask_to_edit(session, d.id, THRESHOLD), drawn)
    session.decide(b.id, "reject", THRESHOLD)  # good after review: nothing to start from, whatever the model says
    assert not review.mask_to_edit(session, b.id, THRESHOLD).any()


def test_a_large_image_is_edited_at_a_smaller_size_and_its_mask_saved_at_full_size(session, monkeypatch):
    a, b, c, d = session.items  # 8 x 10 parts; an editor of at most 20 pixels makes them "large"
    monkeypatch.setattr("rbd.visualize.SHOWN_PIXELS", 20)
    assert shown_size(8, 10) == (4, 5) and shown_size(3, 4) == (3, 4)
    assert shown_size(2, 40) == (1, 20)  # a strip is shrunk by its area, not its long side
    drawn = np.zeros((8, 10), bool)
    drawn[4:8, 6:10] = True  # the lower right quarter
    session.decide(d.id, "correct", THRESHOLD, drawn)
    picture, mask = review.editor_canvas(session, d.id, THRESHOLD)
    assert picture.shape == (4, 5, 3) and picture.dtype == np.uint8
    np.testing.assert_array_equal(mask, drawn.reshape(4, 2, 5, 2).any(axis=(1, 3)))  # the mask to start from, at the editor's size
    layer = np.zeros((4, 5, 4), np.uint8)
    layer[:2, :2, 3] = 255  # painted: the upper left of the canvas
    full = review.painted_mask(session, d.id, [layer, np.zeros((4, 5, 4), np.uint8)], THRESHOLD)
    assert full.shape == (8, 10) and full[:4, :4].all() and full.sum() == 16  # back at the image's size, in place
    with pytest.raises(InvalidInputError, match="the editor for d.png is 5x4"):
        review.painted_mask(session, d.id, [np.zeros((8, 10, 4), np.uint8)], THRESHOLD)
    monkeypatch.setattr("rbd.visualize.SHOWN_PIXELS", 1024 * 1024)
    np.testing.assert_array_equal(review.painted_mask(session, d.id, [np.dstack([np.zeros((8, 10, 3)), 255 * drawn])], THRESHOLD), drawn)


def test_opening_and_saving_the_editor_at_a_smaller_size_changes_only_what_was_painted(session, monkeypatch):
    d = session.items[3]
    monkeypatch.setattr("rbd.visualize.SHOWN_PIXELS", 20)
    crack = np.zeros((8, 10), bool)
    crack[5, :] = True  # one pixel high, on an odd row that every-other-row shrinking would skip
    session.decide(d.id, "correct", THRESHOLD, crack)
    _, mask = review.editor_canvas(session, d.id, THRESHOLD)
    assert mask[2].all() and mask.sum() == 5
    layer = np.zeros((4, 5, 4), np.uint8)
    layer[mask, 3] = 255  # saved as opened: exactly the mask it opened with, not two rows of it
    np.testing.assert_array_equal(review.painted_mask(session, d.id, [layer], THRESHOLD), crack)
    layer[0, 0, 3] = 255  # a stroke elsewhere: that part enlarged, the crack still one pixel high
    expected = crack.copy()
    expected[:2, :2] = True
    np.testing.assert_array_equal(review.painted_mask(session, d.id, [layer], THRESHOLD), expected)
    layer[2, :, 3] = 0  # the crack erased
    np.testing.assert_array_equal(review.painted_mask(session, d.id, [layer], THRESHOLD), expected & ~crack)



def test_nothing_painted_on_a_rejected_good_verdict_is_refused_not_saved_as_good(session):
    """Reject (good -> defective, its place not known), e, Save with nothing painted: the empty mask said "good"."""
    a, d = session.items[0], session.items[3]
    assert verdict(d.score, THRESHOLD) == "good" and verdict(a.score, THRESHOLD) == "defective"
    session.decide(d.id, "reject", THRESHOLD)
    empty = np.zeros((8, 10, 4), np.uint8)
    with pytest.raises(InvalidInputError, match="nothing painted: d.png stays rejected as defective, its defect's place not known"):
        review.painted_mask(session, d.id, [empty], THRESHOLD)
    stroke = empty.copy()
    stroke[2:4, 3:5, 3] = 255
    assert review.painted_mask(session, d.id, [stroke], THRESHOLD).sum() == 4
    assert not review.painted_mask(session, a.id, [empty], THRESHOLD).any()  # a defective verdict's mask erased: a good part


def test_a_long_strip_is_painted_folded_and_its_mask_saved_unfolded(tmp_path):
    path = tmp_path / "seam.png"
    Image.fromarray(np.full((10, 200), 128, np.uint8)).save(path)  # 20:1, folded into 3 pieces of 67 columns
    session = ReviewSession.create(tmp_path / "sessions", "seam", BrightnessDetector(), [path])
    picture, mask = review.editor_canvas(session, 0, THRESHOLD)
    assert picture.shape == (3 * 10 + 2 * 6, 67, 3) and mask.shape == picture.shape[:2]  # as the review view shows it
    assert (picture[10:16] == 255).all()  # the gap between the first two pieces
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[16 + 2:16 + 5, 10:20, 3] = 255  # painted on the second piece, which holds columns 67-133
    layer[12, :, 3] = 255  # and in a gap, which is no part of the image
    painted = review.painted_mask(session, 0, [layer], THRESHOLD)
    expected = np.zeros((10, 200), bool)
    expected[2:5, 67 + 10:67 + 20] = True
    np.testing.assert_array_equal(painted, expected)
    with pytest.raises(InvalidInputError, match="the editor for seam.png is 67x42"):
        review.painted_mask(session, 0, [np.zeros((10, 200, 4), np.uint8)], THRESHOLD)
    session.decide(0, "reject", 0.6)  # "good" at 0.6 rejected: defective, where not known; paint in a gap alone is none
    gap = np.zeros_like(layer)
    gap[12, :, 3] = 255
    with pytest.raises(InvalidInputError, match="nothing painted: seam.png stays rejected as defective"):
        review.painted_mask(session, 0, [gap], 0.6)

def test_images_out_of_domain_are_not_normal_data_for_this_product(tmp_path, parts):
    session = ReviewSession.create(tmp_path / "sessions", "other", Familiar(), parts)
    a, b, c, d = session.items  # a and b out of domain
    for item in (a, b, c, d):
        session.decide(item.id, "reject" if item.verdict == "defective" else "accept", THRESHOLD)  # all reviewed as good
    assert review.normal_images(session) == [c.image_path, d.image_path]
    combined = list(session.calibration.normal_scores) + [c.score, d.score]
    assert review.recalibrated(session).threshold == calibrate(combined, false_alarm_rate=0.25).threshold


def test_a_recalibration_from_no_normal_image_is_refused_and_says_why(tmp_path, parts, session):
    with pytest.raises(NoImagesError, match="no image is reviewed as good yet"):
        review.recalibrated(session)
    other = ReviewSession.create(tmp_path / "sessions", "foreign", Familiar(), parts[:2])  # both out of domain
    for item in other.items:
        other.decide(item.id, "reject", THRESHOLD)  # flagged, reviewed as good
    with pytest.raises(NoImagesError, match="the 2 image.s. reviewed as good are all out of this model's domain"):
        review.recalibrated(other)


class Slow(BrightnessDetector):
    """A model that takes its time over each batch, and says when it has started."""

    def __init__(self, started: threading.Event, normal_scores=(0.1, 0.2, 0.3, 0.4)):
        super().__init__(normal_scores)
        self.started = started

    def predict_batch(self, images, batch_size=8):
        self.started.set()
        time.sleep(1.0)
        return super().predict_batch(images, batch_size)


class SlowDimmer(Slow):
    def predict_batch(self, images, batch_size=8):
        return [Prediction(p.score / 4, p.normalized_score, p.threshold, p.anomaly_map / 4) for p in super().predict_batch(images, batch_size)]


@pytest.mark.parametrize("scoring", ["add", "rescore"])
def test_decisions_never_wait_for_scoring(session, parts, scoring, tmp_path):
    """The network runs outside the session's state lock: a decision made while more images are scored,
    or while the review is re-scored, is stored at once, and a re-score keeps it."""
    started = threading.Event()
    if scoring == "add":
        more = [_part(tmp_path / "upload" / f"e{i}.png", 0.2) for i in range(2)]
        work = threading.Thread(target=session.add, args=(Slow(started), more))
    else:
        work = threading.Thread(target=session.rescore, args=(SlowDimmer(started, (0.01, 0.02, 0.03, 0.04)), ScoredBy("dimmer")))
    work.start()
    assert started.wait(5)
    began = time.monotonic()
    session.decide(0, "accept", THRESHOLD)  # a is defective at 0.5: accepted, its mask the model's
    waited = time.monotonic() - began
    work.join()
    assert waited < 0.5 and _reopened(session).decision(0).decision == "accept"
    if scoring == "rescore":  # the decision made during the re-score keeps the old model's mask
        np.testing.assert_array_equal(review.final_mask(_reopened(session), 0), np.ones((8, 10), bool))
    else:
        assert len(_reopened(session).items) == 6


class Peaked(BrightnessDetector):
    """A model whose map is a smooth slope with one peak a hair above the threshold, within float16 rounding of it."""

    def predict_batch(self, images, batch_size=8):
        amap = np.linspace(0.2, 0.49, 200 * 300, dtype=np.float32).reshape(200, 300)
        amap[100, 150] = 0.5002
        return [Prediction(0.5002, 0.5, 0.5001, amap) for _ in images]


def test_the_reviews_model_mask_keeps_every_pixel_of_the_predictions_mask(tmp_path, parts):
    """The review stores maps as float16: rounded to the nearest, the peak fell to 0.5, under the threshold,
    and the mask became the map's hottest 1 % (600 pixels) instead of its one pixel."""
    session = ReviewSession.create(tmp_path, "peak", Peaked(), parts[:1])
    expected = Peaked().predict_batch([None])[0].mask
    assert expected.sum() == 1
    np.testing.assert_array_equal(_reopened(session).prediction_mask(0, 0.5001), expected)
