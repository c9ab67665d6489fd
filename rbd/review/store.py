"""A review session's storage: its items, the model that scored them, and the decision log.

A session is a folder, so an app that restarts resumes where the inspector left off:

    root/<session_id>/
        items.json            the model that scored the images, its calibration, its maps' folder and one record per image
                              (rewritten atomically)
        images/<id><suffix>   copies of the uploaded files, by id so that no upload's names clash with another's
                              folders (older sessions' copies keep the uploads' names: items.json holds each path)
        maps/<id>.npy         anomaly maps at image size (float16, plain arrays: never pickled); a re-score writes
                              maps-<n>/ and items.json switches to it, so scores and maps always belong to one model
        thumbs/<id>.png       gallery thumbnails, long side at most THUMB_SIDE
        masks/<id>-<n>.png    masks, 0/255: drawn by the inspector, or the model's frozen by a re-score
        decisions.jsonl       append-only, one JSON line per decision; the latest line per image wins

Decisions are only ever appended, each line fsynced, so a crash loses at most the line being
written; that torn line is cut off when the session is next opened (and at once, where the write
itself failed). Other files are
written to a temporary file and renamed over the old one, so none is ever seen half-written.

One object per session serves every request: it keeps the scores and reviewed labels as arrays,
so a decision costs the same in a review of 50 images as in one of 5,000.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
import time
import unicodedata
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from ..anomaly_map import judged_map, kept_map
from ..calibration import Calibration, checked_threshold
from ..detector import defect_mask, is_out_of_domain, predict_files
from ..detector import verdict as verdict_at
from ..errors import InvalidInputError
from ..files import atomic_write, file_digest
from ..images import MAX_SIDE, read_image, to_uint8
from ..notices import notify, some
from ..uploads import unique_name, unsuffixed
from ..visualize import mask_image, subsample
from .rules import label_of

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
DECISIONS = ("accept", "reject", "correct")
ITEMS_FILE = "items.json"
DECISIONS_FILE = "decisions.jsonl"
FORMAT_VERSION = 6  # 2: the calibration is stored next to the items; 3: and the model's name and key; 4: and its maps'
# folder; 5: and each image's familiarity; 6: and its map's peak
READABLE_VERSIONS = (2, 3, 4, 5, 6)
MAPS = "maps"  # the first model's maps' folder; a re-score's are MAPS-<n>
THUMB_SIDE = 256  # the gallery shows these, stored at scoring time, and never decodes a full image
SAVE_EVERY_S = 5.0  # while scoring, items.json is rewritten at most this often (and at the end)
_MASK_NAME = re.compile(r"masks/\d+-\d+\.png")
_MAPS_NAME = re.compile(rf"{MAPS}(-\d+)?")


@dataclass(frozen=True)
class Item:
    """One scored image. `verdict` is the model's at scoring time (the detector's threshold then);
    height and width are those of the upright image as `rbd.images.read_image` decodes it with
    `MAX_SIDE` (a huge photo is scored on a downscaled copy), which is the size of its anomaly map
    and of any mask drawn on it. `image_path` is the uploaded file as it was: use
    `ReviewSession.image` for the picture at the item's size."""

    id: int
    file_name: str  # the image's path in its upload, folders kept (`good/000.png`), unique in the session less its suffix
    image_path: Path
    score: float
    normalized_score: float
    verdict: str
    height: int
    width: int
    familiarity: float | None = None  # as `Prediction.familiarity`; None for a model without memory, or before format 5
    peak: float | None = None  # the anomaly map's maximum before it was kept rounded up (`judged_map`); None before format 6

    @property
    def out_of_domain(self) -> bool:
        return is_out_of_domain(self.familiarity)


@dataclass(frozen=True)
class Decision:
    id: int
    decision: str  # one of DECISIONS
    verdict: str  # the model's verdict the inspector saw: "defective" or "good"
    threshold: float  # the threshold that verdict was made at
    timestamp: str  # ISO 8601, UTC
    mask: str | None  # "masks/<id>-<n>.png": the inspector's for "correct"; for the others, the model's, frozen by a re-score


