"""Forgetting idle sessions: reviews and private models nobody has used for a while are removed.

Each such folder is marked when used (the marker's modification time is the last use), and a
sweep removes the folders of a root whose last use is older than the allowed idle time.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable

MARKER = ".last-used"
EXPIRED_PREFIX = ".expired-"  # an idle folder while it is deleted


def mark_used(folder: str | Path) -> None:
    """Record that `folder` (which must exist) was used now."""
    (Path(folder) / MARKER).touch()


def last_used(folder: str | Path) -> float:
    """When `folder` was last marked used (its own modification time if it never was)."""
    folder = Path(folder)
    marker = folder / MARKER
    return marker.stat().st_mtime if marker.exists() else folder.stat().st_mtime


def remove_idle(root: str | Path, max_idle_s: float, now: float | None = None,
                guard: AbstractContextManager = contextlib.nullcontext(), in_use: Callable[[Path], bool] = lambda folder: False) -> list[Path]:
    """Remove the folders directly under `root` unused for more than `max_idle_s`; returns them.

    Each idle folder is judged and renamed out of the way under `guard`, unless `in_use(folder)` (asked under it too):
    an owner that opens and marks its folders under the same lock never has one deleted between its use and its mark.
    The renamed copy is deleted after, outside the lock; one a kill left behind is idle, and goes with a later sweep."""
    root, now = Path(root), time.time() if now is None else now
    removed = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        with guard:
            try:
                if not folder.is_dir() or folder.is_symlink() or now - last_used(folder) <= max_idle_s or in_use(folder):
                    continue
                retired = folder.rename(folder.with_name(f"{EXPIRED_PREFIX}{folder.name}-{secrets.token_hex(4)}"))
            except OSError:  # removed meanwhile, or not ours to move
                continue
        shutil.rmtree(retired, ignore_errors=True)
        removed.append(folder)
    return removed
