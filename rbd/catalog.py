"""The checkpoints an app offers: shipped ones, fine-tuned ones, and Hub repos.

A fine-tune is private to the browser session that made it (its owner) until it is published
to every user of the app (or pushed to the Hub):

    shipped/<name>/                 checkpoints that come with the app
    trained/shared/<name>/          published fine-tunes (and fine-tunes of older versions, at trained/<name>/)
    trained/private/<owner>/<name>/ one browser session's fine-tunes

Loaded detectors are cached and shared (inference never changes them: callers pass their own
threshold to `Detector.rethreshold`), so switching back to a model is instant. Only folders
listed for the caller and Hub repo ids are loaded: a browser cannot make the server open
arbitrary paths, nor another session's private models.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import time
import unicodedata
import uuid
from collections import OrderedDict
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

from .checkpoint import CONFIG_FILE, is_repo_id, load, load_from_hub, save
from .detector import Detector
from .errors import CheckpointError, HubError, InvalidInputError
from .files import sync_files, sync_folder
from .expiry import mark_used, remove_idle
from .review.store import SESSION_ID

CACHE_SIZE = 6  # loaded detectors kept in memory (about 10 MB each with the default teacher)
# what `add_trained` adds to a model's name: its date, time and 4 hex; and after it a browser's " (1)" of a second download
STAMP = re.compile(r"-\d{8}-\d{6}-[0-9a-f]{4}(?: \(\d+\))?$")


def is_hub_key(key: str) -> bool:
    """Whether a model's key names a Hub repo (owner/name) rather than a checkpoint folder (an absolute path)."""
    return not Path(key).is_absolute() and is_repo_id(key)


def model_name(key: str, revision: str | None = None) -> str:
    """A model's name for people: a folder's name, or a Hub repo id with its revision."""
    return "@".join(filter(None, (key, revision))) if is_hub_key(key) else Path(key).name


def gone(key: str) -> str:
    """What a browser is told of its private fine-tune that is gone (from another tab, or by the idle sweep)."""
    return (f"{model_name(key)!r} no longer exists: it was deleted, or, kept private to its browser, removed once unused "
            "for a while (share one to keep it); pick another model in the list, or reload the page for the default")


