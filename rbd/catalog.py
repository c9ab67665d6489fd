"""The checkpoints an app offers: shipped ones, ones trained in its work folder, and Hub repos.

Loaded detectors are cached and shared (inference never changes them: callers pass their own
threshold to `Detector.rethreshold`), so switching back to a model is instant. Only listed
folders and Hub repo ids are loaded: a browser cannot make the server open arbitrary paths.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path

from .checkpoint import CONFIG_FILE, is_repo_id, load, load_from_hub, save
from .detector import Detector
from .errors import CheckpointError
from .runtime import resolve_device

CACHE_SIZE = 6  # loaded detectors kept in memory (about 10 MB each with the default teacher)


class Catalog:
    def __init__(self, shipped: str | Path, trained: str | Path, device: str = "auto"):
        self.shipped, self.trained = Path(shipped), Path(trained)
        self.device = resolve_device(device)
        self._cache: OrderedDict[tuple[str, str | None], Detector] = OrderedDict()
        self._locks: dict[tuple[str, str | None], threading.Lock] = {}
        self._guard = threading.Lock()

    def entries(self) -> list[tuple[str, str]]:
        """(label, key) pairs for a picker: shipped checkpoints first, then trained ones, newest first."""
        def folders(root: Path) -> list[Path]:
            return [p for p in root.iterdir() if (p / CONFIG_FILE).is_file()] if root.is_dir() else []

        shipped = [(f"{p.name} (shipped)", str(p)) for p in sorted(folders(self.shipped))]
        trained = [(f"{p.name} (fine-tuned)", str(p)) for p in sorted(folders(self.trained), key=lambda p: p.stat().st_mtime, reverse=True)]
        return shipped + trained

    def default_key(self) -> str | None:
        entries = self.entries()
        return entries[0][1] if entries else None

    def get(self, key: str, revision: str | None = None) -> Detector:
        """A listed checkpoint folder or a Hub repo id (`owner/name`, at `revision`), loaded once.

        Loading one model never blocks requests for another (one lock per key).
        """
        key, revision = key.strip(), (revision or "").strip() or None
        listed = key in {k for _, k in self.entries()}
        if listed:
            revision = None  # local folders have no revisions
        elif not is_repo_id(key):
            raise CheckpointError(f"{key!r} is neither a listed checkpoint nor a Hub repo id (owner/name)")
        slot = (key, revision)
        with self._guard:
            lock = self._locks.setdefault(slot, threading.Lock())
        with lock:
            with self._guard:
                if slot in self._cache:
                    self._cache.move_to_end(slot)
                    return self._cache[slot]
            detector = load(key, device=self.device) if listed else load_from_hub(key, revision, device=self.device)
            self._remember(slot, detector)
            return detector

    def add_trained(self, detector: Detector) -> str:
        """Save a newly trained detector (atomically) under a fresh name and return its key."""
        folder = save(detector, self.trained / f"model-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}")
        self._remember((str(folder), None), detector)
        return str(folder)

    def _remember(self, slot: tuple[str, str | None], detector: Detector) -> None:
        with self._guard:
            self._cache[slot] = detector
            self._cache.move_to_end(slot)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
