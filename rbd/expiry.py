"""Forgetting idle sessions: reviews and private models nobody has used for a while are removed.

Each such folder is marked when used (the marker's modification time is the last use), and a
sweep removes the folders of a root whose last use is older than the allowed idle time.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

MARKER = ".last-used"


def mark_used(folder: str | Path) -> None:
    """Record that `folder` (which must exist) was used now."""
    (Path(folder) / MARKER).touch()


def last_used(folder: str | Path) -> float:
    """When `folder` was last marked used (its own modification time if it never was)."""
    folder = Path(folder)
    marker = folder / MARKER
    return marker.stat().st_mtime if marker.exists() else folder.stat().st_mtime


def remove_idle(root: str | Path, max_idle_s: float, now: float | None = None) -> list[Path]:
    """Remove the folders directly under `root` unused for more than `max_idle_s`; returns them."""
    root, now = Path(root), time.time() if now is None else now
    removed = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            idle = folder.is_dir() and not folder.is_symlink() and now - last_used(folder) > max_idle_s
        except FileNotFoundError:  # removed meanwhile
            continue
        if idle:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
