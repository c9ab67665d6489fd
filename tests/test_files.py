"""rbd.files.atomic_write: a file appears whole or not at all, readable as any saved file."""

import os
import stat

import pytest

from rbd.files import atomic_write


def test_a_written_file_replaces_the_old_one_and_is_readable_by_all(tmp_path):
    path = tmp_path / "out" / "result.json"
    for text in (b"first", b"second"):
        with atomic_write(path) as f:
            f.write(text)
    assert path.read_bytes() == b"second" and list(path.parent.iterdir()) == [path]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not the temporary file's 0600
    with atomic_write(tmp_path / "secret", mode=0o600) as f:
        f.write(b"key")
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path):
    path = tmp_path / "result.json"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write(b"half")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]


def test_the_folder_is_synced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), os.listdir(tmp_path))) or real(fd))
    with atomic_write(tmp_path / "items.json") as f:
        f.write(b"{}")
    assert synced[-1] == (True, ["items.json"])  # the folder, once the file has its name


def test_a_folder_that_cannot_be_synced_still_gets_the_file(tmp_path, monkeypatch):
    real = os.fsync

    def refuse_folders(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")  # as some network file systems answer
        real(fd)

    monkeypatch.setattr(os, "fsync", refuse_folders)
    with atomic_write(tmp_path / "items.json") as f:
        f.write(b"{}")
    assert (tmp_path / "items.json").read_bytes() == b"{}"


def test_a_name_near_the_file_systems_limit_is_written(tmp_path):
    """The temporary file's name grew with the target's: a legal 255-byte name went over the limit."""
    path = tmp_path / ("ü" * 120 + "_overlay.png")  # 252 bytes in UTF-8
    with atomic_write(path) as f:
        f.write(b"picture")
    assert path.read_bytes() == b"picture" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_lock_on_a_file_system_that_cannot_lock_is_granted(tmp_path, monkeypatch):
    """NFS without its lock daemon: flock raises ENOLCK, and the app failed to start with a bare traceback where it
    ran before the lock (one app per work folder is then not enforced, as on a system without flock)."""
    import errno
    import fcntl

    from rbd.files import hold_lock

    def no_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert hold_lock(tmp_path / "app.lock") and hold_lock(tmp_path / "app.lock")
