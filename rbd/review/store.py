"""Reviewing a detector's verdicts: an inspector accepts, rejects or corrects each one.

A session is a folder, so an app that restarts resumes where the inspector left off:

    root/<session_id>/
        items.json            one record per scored image and the calibration they were scored with (rewritten atomically)
        images/               copies of the uploaded files, file stems unique in the session
        maps/<id>.npy         anomaly maps at image size (float16, plain arrays: never pickled)
        masks/<id>-<n>.png    masks drawn by the inspector, 0/255, a new file per correction
        decisions.jsonl       append-only, one JSON line per decision; the latest line per image wins

Decisions are only ever appended, each line flushed and fsynced, so a crash loses at most the
line being written; that torn line is cut off when the session is next opened. Other files are
written to a temporary file and renamed over the old one, so none is ever seen half-written.

The threshold is not part of the session: the app's slider can move at any time. Each decision
therefore records the verdict and threshold the inspector saw: "accept" means that verdict was
right, "reject" that it was wrong, so a reviewed label never changes when the slider moves,
while the model's verdicts (and so precision and recall) are judged at the current threshold.

The model is part of the session, though: its calibration is stored with the first images, and
pictures and recalibration use it whichever model the app has loaded since. Adding images scored
by another model is refused, so one session never mixes the scores of two.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import threading
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from .calibration import Calibration, calibrate
from .coco import CocoImage, coco_dataset
from .detector import defect_mask, is_defective, predict_files
from .detector import verdict as verdict_at
from .errors import InvalidInputError
from .files import atomic_write
from .images import MAX_SIDE, read_image, to_uint8
from .metrics import auroc
from .notices import notify
from .uploads import unique_name
from .visualize import mask_image
from .visualize import overlay as heat_overlay

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
DECISIONS = ("accept", "reject", "correct")
FILTERS = ("all", "unreviewed", "defective", "grey")
ITEMS_FILE = "items.json"
DECISIONS_FILE = "decisions.jsonl"
FORMAT_VERSION = 2  # 2: the calibration is stored next to the items
_MASK_NAME = re.compile(r"masks/\d+-\d+\.png")
_FLOAT16_MAX = float(np.finfo(np.float16).max)
THUMB_SIDE = 256  # gallery size: a thumbnail is stored at scoring time, as the gallery redraws on every decision


@dataclass(frozen=True)
class Item:
    """One scored image. `verdict` is the model's at scoring time (the detector's threshold then);
    height and width are those of the upright image as `rbd.images.read_image` decodes it with
    `MAX_SIDE` (a huge photo is scored on a downscaled copy), which is the size of its anomaly map
    and of any mask drawn on it. `image_path` is the uploaded file as it was: use
    `ReviewSession.image` for the picture at the item's size."""

    id: int
    file_name: str  # the name under images/, unique in the session
    image_path: Path
    score: float
    normalized_score: float
    verdict: str
    height: int
    width: int


@dataclass(frozen=True)
class Decision:
    id: int
    decision: str  # one of DECISIONS
    verdict: str  # the model's verdict the inspector saw: "defective" or "good"
    threshold: float  # the threshold that verdict was made at
    timestamp: str  # ISO 8601, UTC
    mask: str | None  # "masks/<id>-<n>.png" (relative to the session folder) for "correct", else None


