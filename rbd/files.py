"""Writing user work so that a crash never leaves a half-written file in its place; telling files apart by their bytes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Iterator


@contextmanager
def atomic_write(path: str | Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` only once fully written and synced: readers see the old file or the new.
    It gets `mode` (readable by all, as any saved file; a temporary file alone would be its owner's only).
    The folder is synced after the rename too, so that after a power cut the writes that survive are
    the earlier ones: a file that names others (a review's items.json, its maps) never outlives them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the name's start only: a name near the file system's 255-byte limit would pass it with the temporary's additions
    fd, temp = tempfile.mkstemp(prefix=f".{path.name[:32]}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        sync_folder(path.parent)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def sync_folder(folder: Path) -> None:
    """Make a folder's entries durable, where the system can: folders cannot be opened on Windows and
    some file systems refuse to sync them; the file is in place either way, so that is no error."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sync_files(folder: Path) -> None:
    """Make a flat folder durable before it takes another's place: its files' bytes, then its entries (after a power
    cut it could otherwise be in place holding empty files, or none)."""
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    sync_folder(folder)


_HELD: dict[Path, BinaryIO] = {}  # the locks this process holds (`hold_lock`), open until it ends


def hold_lock(path: str | Path) -> bool:
    """Whether this process holds (now, or already) the exclusive lock of the file `path`, made if missing, until it
    ends; False where another process holds it. A system without flock (Windows), or a file system that cannot lock,
    grants every call."""
    path = Path(path).resolve()
    if path in _HELD:
        return True
    try:
        import fcntl
    except ImportError:
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path, "ab")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return False
    except OSError:  # a file system that cannot lock (NFS without its lock daemon): granted, as where flock is missing
        lock.close()
        return True
    _HELD[path] = lock
    return True


def file_digest(path: str | Path) -> str:
    """SHA-1 of a file's bytes: two uploads holding the same picture under any names have one."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()