@dataclass(frozen=True)
class ScoredBy:
    """The model that scored a session: a name for people, and the key and revision the app loads it by
    (None for sessions written before rbd recorded them)."""

    name: str
    key: str | None = None
    revision: str | None = None


class ReviewSession:
    """A review session on disk. Use `create` (or `add`) to score images and `open` to resume."""

    def __init__(self, folder: str | Path):
        """Read whatever the folder holds (nothing yet for a new session). Under the folder's lock,
        because cutting off a torn last line must not cut off another object's append in progress."""
        self.folder = Path(folder)
        self._lock = _folder_lock(self.folder)  # the session's state and files, held for milliseconds
        self._scoring = _folder_lock(self.folder, "scoring")  # one add or re-score at a time; decisions go on beside it
        self._switching = _folder_lock(self.folder, "switching")  # a re-score's switch of model (`one_model`)
        self._painted: dict[str, bool] = {}  # mask file -> has a defect pixel (masks never change)
        with self._lock:
            self._load()

    @classmethod
    def create(cls, root: str | Path, session_id: str, detector, image_paths: Iterable[str | Path],
               progress: Callable[[int, int], None] | None = None, batch_size: int = 8,
               model: ScoredBy | None = None, upload: str | Path | None = None) -> "ReviewSession":
        """Score `image_paths` into session `session_id`; an existing session gets them added, its decisions
        kept, if `detector` is the model that scored it."""
        session = cls(session_folder(root, session_id))
        session.add(detector, image_paths, progress, batch_size, model, upload)
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
    def scored_by(self) -> ScoredBy | None:
        """The model that scored the images; None only before any image is added."""
        return self._model

    @property
    def scoring(self) -> bool:
        """Whether images are being scored (or re-scored) into this review by this process now, in another thread: a
        page reloaded during a Score sees those scored so far."""
        if self._scoring.acquire(blocking=False):
            self._scoring.release()
            return False
        return True

    @property
    def items(self) -> list[Item]:
        """All items in the order they were added (their ids are 0, 1, 2, ...)."""
        return list(self._items)

    @property
    def scores(self) -> np.ndarray:
        """The items' scores by id, float64 (read-only)."""
        return self._scores

    @property
    def out_of_domain(self) -> np.ndarray:
        """Whether each item is out of the scoring model's domain, bool by id (read-only)."""
        return self._out_of_domain

    @property
    def domain_unchecked(self) -> np.ndarray:
        """Whether each item's familiarity was never measured, bool by id: scored before review format 5
        (a re-score measures it) or by a model without memory (which cannot)."""
        return np.array([item.familiarity is None for item in self._items], dtype=bool)

    @property
    def labels(self) -> np.ndarray:
        """The reviewed labels by id: 1.0 defective, 0.0 good, NaN unreviewed (read-only)."""
        return self._labels

    def item(self, item_id: int) -> Item:
        """The item with this id; KeyError for an unknown one."""
        if isinstance(item_id, bool) or not isinstance(item_id, (int, np.integer)) or not 0 <= item_id < len(self._items):
            raise KeyError(f"review session {self.session_id!r} has no item {item_id!r}")
        return self._items[item_id]

    def decision(self, item_id: int) -> Decision | None:
        """The latest decision on this item, or None if it is unreviewed."""
        return self._decisions.get(self.item(item_id).id)

    def add(self, detector, image_paths: Iterable[str | Path], progress: Callable[[int, int], None] | None = None,
            batch_size: int = 8, model: ScoredBy | None = None, upload: str | Path | None = None) -> list[Item]:
        """Score more images and store them; returns the new items.

        Each image is named by its path in `upload`, the folder it was uploaded into (folders kept,
        so `good/000.png` and `broken/000.png` stay apart in the review and its export), or by its
        file name where there is no such folder; a name already in the session is numbered.

        Images are read and scored a batch at a time and items.json is rewritten every few
        seconds, so a large upload neither sits in memory at once nor is lost entirely by a crash;
        if scoring fails midway, the images stored before the failure stay in the session.
        Unreadable files are skipped with one warning; NoImagesError if none is usable.
        InvalidInputError if the session was scored by another model: `rescore` it first.
        """
        paths = [Path(p) for p in image_paths]
        if not paths:
            return []
        added, renamed = [], []
        scored_with = Calibration.from_dict(detector.calibration.to_dict())  # a copy: the detector's may change
        with self._scoring:  # the network runs outside the state lock: decisions and page turns never wait for it
            with self._lock:
                self._load()  # another object on this folder may have added some meanwhile
                if self._calibration is None:
                    self._calibration, self._model = scored_with, model or ScoredBy("unnamed model")
                elif not self.is_scored_by(scored_with):
                    raise InvalidInputError(f"this review was scored by {self._model.name}: re-score it with the active model, "
                                            "or start a new review, before adding images scored by another")
                # in one Unicode form, as `_upload_name` gives new names: a review begun before kept others
                taken = {unicodedata.normalize("NFC", unsuffixed(item.file_name)).casefold() for item in self._items}
                stored = [item.image_path for item in self._items]
            paths = _not_held(paths, stored, upload)
            if not paths:
                return []
            saved = time.monotonic()
            try:
                for path, image, prediction in predict_files(detector, paths, batch_size, MAX_SIDE, progress):
                    name = _upload_name(path, upload)
                    with self._lock:
                        added.append(self._store(path, name, image, prediction, taken))
                        if time.monotonic() - saved > SAVE_EVERY_S:
                            self._write_items()
                            saved = time.monotonic()
                    if added[-1].file_name != name.as_posix():
                        renamed.append(f"{name.as_posix()} as {added[-1].file_name}")
            finally:  # also when scoring fails midway: the images stored so far are kept, so no decision is
                # ever made on an item that items.json lacks (its id would go to the next image added)
                with self._lock:
                    if self._items:
                        self._write_items()
                    else:
                        self._load()  # a new session that stored nothing stays without items.json (and without a model)
        if renamed:  # said: the review and its export name a file the user does not have
            notify(f"{len(renamed)} image(s) took a name already in this review and are listed numbered: {some(renamed)}")
        return added

    def rescore(self, detector, model: ScoredBy, progress: Callable[[int, int], None] | None = None,
                batch_size: int = 8) -> None:
        """Score every image again with another model, keeping the decisions.

        A decision whose final mask was the old model's (accepting or rejecting into a defective
        label) first gets that mask frozen into a file, so the reviewed masks do not move with the
        new model's maps. The new maps go to a new folder and one atomic rewrite of items.json
        switches scores, maps and model together: a crash midway leaves the session as the old
        model scored it. So does an image that can no longer be read (InvalidInputError): a score
        of the old model beside the new model's threshold would be judged in the wrong units.
        """
        from .rules import final_mask  # the rule that says which mask a decision stands for

        def freeze() -> None:  # under the state lock: before scoring, and again at the switch for decisions made meanwhile
            for item_id, decision in sorted(self._decisions.items()):
                if decision.mask is None and self._labels[item_id] == 1.0:
                    self._append(replace(decision, mask=self._write_mask(item_id, final_mask(self, item_id))))

        with self._scoring:  # the network runs outside the state lock: decisions and page turns never wait for it
            with self._lock:
                self._load()
                freeze()
                old_maps, new_maps = self._maps, self._unused_maps_folder()
                by_path = {item.image_path: item for item in self._items}
                items = list(self._items)
            try:
                shown_as = {path: item.file_name for path, item in by_path.items()}  # notices name the files as the user does
                for path, _, prediction in predict_files(detector, list(by_path), batch_size, MAX_SIDE, progress, shown_as):
                    item = by_path.pop(path)
                    self._write_map(new_maps, item.id, prediction.anomaly_map)  # a folder no one reads yet
                    items[item.id] = replace(item, score=float(prediction.score), normalized_score=float(prediction.normalized_score),
                                             verdict=prediction.verdict, familiarity=_familiarity(prediction), peak=prediction.peak)
                if by_path:
                    names = some([item.file_name for item in by_path.values()])
                    raise InvalidInputError(f"{len(by_path)} of this review's images can no longer be read ({names}), so nothing "
                                            f"was re-scored: the review stays scored by {self._model.name}; start a new review "
                                            "for the active model")
                with self._switching, self._lock:
                    freeze()
                    before = self._items, self._maps, self._calibration, self._model
                    try:
                        self._items, self._maps, self._model = items, new_maps, model
                        self._calibration = Calibration.from_dict(detector.calibration.to_dict())
                        self._write_items()  # the switch
                    except BaseException:
                        self._items, self._maps, self._calibration, self._model = before
                        raise
                    self._index()
            except BaseException:
                shutil.rmtree(self.folder / new_maps, ignore_errors=True)
                raise
            shutil.rmtree(self.folder / old_maps, ignore_errors=True)

    def _unused_maps_folder(self) -> str:
        """A maps folder name no items.json has pointed at: MAPS-<n>, after removing every maps folder but
        the current one (left by a re-score cut short before or after its switch)."""
        for folder in self.folder.glob(f"{MAPS}*"):
            if folder.name != self._maps and _MAPS_NAME.fullmatch(folder.name):
                shutil.rmtree(folder, ignore_errors=True)
        current = int(self._maps.rpartition("-")[2]) if self._maps != MAPS else 0
        return f"{MAPS}-{current + 1}"

    def is_scored_by(self, calibration: Calibration) -> bool:
        """Whether the model `calibration` belongs to scored the session, whatever key it is loaded by
        (`Calibration.fingerprint`): a shared or downloaded copy is that model; a retrained one, or a Hub
        branch that moved on, is another, whose scores would be judged by the wrong threshold."""
        return self._calibration is None or self._calibration.fingerprint == calibration.fingerprint

    def decide(self, item_id: int, decision: str, threshold: float, corrected_mask: np.ndarray | None = None) -> Decision:
        """Record a decision on the verdict at `threshold`; "correct" needs the inspector's mask
        (image size, nonzero = defect), the others none. A threshold that is no finite number is refused: written, its
        line made the review impossible to open again."""
        item, threshold = self.item(item_id), checked_threshold(threshold)
        if decision not in DECISIONS:
            raise InvalidInputError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        if (decision == "correct") != (corrected_mask is not None):
            raise InvalidInputError("a corrected mask goes with the decision 'correct', and only with it")
        with self._lock:
            if item.id >= self._saved_items:  # shown while its batch is scored: saved first, or a crash would leave the
                self._write_items()           # decision without its item, and the next image added would take it
            mask_name = None
            if corrected_mask is not None:
                mask = np.asarray(corrected_mask)
                if mask.shape != (item.height, item.width):
                    raise InvalidInputError(f"corrected mask shape {mask.shape} != image size {(item.height, item.width)}")
                mask_name = self._write_mask(item.id, mask > 0)
            record = Decision(item.id, decision, verdict_at(item.score, threshold), threshold,
                              datetime.now(timezone.utc).isoformat(timespec="milliseconds"), mask_name)
            self._append(record)
        return record

    def image(self, item_id: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """The item's picture, (H, W, 3) float32 in [0, 1], at the size of its map (that of the
        image as scored, after any downscaling) or at `size` (height, width) for showing it smaller:
        a large JPEG then decodes at a reduced scale."""
        item = self.item(item_id)
        return read_image(item.image_path, size=size or (item.height, item.width))

    def anomaly_map(self, item_id: int) -> np.ndarray:
        """The item's anomaly map, (H, W) float32."""
        try:
            return self._read_map(item_id)
        except FileNotFoundError:  # another object on this folder re-scored it: its maps moved to a new folder
            with self._lock:
                self._load()
            try:
                return self._read_map(item_id)
            except FileNotFoundError as err:
                raise _missing(f"{self.item(item_id).file_name}: its anomaly map") from err

    def _read_map(self, item_id: int) -> np.ndarray:
        path = self.folder / self._maps / f"{self.item(item_id).id}.npy"
        return np.load(path, allow_pickle=False).astype(np.float32)

    def prediction_mask(self, item_id: int, threshold: float) -> np.ndarray:
        """The model's defect mask at `threshold`, as `Prediction.mask`."""
        item = self.item(item_id)
        return defect_mask(judged_map(self.anomaly_map(item_id), item.peak, threshold), item.score, threshold)

    def thumbnail_path(self, item_id: int) -> Path:
        """The item's thumbnail (long side at most THUMB_SIDE), a PNG written at scoring time."""
        return self.folder / "thumbs" / f"{self.item(item_id).id}.png"

    def read_mask(self, name: str) -> np.ndarray:
        """A stored mask (a decision's `mask`), (H, W) bool."""
        try:
            with Image.open(self.folder / name) as image:
                return np.asarray(image.convert("L")) > 0
        except FileNotFoundError as err:
            raise _missing(f"{name}, a mask painted in this review,") from err

    def _painted_mask(self, name: str) -> bool:
        if name not in self._painted:
            self._painted[name] = bool(self.read_mask(name).any())
        return self._painted[name]

    def _append(self, record: Decision) -> None:
        """Append a decision line (fsynced) and update the labels; the caller holds the lock. A write that
        fails (a full disk) is cut off the file again: the next decision must not land after half a line,
        where the log could no longer be read."""
        line = memoryview((json.dumps(asdict(record)) + "\n").encode())
        fd = os.open(self.folder / DECISIONS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            try:
                while line:
                    line = line[os.write(fd, line):]
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, end)
                raise
        finally:
            os.close(fd)
        self._decisions[record.id] = record
        self._n_lines += 1
        self._labels[record.id] = self._label(record)

    def _label(self, record: Decision) -> float:
        painted = self._painted_mask(record.mask) if record.decision == "correct" else None
        return float(label_of(record, painted))

    def _write_mask(self, item_id: int, mask: np.ndarray) -> str:
        """Save a mask under a new name (earlier decision lines keep theirs); returns that name."""
        n = self._n_lines + 1
        while (self.folder / f"masks/{item_id}-{n}.png").exists():  # written by another object, or orphaned by a crash
            n += 1
        name = f"masks/{item_id}-{n}.png"
        with atomic_write(self.folder / name) as f:
            Image.fromarray(mask_image(mask)).save(f, format="PNG")
        self._painted[name] = bool(mask.any())
        return name

    def _store(self, source: Path, name: PurePosixPath, image: np.ndarray, prediction, taken: set[str]) -> Item:
        """Copy the image in, save its map and thumbnail, and name it `name` (numbered where it is taken); `taken`
        holds the casefolded names in use less their suffixes (an export names masks so)."""
        stem = name.stem if name.stem and not name.stem.startswith(".") else "image"
        file_name = unique_name(name.with_name(stem).as_posix(), taken, split_suffix=False) + name.suffix
        item_id = len(self._items)
        copy = self.folder / "images" / f"{item_id}{name.suffix}"
        with atomic_write(copy) as f, open(source, "rb") as original:
            shutil.copyfileobj(original, f)
        self._write_map(self._maps, item_id, prediction.anomaly_map)
        with atomic_write(self.folder / "thumbs" / f"{item_id}.png") as f:
            Image.fromarray(to_uint8(subsample(image, THUMB_SIDE))).save(f, format="PNG")
        height, width = prediction.anomaly_map.shape
        item = Item(item_id, file_name, copy, float(prediction.score),
                    float(prediction.normalized_score), prediction.verdict, int(height), int(width), _familiarity(prediction),
                    prediction.peak)
        self._items.append(item)
        self._scores = np.append(self._scores, item.score)
        self._out_of_domain = np.append(self._out_of_domain, item.out_of_domain)
        self._labels = np.append(self._labels, np.nan)
        return item

    def _write_map(self, maps: str, item_id: int, amap: np.ndarray) -> None:
        with atomic_write(self.folder / maps / f"{item_id}.npy") as f:
            np.save(f, kept_map(amap), allow_pickle=False)

    def _write_items(self) -> None:
        records = []
        for item in self._items:
            record = asdict(item)
            record["image_path"] = item.image_path.relative_to(self.folder).as_posix()
            records.append(record)
        with atomic_write(self.folder / ITEMS_FILE) as f:
            f.write(json.dumps({"format_version": FORMAT_VERSION, "model": asdict(self._model), "maps": self._maps,
                                "calibration": self._calibration.to_dict(), "items": records}, indent=1).encode())
        self._saved_items = len(records)

    def _load(self) -> None:
        """(Re)read the items and the decision log; the caller holds the lock."""
        self._items, self._calibration, self._model, self._maps = self._read_items()
        self._saved_items = len(self._items)
        self._decisions, self._n_lines = self._read_decisions()
        self._index()

    @contextlib.contextmanager
    def one_model(self) -> Iterator[None]:
        """While held, no re-score switches the model (it waits to): the scores and maps read are of one model, as an
        export needs them to be from its snapshot to its last mask. Decisions, images being added and a re-score's
        scoring go on meanwhile (an export waited for a whole folder's scoring, then took images added after its press)."""
        with self._switching:
            yield

    def snapshot(self) -> list[tuple[Item, Decision | None, bool | None]]:
        """Every item with its latest decision and reviewed label (True defective, None unreviewed), read at one
        moment: an export made while the inspector goes on deciding is of one state of the review."""
        with self._lock:
            return [(item, self._decisions.get(item.id), None if np.isnan(label) else bool(label))
                    for item, label in zip(self._items, self._labels)]

    def _index(self) -> None:
        self._scores = np.array([item.score for item in self._items], dtype=np.float64)
        self._out_of_domain = np.array([item.out_of_domain for item in self._items], dtype=bool)
        self._labels = np.full(len(self._items), np.nan)
        for item_id, record in self._decisions.items():
            if item_id < len(self._items):
                self._labels[item_id] = self._label(record)

    def _read_items(self) -> tuple[list[Item], Calibration | None, ScoredBy | None, str]:
        """The items, the calibration they were scored with, the model and its maps' folder; none yet for a new session.

        Decisions without items.json would be taken for decisions on the next images added, so
        that is an error, as is a file this version cannot read.
        """
        path = self.folder / ITEMS_FILE
        if not path.is_file():
            if (self.folder / DECISIONS_FILE).exists():
                raise InvalidInputError(f"{path} is missing, so the decisions in this review have no images: start a new review")
            return [], None, None, MAPS
        try:
            data = json.loads(path.read_bytes())
        except ValueError as err:  # not JSON, or not UTF-8
            raise InvalidInputError(f"{path} is corrupt ({err}): start a new review") from err
        version = data.get("format_version") if isinstance(data, dict) else None
        if version not in READABLE_VERSIONS:
            raise InvalidInputError(f"{path} has format_version {version!r}, and this version of rbd reads only "
                                    f"{' and '.join(map(str, READABLE_VERSIONS))}: start a new review")
        try:
            items = [Item(**{**record, "image_path": self.folder / record["image_path"]}) for record in data["items"]]
            model = ScoredBy(**data["model"]) if version >= 3 else ScoredBy("a model (recorded before rbd named them)")
            maps = data["maps"] if version >= 4 else MAPS
            if not isinstance(maps, str) or not _MAPS_NAME.fullmatch(maps):
                raise ValueError(f"maps folder {maps!r}")
            return items, Calibration.from_dict(data["calibration"]), model, maps
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInputError(f"{path} is corrupt ({err!r}): start a new review") from err

    def _read_decisions(self) -> tuple[dict[int, Decision], int]:
        """The latest decision per item and the number of lines; a torn last line is cut off the file, and so
        are decisions on items that items.json lacks (made by older versions on an image still being scored,
        then lost in a crash): the next image added would take that id and the decision with it."""
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
        records = []
        for number, line in enumerate(data[:end].splitlines(), start=1):
            if not line.strip():  # an editor's blank line: no record, and no reason to refuse the whole review
                continue
            try:
                record = Decision(**json.loads(line))
                record = replace(record, threshold=checked_threshold(record.threshold))
                if (not isinstance(record.id, int) or record.id < 0 or record.decision not in DECISIONS or record.verdict not in ("defective", "good")
                        or not isinstance(record.timestamp, str)
                        or not (record.mask is None or _MASK_NAME.fullmatch(record.mask))
                        or (record.decision == "correct" and record.mask is None)):
                    raise InvalidInputError(f"unexpected values {record}")
            except (ValueError, TypeError) as err:
                raise InvalidInputError(f"{path}, line {number}: not a decision record ({err})") from err
            records.append((line, record))
        kept = [(line, record) for line, record in records if record.id < len(self._items)]
        if len(kept) < len(records):
            notify(f"{path}: dropped {len(records) - len(kept)} decision(s) on images lost before they were saved")
            with atomic_write(path) as f:
                f.write(b"".join(line + b"\n" for line, _ in kept))
        return {record.id: record for _, record in kept}, len(kept)


def _missing(what: str) -> InvalidInputError:
    """The error for a file of the review's own that is gone (changed outside rbd): the review cannot be read whole."""
    return InvalidInputError(f"{what} is missing from the review's folder (changed outside the app?): score the images "
                             "into a new review")


_FOLDER_LOCKS: dict[tuple[Path, str], threading.RLock] = {}
_FOLDER_LOCKS_GUARD = threading.Lock()


def _folder_lock(folder: Path, role: str = "state") -> threading.RLock:
    """One holder of each `role` per session folder in this process: Gradio runs handlers in threads, often on
    separate objects."""
    with _FOLDER_LOCKS_GUARD:
        return _FOLDER_LOCKS.setdefault((folder.resolve(), role), threading.RLock())


def session_folder(root: str | Path, session_id: str) -> Path:
    """root/<session_id>; the id comes from the browser, so only a plain token is accepted."""
    if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
        raise InvalidInputError(f"invalid session id {session_id!r}: use 1 to 64 letters, digits, '_' or '-'")
    return Path(root) / session_id


def _not_held(paths: list[Path], stored: list[Path], upload: str | Path | None) -> list[Path]:
    """`paths` less the files whose bytes one of `stored` (a review's images) or an earlier path holds, with a notice. A
    folder scored again once a new image had joined it added each image a second time (numbered, `000_1.jpg`), to be
    reviewed twice and counted twice in the metrics and a recalibration. A file that cannot be read stays, for scoring
    to report."""
    def digest(path: Path) -> str | None:
        try:
            return file_digest(path)
        except OSError:
            return None

    sizes = {path.stat().st_size for path in paths if path.is_file()}
    held = {digest(image) for image in stored if image.is_file() and image.stat().st_size in sizes}  # only those that could match
    kept, again = [], []
    for path in paths:
        found = digest(path)
        (again if found is not None and found in held else kept).append(path)
        held.add(found)
    if again:
        notify(f"{len(again)} image(s) with the same bytes as an image of this review, or an earlier one of this upload, were "
               f"not added again: {some([_upload_name(path, upload).as_posix() for path in again], 5)}")
    return kept


def _upload_name(path: Path, upload: str | Path | None) -> PurePosixPath:
    """The name the user knows an uploaded image by: its path in `upload`, else its file name. In one Unicode form
    (NFC): "é" written as e and an accent (macOS names so) and as one letter look alike, and two names differing so
    became two masks in the export that macOS takes for one file, one overwriting the other."""
    name = path.relative_to(upload).as_posix() if upload is not None and path.is_relative_to(upload) else path.name
    return PurePosixPath(unicodedata.normalize("NFC", name))


def _familiarity(prediction) -> float | None:
    return None if prediction.familiarity is None else float(prediction.familiarity)