class Catalog:
    def __init__(self, shipped: str | Path, trained: str | Path, device: str = "auto"):
        from .runtime import resolve_device

        # absolute, as the keys that saving returns are: a relative work folder must list the same keys
        self.shipped, self.trained = Path(shipped).resolve(), Path(trained).resolve()
        self.shared, self.private = self.trained / "shared", self.trained / "private"
        self.device = resolve_device(device)
        self._cache: OrderedDict[tuple[str, str | None], Detector] = OrderedDict()
        self._locks: dict[tuple[str, str | None], threading.Lock] = {}
        self._guard = threading.Lock()
        self._publishing = threading.Lock()

    def entries(self, owner: str | None = None) -> list[tuple[str, str]]:
        """(label, key) pairs for a picker: shipped checkpoints first, then `owner`'s own models (fine-tuned here or
        loaded from a zip), then shared ones, each newest first."""
        def folders(root: Path) -> list[tuple[float, Path]]:
            """(modified, folder) of the checkpoints in `root`; not the hidden ones (a save's or a publish's staging, left
            by a crash), nor one another tab deleted, shared or let expire while they were listed (it failed the list)."""
            found = []
            with contextlib.suppress(FileNotFoundError):  # the folder itself (an owner's, swept)
                for p in list(root.iterdir()):
                    with contextlib.suppress(FileNotFoundError):
                        if not p.name.startswith(".") and (p / CONFIG_FILE).is_file():
                            found.append((p.stat().st_mtime, p))
            return found

        def newest_first(found: list[tuple[float, Path]]) -> list[Path]:
            return [p for _, p in sorted(found, key=lambda pair: pair[0], reverse=True)]

        shipped = [(f"{p.name} (shipped)", str(p)) for p in sorted(p for _, p in folders(self.shipped))]
        shared = [(f"{p.name} (shared)", str(p)) for p in newest_first(folders(self.shared) + folders(self.trained))]
        mine = [(f"{p.name} (yours)", str(p)) for p in newest_first(folders(self.owner_folder(owner)))] if owner else []
        return shipped + mine + shared

    def default_key(self) -> str | None:
        entries = self.entries()
        return entries[0][1] if entries else None

    def owner_folder(self, owner: str) -> Path:
        """Where `owner`'s private fine-tunes live; the owner id comes from the browser, so it is checked."""
        if not isinstance(owner, str) or not SESSION_ID.fullmatch(owner):
            raise InvalidInputError(f"invalid browser session id {owner!r}")
        return self.private / owner

    def get(self, key: str, revision: str | None = None, owner: str | None = None) -> Detector:
        """A checkpoint folder listed for `owner` or a Hub repo id (`owner/name`, at `revision`), loaded once.

        Loading one model never blocks requests for another (one lock per key).
        """
        key, revision = self.current_key(key, owner), (revision or "").strip() or None
        listed = key in {k for _, k in self.entries(owner)}
        mine = bool(owner) and Path(key).parent == self.owner_folder(owner)
        if listed:
            revision = None  # local folders have no revisions
            if mine:
                with self._guard:  # the sweep judges and moves idle folders under it (`remove_idle`)
                    if not Path(key).is_dir():
                        raise CheckpointError(gone(key))
                    mark_used(self.owner_folder(owner))
        elif mine:
            raise CheckpointError(gone(key))
        elif not is_repo_id(key):  # named, not its server path
            raise CheckpointError(f"{model_name(key)!r} is neither a listed checkpoint nor a Hub repo id (owner/name)")
        slot = (key, revision)
        with self._guard:
            lock = self._locks.setdefault(slot, threading.Lock())
        with lock:
            with self._guard:
                if slot in self._cache:
                    self._cache.move_to_end(slot)
                    return self._cache[slot]
            detector = load(key, device=self.device) if listed else self._from_hub(key, revision)
            self._remember(slot, detector)
            return detector

    def _from_hub(self, key: str, revision: str | None) -> Detector:
        """A Hub repo; where it cannot be had (no config of it in the local cache after the try), the error also says
        that no model of this app's list is named so (a folder typed into the picker, `checkpoints/weld`, reads as a
        repo id and got only the Hub's answer). A repo that was had, whose files are broken, is not told to pick another."""
        try:
            return load_from_hub(key, revision, device=self.device)
        except (CheckpointError, HubError) as err:
            def cached(at: str | None) -> bool:
                try:
                    return isinstance(try_to_load_from_cache(key, CONFIG_FILE, revision=at), str)
                except ValueError:  # an id the Hub's own rules refuse (`a/b--c`): never had, and `err` says why
                    return False
            if cached(revision):
                raise
            if revision and cached(None):  # a revision not had of a repo that was: not sent to the list's models
                raise type(err)(f"{err}; the local cache holds {key} at its main revision, not at {revision}") from err
            raise type(err)(f"{err}; nor is {key} one of this app's models (pick those in the list)") from err

    def current_key(self, key: str, owner: str | None = None) -> str:
        """The key `owner`'s model is listed under now: a private fine-tune shared since (from another tab of
        the browser) is found under shared/."""
        key = key.strip()
        mine = bool(owner) and Path(key).parent == self.owner_folder(owner)
        shared = self.shared / Path(key).name
        if mine and not (Path(key) / CONFIG_FILE).is_file() and (shared / CONFIG_FILE).is_file():
            return str(shared)
        return key

    def forget(self, key: str, revision: str | None = None) -> None:
        """Drop a loaded model, so that the next `get` reads it again: a Hub revision's commit as it names one now (a
        branch moves on when someone pushes, while the cache keeps the commit it first loaded), a folder as it is now."""
        with self._guard:
            self._cache.pop((key.strip(), (revision or "").strip() or None), None)

    def add_trained(self, detector: Detector, owner: str, name: str = "") -> str:
        """Save a newly trained detector (atomically) as `owner`'s and return its key: a fresh folder named
        `<name>-<date>-<time>-<4 hex>`, `name` the user's words kept to letters, digits, - and _ ("model" if none),
        so that two fine-tunes, or two users' shared ones, never take one name."""
        folder = self.owner_folder(owner)
        with self._guard:  # before saving, under the sweep's lock: it must not take the folder while the model is written in
            folder.mkdir(parents=True, exist_ok=True)
            mark_used(folder)
        # a downloaded model loaded again is stamped once: the stamp taken off before the name is cut to 40 characters
        # (a longer name kept a cut stamp) or its " (1)" made safe ("-1", which hid the stamp)
        stem = STAMP.sub("", unicodedata.normalize("NFC", name).strip())
        stem = re.sub(" +", "-", "".join(c if _is_name_character(c) else " " for c in stem)).strip("-_")[:40].strip("-_") or "model"
        key = save(detector, folder / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}")
        self._remember((str(key), None), detector)
        return str(key)

    def remove_idle(self, max_idle_s: float) -> list[Path]:
        """Remove the private models of owners idle longer than `max_idle_s` (`rbd.expiry.remove_idle`), each owner's
        folder judged and moved aside under the lock `get` and `add_trained` mark it used under."""
        return remove_idle(self.private, max_idle_s, guard=self._guard)

    def publish(self, key: str, owner: str) -> str:
        """Offer `owner`'s fine-tune to every user of the app; returns its new key."""
        source = Path(key)
        target = self.shared / source.name
        with self._publishing:  # two tabs sharing one model: the second finds it shared, not half moved
            if source.parent == self.shared and (source / CONFIG_FILE).is_file():
                raise CheckpointError(f"{model_name(key)} is already offered to every user of this app")
            mine = source.parent == self.owner_folder(owner)
            if mine and not ((source / CONFIG_FILE).is_file() or (target / CONFIG_FILE).is_file()):
                raise CheckpointError(gone(key))
            if not mine:
                raise CheckpointError(f"{model_name(key)} is not a fine-tune made in this browser: only those can be shared "
                                      "(pick one in the model list, or fine-tune one)")
            staging = self.shared / f".{source.name}.tmp"
            shutil.rmtree(staging, ignore_errors=True)  # a copy cut short
            if not (target / CONFIG_FILE).is_file():  # else shared already (by another tab, or a share cut short after its copy)
                self.shared.mkdir(parents=True, exist_ok=True)
                shutil.copytree(source, staging)
                sync_files(staging)  # on disk before the private copy, the only other one, goes
                staging.rename(target)  # appears whole, or not at all
                sync_folder(self.shared)
            shutil.rmtree(source, ignore_errors=True)
        with self._guard:
            detector = self._cache.pop((key, None), None)
        if detector is not None:
            self._remember((str(target), None), detector)
        return str(target)

    def check_removable(self, key: str, owner: str) -> None:
        """Raise `CheckpointError` saying why `key` cannot be deleted by `owner` (`remove`), if it cannot."""
        source = Path(key)
        if source.parent == self.shared:
            raise CheckpointError(f"{model_name(key)} is offered to every user of this app, who may be judging by it: "
                                  "only a fine-tune still yours can be deleted here")
        if source.parent == self.shipped:
            raise CheckpointError(f"{model_name(key)} comes with the app: only a fine-tune made in this browser can be deleted")
        if source.parent != self.owner_folder(owner):
            raise CheckpointError(f"{model_name(key)} is not a fine-tune made in this browser: only those can be deleted")
        if not (source / CONFIG_FILE).is_file():
            raise CheckpointError(gone(key))

    def remove(self, key: str, owner: str) -> None:
        """Delete `owner`'s private fine-tune. A shared one is not deleted from the app: other users may be judging by it.
        The folder leaves the model list at once (renamed to a hidden name the list skips), then is removed."""
        source = Path(key)
        with self._publishing:  # not while a share of it moves it
            self.check_removable(key, owner)
            trash = source.with_name(f".{source.name}.deleted")
            shutil.rmtree(trash, ignore_errors=True)  # a deletion cut short
            source.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        with self._guard:
            self._cache.pop((str(source), None), None)

    def _remember(self, slot: tuple[str, str | None], detector: Detector) -> None:
        with self._guard:
            self._cache[slot] = detector
            self._cache.move_to_end(slot)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)


def _is_name_character(character: str) -> bool:
    """Whether a model's name keeps `character`: a letter or digit of any script with its marks (Devanagari's, Thai's,
    Arabic's vowel signs: "हिन्दी" came out "ह-न-द-"), "-" or "_"."""
    return character.isalnum() or character in "-_" or unicodedata.category(character).startswith("M")
