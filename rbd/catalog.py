"""The checkpoints an app offers: shipped ones, ones trained in its work folder, and Hub repos.

Loaded detectors are cached and shared (inference never changes them: callers pass their own
threshold to `Detector.rethreshold`), so switching back to a model is instant.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from .checkpoint import CONFIG_FILE, load, save
from .detector import Detector


class Catalog:
    def __init__(self, shipped: str | Path, trained: str | Path):
        self.shipped, self.trained = Path(shipped), Path(trained)
        self._cache: dict[tuple[str, str | None], Detector] = {}
        self._lock = threading.Lock()

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
        """A checkpoint folder from `entries()` or a Hub repo id (`owner/name`), loaded once."""
        key = key.strip()
        with self._lock:
            if (key, revision) not in self._cache:
                self._cache[(key, revision)] = load(key, revision)
            return self._cache[(key, revision)]

    def add_trained(self, detector: Detector, name: str | None = None, metrics: dict | None = None) -> str:
        """Save a newly trained detector (atomically) and return its key."""
        name = name or f"model-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
        folder = save(detector, self.trained / name, metrics)
        with self._lock:
            self._cache[(str(folder), None)] = detector
        return str(folder)