class ReviewSession:
    """A review session on disk. Use `create` (or `add`) to score images and `open` to resume."""

    def __init__(self, folder: str | Path):
        """Read whatever the folder holds (nothing yet for a new session). Under the folder's lock,
        because cutting off a torn last line must not cut off another object's append in progress."""
        self.folder = Path(folder)
        self._lock = _folder_lock(self.folder)
        with self._lock:
            self._items, self._calibration = self._read_items()
            self._decisions, self._n_lines = self._read_decisions()

    @classmethod
    def create(cls, root: str | Path, session_id: str, detector, image_paths: Iterable[str | Path],
               progress: Callable[[int, int], None] | None = None, batch_size: int = 8) -> "ReviewSession":
        """Score `image_paths` into session `session_id`; an existing session gets them added, its decisions
        kept, if `detector` is the model that scored it."""
        session = cls(session_folder(root, session_id))
        session.add(detector, image_paths, progress, batch_size)
        return session

    @classmethod
    def open(cls, root: str | Path, session_id: str) -> "ReviewSession | None":
        """The saved session, or None if there is none by that id."""
        folder = session_folder(root, session_id)
        return cls(folder) if (folder / ITEMS_FILE).is_file() else None

    @property
    def session_id(self) -> str:
        return self.folder.name

    @property
    def calibration(self) -> Calibration | None:
        """The calibration of the model that scored the images; None only before any image is added."""
        return self._calibration

    @property
    def items(self) -> list[Item]:
        """All items in the order they were added (their ids are 0, 1, 2, ...)."""
        return list(self._items)

    def item(self, item_id: int) -> Item:
        """The item with this id; KeyError for an unknown one."""
        if isinstance(item_id, bool) or not isinstance(item_id, (int, np.integer)) or not 0 <= item_id < len(self._items):
            raise KeyError(f"review session {self.session_id!r} has no item {item_id!r}")
        return self._items[item_id]

    def add(self, detector, image_paths: Iterable[str | Path], progress: Callable[[int, int], None] | None = None,
            batch_size: int = 8) -> list[Item]:
        """Score more images and store them; returns the new items.

        Images are read and scored a batch at a time, and items.json is rewritten every
        `batch_size` stored items, so a large upload neither sits in memory at once nor is lost
        entirely by a crash.
        Unreadable files are skipped with one warning; NoImagesError if none is usable.
        InvalidInputError if the session was scored with a model of another calibration.
        """
        paths = [Path(p) for p in image_paths]
        if not paths:
            return []
        added = []
        scored_with = Calibration.from_dict(detector.calibration.to_dict())  # a copy: the detector's may change
        with self._lock:
            self._items, self._calibration = self._read_items()  # another object on this folder may have added some meanwhile
            if self._calibration is None:
                self._calibration = scored_with
            elif _model_key(self._calibration) != _model_key(scored_with):
                raise InvalidInputError("this review was scored with another model: start a new review for this model's images")
            taken = {Path(item.file_name).stem.casefold() for item in self._items}
            for path, image, prediction in predict_files(detector, paths, batch_size, MAX_SIDE, progress):
                added.append(self._store(path, image, prediction, taken))
                if len(added) % batch_size == 0:
                    self._write_items()
            self._write_items()
        return added

    def decision(self, item_id: int) -> Decision | None:
        """The latest decision on this item, or None if it is unreviewed."""
        return self._decisions.get(self.item(item_id).id)

    def decide(self, item_id: int, decision: str, threshold: float, corrected_mask: np.ndarray | None = None) -> Decision:
        """Record a decision on the verdict at `threshold`; "correct" needs the inspector's mask
        (image size, nonzero = defect), the others none."""
        item = self.item(item_id)
        if decision not in DECISIONS:
            raise InvalidInputError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        if (decision == "correct") != (corrected_mask is not None):
            raise InvalidInputError("a corrected mask goes with the decision 'correct', and only with it")
        with self._lock:
            mask_name = None
            if corrected_mask is not None:
                mask = np.asarray(corrected_mask)
                if mask.shape != (item.height, item.width):
                    raise InvalidInputError(f"corrected mask shape {mask.shape} != image size {(item.height, item.width)}")
                n = self._n_lines + 1  # a new file per correction: earlier lines keep their masks
                while (self.folder / f"masks/{item.id}-{n}.png").exists():  # written by another object, or orphaned by a crash
                    n += 1
                mask_name = f"masks/{item.id}-{n}.png"
                with atomic_write(self.folder / mask_name) as f:
                    Image.fromarray(mask_image(mask > 0)).save(f, format="PNG")
            record = Decision(item.id, decision, verdict_at(item.score, threshold), float(threshold),
                              datetime.now(timezone.utc).isoformat(timespec="milliseconds"), mask_name)
            with open(self.folder / DECISIONS_FILE, "ab") as f:
                f.write((json.dumps(asdict(record)) + "\n").encode())
                f.flush()
                os.fsync(f.fileno())
            self._decisions[item.id] = record
            self._n_lines += 1
        return record

    def image(self, item_id: int) -> np.ndarray:
        """The item's picture, (H, W, 3) float32 in [0, 1], at the size of its map.

        Decoding the stored file with its long side as the limit repeats the downscaling it was
        scored with (a no-op for an image that was not downscaled).
        """
        item = self.item(item_id)
        return read_image(item.image_path, max(item.height, item.width))

    def anomaly_map(self, item_id: int) -> np.ndarray:
        """The item's anomaly map, (H, W) float32."""
        path = self.folder / "maps" / f"{self.item(item_id).id}.npy"
        return np.load(path, allow_pickle=False).astype(np.float32)

    def prediction_mask(self, item_id: int, threshold: float) -> np.ndarray:
        """The model's defect mask at `threshold`, as `Prediction.mask`."""
        return defect_mask(self.anomaly_map(item_id), self.item(item_id).score, threshold)

    def verdict(self, item_id: int, threshold: float) -> str:
        """The model's verdict at `threshold`: "defective" or "good"."""
        return verdict_at(self.item(item_id).score, threshold)

    def overlay(self, item_id: int, threshold: float, opacity: float = 0.5, max_side: int | None = None) -> np.ndarray:
        """(H, W, 3) uint8: the image blended with its heat map, coloured by the session's calibration.

        `max_side` keeps every `step`-th pixel so the long side fits; at `THUMB_SIDE` the picture
        is the thumbnail stored at scoring time, so the gallery never decodes the full images.
        """
        if max_side is not None and max_side < 1:
            raise InvalidInputError(f"max_side must be at least 1, got {max_side}")
        amap = self.anomaly_map(item_id)
        thumbnail = self._thumbnail_path(item_id)
        if max_side == THUMB_SIDE and thumbnail.is_file():
            return heat_overlay(read_image(thumbnail), _subsample(amap, max_side), self._calibration, threshold, opacity)
        image = self.image(item_id)
        if max_side is not None:
            image, amap = _subsample(image, max_side), _subsample(amap, max_side)
        return heat_overlay(image, amap, self._calibration, threshold, opacity)

    def _thumbnail_path(self, item_id: int) -> Path:
        return self.folder / "thumbs" / f"{self.item(item_id).id}.png"

    def mask_to_edit(self, item_id: int, threshold: float) -> np.ndarray:
        """The mask the inspector starts drawing from: the final one if reviewed, else the model's at `threshold`."""
        mask = self.final_mask(item_id)
        return self.prediction_mask(item_id, threshold) if mask is None else mask

    def final_label(self, item_id: int) -> bool | None:
        """True (defective) or False (good) after review, None if unreviewed.

        accept keeps the verdict the inspector saw, reject flips it, correct is defective iff
        the inspector's mask has any pixel set.
        """
        decision = self.decision(item_id)
        if decision is None:
            return None
        if decision.decision == "correct":
            return bool(self._read_mask(decision.mask).any())
        flagged = decision.verdict == "defective"
        return flagged if decision.decision == "accept" else not flagged

    def final_mask(self, item_id: int) -> np.ndarray | None:
        """The defect mask after review, (H, W) bool; None if unreviewed.

        correct: the inspector's mask. accept/reject: the model's mask at the decision's threshold
        if the final label is defective, else empty. A rejected "good" verdict therefore gets the
        model's mask, which is empty: the inspector corrects, rather than rejects, to say where the
        defect is.
        """
        decision = self.decision(item_id)
        if decision is None:
            return None
        if decision.decision == "correct":
            return self._read_mask(decision.mask)
        if self.final_label(item_id):
            return self.prediction_mask(item_id, decision.threshold)
        item = self.item(item_id)
        return np.zeros((item.height, item.width), dtype=bool)

    def ordered(self, show: str = "all", threshold: float | None = None, low: float | None = None,
                high: float | None = None) -> list[Item]:
        """Items to show, most anomalous first (score descending, then id).

        show: "all"; "unreviewed"; "defective" (flagged by the model at `threshold`); "grey"
        (low <= score < high: the uncertain band around the threshold, where review pays most).
        """
        if show not in FILTERS:
            raise InvalidInputError(f"show must be one of {', '.join(FILTERS)}, got {show!r}")
        if show == "defective" and threshold is None:
            raise InvalidInputError("show='defective' needs a threshold")
        if show == "grey" and (low is None or high is None):
            raise InvalidInputError("show='grey' needs low and high")
        keep = {
            "all": lambda item: True,
            "unreviewed": lambda item: item.id not in self._decisions,
            "defective": lambda item: is_defective(item.score, threshold),
            "grey": lambda item: low <= item.score < high,
        }[show]
        return sorted((item for item in self._items if keep(item)), key=lambda item: (-item.score, item.id))

    def metrics(self, threshold: float) -> dict:
        """How the model's verdicts at `threshold` compare with the reviewed labels (reviewed images only).

        auroc is None unless both classes were reviewed; precision is None when the model flags
        none of the reviewed images, recall when none of them is defective.
        """
        reviewed = [item for item in self._items if item.id in self._decisions]
        labels = np.array([self.final_label(item.id) for item in reviewed], dtype=bool)
        scores = np.array([item.score for item in reviewed], dtype=np.float64)
        flagged = is_defective(scores, threshold)
        hits = int((flagged & labels).sum())
        n_defective = int(labels.sum())
        return {
            "n_reviewed": len(reviewed),
            "n_defective": n_defective,
            "auroc": auroc(labels, scores) if 0 < n_defective < len(reviewed) else None,
            "precision": hits / int(flagged.sum()) if flagged.any() else None,
            "recall": hits / n_defective if n_defective else None,
        }

    def normal_images(self) -> list[Path]:
        """Paths of the images reviewed as good: more normal data for fine-tuning."""
        return [item.image_path for item in self._items if self.final_label(item.id) is False]

    def recalibrated(self, false_alarm_rate: float | None = None) -> Calibration:
        """The session's calibration, also counting the images reviewed as good as held-out normal scores.

        It starts from the stored calibration, the one the images were scored with, so the scores
        are never mixed with another model's and the reviewed ones never count twice. The
        synthetic-defect scores are kept, so the catch rate stays comparable.
        """
        good = [item.score for item in self._items if self.final_label(item.id) is False]
        rate = self._calibration.false_alarm_rate if false_alarm_rate is None else false_alarm_rate
        return calibrate(list(self._calibration.normal_scores) + good, self._calibration.synthetic_scores, rate)

    def export_zip(self, path: str | Path, threshold: float) -> Path:
        """One zip, written atomically: decisions.csv, masks/<stem>.png and coco.json.

        decisions.csv has a row per image: file, score, verdict (the model's at `threshold`),
        decision, corrected ("yes" where the mask was repainted), timestamp and label (good or
        defective after review); the last four are empty for unreviewed images. Masks (0/255, image size) and coco.json cover reviewed images only.
        """
        path = Path(path)
        table = io.StringIO()
        writer = csv.writer(table)
        writer.writerow(["file", "score", "verdict", "decision", "corrected", "timestamp", "label"])
        reviewed = []
        with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as archive:
            for item in self._items:
                decision = self._decisions.get(item.id)
                row = [item.file_name, f"{item.score:.6f}", verdict_at(item.score, threshold)]
                if decision is None:
                    writer.writerow(row + ["", "", "", ""])
                    continue
                mask = self.final_mask(item.id)
                corrected = "yes" if decision.decision == "correct" else "no"  # the mask was repainted
                label = "defective" if self.final_label(item.id) else "good"
                writer.writerow(row + [decision.decision, corrected, decision.timestamp, label])
                png = io.BytesIO()
                Image.fromarray(mask_image(mask)).save(png, format="PNG")
                archive.writestr(f"masks/{Path(item.file_name).stem}.png", png.getvalue())
                reviewed.append(CocoImage(item.file_name, item.height, item.width, mask))
            archive.writestr("decisions.csv", table.getvalue())
            archive.writestr("coco.json", json.dumps(coco_dataset(reviewed)))
        return path

    def _store(self, source: Path, image: np.ndarray, prediction, taken: set[str]) -> Item:
        """Copy the image in, save its map and thumbnail; `taken` holds the casefolded stems in use
        (masks are named by stem)."""
        stem = source.stem if source.stem and not source.stem.startswith(".") else "image"
        file_name = unique_name(stem, taken, split_suffix=False) + source.suffix
        item_id = len(self._items)
        with atomic_write(self.folder / "images" / file_name) as f, open(source, "rb") as original:
            shutil.copyfileobj(original, f)
        amap = prediction.anomaly_map
        small = np.isfinite(amap).all() and float(np.abs(amap).max(initial=0.0)) <= _FLOAT16_MAX
        with atomic_write(self.folder / "maps" / f"{item_id}.npy") as f:
            np.save(f, amap.astype(np.float16 if small else np.float32), allow_pickle=False)
        with atomic_write(self.folder / "thumbs" / f"{item_id}.png") as f:
            Image.fromarray(to_uint8(_subsample(image, THUMB_SIDE))).save(f, format="PNG")
        height, width = amap.shape
        item = Item(item_id, file_name, self.folder / "images" / file_name, float(prediction.score),
                    float(prediction.normalized_score), prediction.verdict, int(height), int(width))
        self._items.append(item)
        return item

    def _write_items(self) -> None:
        records = []
        for item in self._items:
            record = asdict(item)
            record["image_path"] = item.image_path.relative_to(self.folder).as_posix()
            records.append(record)
        with atomic_write(self.folder / ITEMS_FILE) as f:
            f.write(json.dumps({"format_version": FORMAT_VERSION, "calibration": self._calibration.to_dict(),
                                "items": records}, indent=1).encode())

    def _read_items(self) -> tuple[list[Item], Calibration | None]:
        """The items and the calibration they were scored with; none yet for a new session.

        Decisions without items.json would be taken for decisions on the next images added, so
        that is an error, as is a file this version cannot read.
        """
        path = self.folder / ITEMS_FILE
        if not path.is_file():
            if (self.folder / DECISIONS_FILE).exists():
                raise InvalidInputError(f"{path} is missing, so the decisions in this review have no images: start a new review")
            return [], None
        try:
            data = json.loads(path.read_bytes())
        except ValueError as err:  # not JSON, or not UTF-8
            raise InvalidInputError(f"{path} is corrupt ({err}): start a new review") from err
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != FORMAT_VERSION:
            raise InvalidInputError(f"{path} has format_version {version!r}, and this version of rbd reads only "
                                    f"{FORMAT_VERSION}: start a new review")
        try:
            items = [Item(**{**record, "image_path": self.folder / record["image_path"]}) for record in data["items"]]
            return items, Calibration.from_dict(data["calibration"])
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInputError(f"{path} is corrupt ({err!r}): start a new review") from err

    def _read_decisions(self) -> tuple[dict[int, Decision], int]:
        """The latest decision per item and the number of lines; a torn last line is cut off the file."""
        path = self.folder / DECISIONS_FILE
        if not path.is_file():
            return {}, 0
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a write cut short by a crash: the only line without its newline
            notify(f"{path}: dropped an incomplete last line (the app stopped while writing it)")
            with open(path, "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        decisions = {}
        lines = data[:end].splitlines()
        for number, line in enumerate(lines, start=1):
            try:
                record = Decision(**json.loads(line))
                if (not isinstance(record.id, int) or record.decision not in DECISIONS or record.verdict not in ("defective", "good")
                        or not (record.mask is None or _MASK_NAME.fullmatch(record.mask))):
                    raise InvalidInputError(f"unexpected values {record}")
            except (ValueError, TypeError) as err:
                raise InvalidInputError(f"{path}, line {number}: not a decision record ({err})") from err
            decisions[record.id] = record
        return decisions, len(lines)

    def _read_mask(self, name: str) -> np.ndarray:
        with Image.open(self.folder / name) as image:
            return np.asarray(image.convert("L")) > 0


_FOLDER_LOCKS: dict[Path, threading.Lock] = {}
_FOLDER_LOCKS_GUARD = threading.Lock()


def _folder_lock(folder: Path) -> threading.Lock:
    """One writer per session folder in this process: Gradio runs handlers in threads, often on separate objects."""
    with _FOLDER_LOCKS_GUARD:
        return _FOLDER_LOCKS.setdefault(folder.resolve(), threading.Lock())


def session_folder(root: str | Path, session_id: str) -> Path:
    """root/<session_id>; the id comes from the browser, so only a plain token is accepted."""
    if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
        raise InvalidInputError(f"invalid session id {session_id!r}: use 1 to 64 letters, digits, '_' or '-'")
    return Path(root) / session_id


def _model_key(calibration: Calibration) -> tuple:
    """What tells two models apart: a fine-tuned or retrained model gets new held-out scores."""
    return calibration.threshold, calibration.scale, list(calibration.normal_scores)


def _subsample(array: np.ndarray, max_side: int) -> np.ndarray:
    """Every `step`-th pixel, so the long side is at most `max_side`: a cheap, exact-colour shrink."""
    step = -(-max(array.shape[:2]) // max_side)
    return array[::step, ::step]
