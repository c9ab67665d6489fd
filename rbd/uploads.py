"""User uploads: zips and loose files gathered safely into a work folder.

Files that come from a browser are untrusted. A zip can name members outside the folder it is
extracted into (`../x`, `/etc/x`, `C:\\x`), hold symbolic links, or expand to far more than it
weighs (a zip bomb); temporary upload files can vanish once the request is over. Everything here
writes only inside the folder it is given, caps what a zip may expand to, copies loose files, and
reports what it skipped with one warning per call.
"""

from __future__ import annotations

import collections
import errno
import filecmp
import itertools
import os
import re
import shutil
import stat
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable, Iterable, Iterator, Sequence

from .datasets import subfolder, without_good
from .errors import DatasetLayoutError, NoImagesError, UploadError
from .images import IMAGE_EXTENSIONS
from .notices import notify, some

MAX_TOTAL_BYTES = 2 * 1024**3  # what one upload (its zips expanded, its loose files) may take on disk
MAX_MEMBERS = 20_000  # entries one upload's zips may hold together
FOLDER_BYTES = 4096  # what a folder a zip makes counts against MAX_TOTAL_BYTES (a block of a common file system)
MAX_CATEGORY_DEPTH = 3  # how many folders down `find_mvtec_root` looks
_CHUNK = 1024 * 1024
# A member's name, not the disk, is at fault: it clashes with a folder (or file) of another member, or is too long.
_BAD_NAME_ERRNOS = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


def extract_zip(zip_path: str | Path, dest: str | Path, *, max_total_bytes: int = MAX_TOTAL_BYTES,
                max_members: int = MAX_MEMBERS) -> list[Path]:
    """Extract a zip into `dest`, keeping its folders; returns the extracted files, sorted.

    Members that would land outside `dest` (absolute paths, drive letters, `..`), symbolic links,
    encrypted or damaged members and a second member of one name are skipped with one warning; macOS junk (`__MACOSX/`, `._*`, `.DS_Store`) and
    hidden files are skipped silently. Raises `UploadError` if the file is not a readable zip, holds
    more than `max_members` entries, expands to more than `max_total_bytes` (counted while
    decompressing, not taken from the headers), or holds nothing but skipped members. On error,
    the files this call wrote are removed again.
    """
    return _extract(Path(zip_path), Path(dest), max_total_bytes, max_members)[0]


def _listed_entries(path: Path) -> int | None:
    """How many entries a zip's end record says it lists, read before the zip is opened: `zipfile` makes an object of
    every entry first, and a 51 MB zip listing a million took 15 s and 480 MB before the count refused it. None where
    no end record is found (opening it then says what is wrong)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - (1 << 16) - 22))  # the record (22 bytes) and a comment of up to 64 KiB
            tail = f.read()
            at = tail.rfind(b"PK\x05\x06")
            if at < 0 or len(tail) - at < 22:
                return None
            count = struct.unpack("<H", tail[at + 10 : at + 12])[0]
            locator = tail.rfind(b"PK\x06\x07", 0, at)  # zip64's, where a count past 65534 is kept
            if count != 0xFFFF or locator < 0:
                return count
            f.seek(struct.unpack("<Q", tail[locator + 8 : locator + 16])[0])
            record = f.read(40)
            return struct.unpack("<Q", record[32:40])[0] if record[:4] == b"PK\x06\x06" and len(record) == 40 else None
    except (OSError, ValueError, struct.error):
        return None


def _decoded_name(member: zipfile.ZipInfo) -> str:
    """A member's name as its maker wrote it. A name not flagged UTF-8 is cp437 by the zip format, and Python reads
    it so; but Info-ZIP on Linux and older macOS tools write UTF-8 without the flag ("fissure é" read "fissure ├⌐").
    Such a name is taken as UTF-8 where its bytes are valid UTF-8, which cp437 text outside ASCII almost never is."""
    if member.flag_bits & 0x800:
        return member.filename
    try:
        return member.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return member.filename


def _extract(zip_path: Path, dest: Path, max_total_bytes: int, max_members: int, unwrap: str = "") -> tuple[list[Path], int]:
    """`extract_zip`, and the bytes it counted against `max_total_bytes` (its files and the folders it made). With
    `unwrap`, the zip's own name less its suffix as the user has it (the web server's copy may have lost characters:
    `lot5!.zip` came as `lot5.zip`), a zip whose members all lie in one folder of that name (`zip -r bottle.zip
    bottle`, or a desktop's "compress") has that folder's content extracted into `dest`, which is named after the zip
    already: its images were `bottle/bottle/good/000.png`."""
    name = zip_path.name
    listed = _listed_entries(zip_path)
    if listed is not None and listed > max_members:
        raise _TooLarge(f"{name} holds {listed:,} entries; at most {max_members:,} are accepted")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as err:
        raise UploadError(f"{name} is not a readable zip file ({err})") from err
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise _TooLarge(f"{name} holds {len(members):,} entries; at most {max_members:,} are accepted")
        if sum(member.file_size for member in members) > max_total_bytes:
            raise _too_large(name, max_total_bytes)
        named = {id(member): PurePosixPath(_decoded_name(member).replace("\\", "/")).parts for member in members if not member.is_dir()}
        kept = [parts for parts in named.values() if not _is_junk(parts)]
        wrapper = bool(unwrap) and bool(kept) and all(len(parts) > 1 and parts[0].casefold() == unwrap.casefold() for parts in kept)
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        written: list[Path] = []
        seen: set[Path] = set()  # `written` as a set: one look-up per member, not a scan of all before it
        folders: set[Path] = set()  # made for the members so far, counted as FOLDER_BYTES each
        skipped: list[str] = []
        total = 0
        try:
            for member in members:
                if member.is_dir():
                    continue
                filename, parts = _decoded_name(member), named[id(member)]
                if wrapper and not _is_junk(parts):
                    parts = parts[1:]
                reason = _unsafe_reason(member, parts, root)
                if reason:
                    skipped.append(f"{filename} ({reason})")
                    continue
                if _is_junk(parts):
                    continue
                target = dest.joinpath(*parts)
                if target in seen:  # the zip format allows it; the second would silently replace the first
                    skipped.append(f"{filename} (a second member of that name)")
                    continue
                new_folders = [folder for folder in itertools.takewhile(lambda folder: folder != dest, target.parents)
                               if folder not in folders and not os.path.exists(folder)]  # (False past 255 bytes)
                total += FOLDER_BYTES * len(new_folders)  # a folder takes disk too: deep one-byte members made thousands
                if total > max_total_bytes:
                    raise _too_large(name, max_total_bytes)
                folders.update(new_folders)
                written.append(target)  # before copying, so that a partly written file is removed on error
                seen.add(target)
                try:
                    total = _copy_member(archive, member, target, total, max_total_bytes)
                except _DamagedMember:  # one bad member costs that member, not the upload
                    seen.discard(target)
                    written.pop().unlink(missing_ok=True)
                    skipped.append(f"{filename} (corrupt or compressed in an unsupported way)")
                except OSError as err:
                    if err.errno not in _BAD_NAME_ERRNOS:
                        raise
                    seen.discard(target)
                    written.pop()  # nothing was written
                    skipped.append(f"{filename} ({err.strerror})")
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    if skipped and not written:
        raise UploadError(f"{name}: nothing could be extracted safely; skipped {'; '.join(skipped)}")
    if skipped:
        notify(f"{name}: skipped {'; '.join(skipped)}")
    return sorted(seen), total


def gather_images(paths: Iterable[str | Path], dest: str | Path, names: Sequence[str | None] = ()) -> list[Path]:
    """The image files of an upload, copied or extracted into `dest`, sorted by their path in `dest`,
    which is the path the user knows each image by (`path.relative_to(dest)`).

    Each path is an image file or a zip. Zips are extracted into their own subfolder of `dest` and
    searched recursively for images. Loose images are copied (the upload's temporary files may
    vanish) to `dest/<name>`, where `names[i]`, if given, is the path a browser picked `paths[i]`
    at within its folder (`picked_names`), else the file's own name; a path that is taken, ignoring
    case, is renamed `a_1.png`, `a_2.png`... (see `unique_name`). Hidden files in a picked folder are
    skipped silently, as in zips; other files with one warning. Raises `NoImagesError` if no image
    is left, `UploadError` for a bad zip.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    taken = {entry.relative_to(dest).as_posix().casefold() for entry in dest.rglob("*")}  # what an earlier call left there
    images: list[Path] = []
    skipped: list[str] = []
    renamed: list[tuple[str, str]] = []  # (a.png, a_1.png) for loose files numbered past another file of their name
    used, members = 0, 0  # bytes written, zip members extracted: the caps hold for the whole upload, not for each zip
    for i, path in enumerate(map(Path, paths)):
        picked = PurePosixPath((names[i] if i < len(names) else None) or path.name)  # from the browser: untrusted
        name = path.name if _outside_reason(picked.parts, root) else picked.as_posix()
        if _is_junk(PurePosixPath(name).parts):
            continue
        if not path.is_file():
            skipped.append(f"{name} (the uploaded file is gone)")
            continue
        if path.suffix.lower() == ".zip":
            # where the zip lies in a picked folder (`lot/test/crack.zip` -> `lot/test/crack/`), a folder no other file took
            if used >= MAX_TOTAL_BYTES or members >= MAX_MEMBERS:
                raise _upload_too_large()
            folder = dest / unique_name(PurePosixPath(name).with_suffix("").as_posix(), taken, split_suffix=False)
            if not _made(folder):  # `a.png/x.zip` beside a.png, or a folder named past 255 bytes: the zip's own name, as a
                folder = dest / unique_name(path.stem, taken, split_suffix=False)  # loose file falls back
            try:
                extracted, taken_bytes = _extract(path, folder, MAX_TOTAL_BYTES - used, MAX_MEMBERS - members,
                                                  unwrap=PurePosixPath(name).stem)
            except _TooLarge as err:
                if used:  # within the caps alone: the upload as a whole is too large, not this zip a bomb
                    raise _upload_too_large() from err
                raise
            used += taken_bytes
            members += len(extracted)
            for file in extracted:  # taken too, so that a picked file named as one of them is numbered, not written over it
                relative = file.relative_to(dest)
                taken.update(part.as_posix().casefold() for part in (relative, *relative.parents) if part.parts)
            found = [file for file in extracted if file.suffix.lower() in IMAGE_EXTENSIONS]
            images += found
            skipped += [] if found else [f"{name} (no image inside)"]
            # other files beside a zip's images (a readme) pass silently; a zip's images would be lost unseen
            skipped += [f"{file.relative_to(dest).as_posix()} (a zip inside the zip: unzip it first)"
                        for file in extracted if file.suffix.lower() == ".zip"]
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            if used + path.stat().st_size > MAX_TOTAL_BYTES:
                raise _upload_too_large()
            try:
                images.append(_copy_upload(path, dest, name, taken))
                used += path.stat().st_size
            except FileNotFoundError:
                skipped.append(f"{name} (the uploaded file is gone)")
                continue
            if _is_other_file_of_one_name(images[-1], dest / name):
                renamed.append((name, images[-1].relative_to(dest).as_posix()))
        else:
            skipped.append(f"{name} (not an image type rbd reads, nor a zip)")
    if not images:
        detail = f"; skipped: {'; '.join(skipped)}" if skipped else ""
        expected = f"{', '.join(IMAGE_EXTENSIONS)} files or .zip archives of them"
        raise NoImagesError(f"no image files in the upload: expected {expected}{detail}")
    if skipped:
        notify(f"skipped {len(skipped)} uploaded file(s): {'; '.join(skipped)}")
    if renamed:  # a browser sends loose files by name alone: `good/010.jpg` and `crack/010.jpg` both come as 010.jpg
        named = some([f"{name} as {new}" for name, new in renamed])
        notify(f"{len(renamed)} uploaded file(s) had the name of another, different file and are named so: {named}"
               + (" (upload their folder or a zip to keep the folders they came from)" if any("/" not in name for name, _ in renamed) else ""))
    return sorted(images, key=lambda image: image.relative_to(dest))


def picked_names(paths: Iterable[str | Path], picked: Iterable[Sequence] | None,
                 stored_as: Callable[[str], str] = lambda name: name) -> list[str | None]:
    """Which uploaded file is which file of the folders a browser picked: for each of `paths`, its path
    in its folder, or None where that cannot be told.

    A browser knows each picked file's path in its folder (`webkitRelativePath`) but uploads it
    under its name alone, in the order picked, so the app's page records `picked` as [path in the
    folder, size in bytes] pairs, in that order. Files are matched by name and size, in order, where
    as many were uploaded as picked; where the counts differ (a file removed from the upload box,
    and another with its name and size left) no guess is made and they keep their names. `stored_as` is the name
    the web server stores an uploaded file under (Gradio strips `<>:"|?*!$` and others: `crack!.png` comes as
    `crack.png`), so that such a file is still told apart."""
    paths = [Path(p) for p in paths]
    recorded: dict[tuple[str, int], list[str]] = {}
    for entry in picked or []:
        if isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str) and type(entry[1]) is int:
            recorded.setdefault((stored_as(PurePosixPath(entry[0]).name), entry[1]), []).append(entry[0])
    keys = [_name_and_size(path) for path in paths]
    uploaded = collections.Counter(keys)
    matched = {key: iter(names) for key, names in recorded.items() if len(names) == uploaded[key]}
    return [next(matched[key]) if key in matched else None for key in keys]


def _name_and_size(path: Path) -> tuple[str, int] | None:
    try:
        return path.name, path.stat().st_size
    except OSError:
        return None


def _is_other_file_of_one_name(copied: Path, named: Path) -> bool:
    """Whether `copied` was numbered past a file named `named` (ignoring case, as `unique_name` does) and holds other
    bytes than it and than every file numbered past it before: a second drop of one file is not news."""
    if copied == named or not os.path.isdir(named.parent):  # os.path's: False for a name past 255 bytes, where Path's raises
        return False
    holders = [entry for entry in named.parent.iterdir() if entry != copied and entry.is_file()
               and (entry.name.casefold() == named.name.casefold() or is_renumbered(entry.name, named.name))]
    return bool(holders) and not any(filecmp.cmp(copied, entry, shallow=False) for entry in holders)


def _made(folder: Path) -> bool:
    """Whether `folder` could be made (or was there), made if so: not under a file, nor named past the file system's
    limits."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return True
    except OSError as err:
        if err.errno not in _BAD_NAME_ERRNOS:
            raise
        return False


def _copy_upload(path: Path, dest: Path, name: str, taken: set[str]) -> Path:
    """Copy an uploaded file to `dest/name`, numbered if that is taken (see `unique_name`), and record
    the folders it made in `taken`. A name that clashes with a file or folder there (`a/b.png` where
    `a` is a file) falls back to the file's own name."""
    target = dest / unique_name(name, taken)
    relative = target.relative_to(dest)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    except OSError as err:
        taken.discard(relative.as_posix().casefold())  # the name stays free
        if err.errno in _BAD_NAME_ERRNOS and name != path.name:
            return _copy_upload(path, dest, path.name, taken)
        raise
    taken.update(parent.as_posix().casefold() for parent in relative.parents if parent.parts)
    return target


def find_mvtec_root(folder: str | Path) -> Path:
    """The MVTec AD category (a folder with `test/good/`) in an extracted upload.

    That is `folder` itself or the single folder under it, at most `MAX_CATEGORY_DEPTH` levels down,
    that has `test/good/`, as when a user zips the category folder. Raises `DatasetLayoutError` if
    there is none or there are several.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder} is not a folder")
    if _is_category(folder):
        return folder
    found: list[Path] = []
    defects_only = [folder] if subfolder(folder, "test") else []  # a test/ without good/: a category of defects only
    level = [folder]
    for _ in range(MAX_CATEGORY_DEPTH):
        children = [child for parent in level for child in sorted(parent.iterdir()) if child.is_dir() and not _is_junk((child.name,))]
        found += [child for child in children if _is_category(child)]
        defects_only += [child for child in children if not _is_category(child) and subfolder(child, "test")]
        level = [child for child in children if not _is_category(child) and child not in defects_only]
    if not found and defects_only:  # named, not "no category"
        raise DatasetLayoutError(without_good([(path.relative_to(folder) / "test").as_posix() for path in defects_only]))
    if not found:
        zips = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.suffix.lower() == ".zip")
        raise DatasetLayoutError(
            "no MVTec AD category in the upload: expected a folder holding test/good/ and test/DEFECT/ "
            "(optionally train/good/ and ground_truth/DEFECT/NAME_mask.png, where DEFECT is any defect's name), "
            f"at the top of the upload or up to {MAX_CATEGORY_DEPTH} folders down"
            + (f"; it holds a zip ({some(zips, 3)}): unzip it first" if zips else "")
            + ("; the upload is empty" if not any(folder.iterdir()) else ""))
    if len(found) > 1:
        names = ", ".join(path.relative_to(folder).as_posix() for path in found)
        raise DatasetLayoutError(f"the upload holds {len(found)} MVTec AD categories ({names}); upload one category at a time")
    return found[0]


def _is_category(folder: Path) -> bool:
    return subfolder(folder, "test", "good") is not None


def _unsafe_reason(member: zipfile.ZipInfo, parts: tuple[str, ...], root: Path) -> str | None:
    """Why a member must not be extracted under `root`, or None if it is safe."""
    if stat.S_ISLNK(member.external_attr >> 16):
        return "symbolic link"
    if member.flag_bits & 0x1:
        return "encrypted"
    return _outside_reason(parts, root)


def _outside_reason(parts: tuple[str, ...], root: Path) -> str | None:
    """Why a relative name (its `PurePosixPath` parts) would not land inside the folder `root`, or None."""
    if not parts:
        return "no name"
    if any("\x00" in part for part in parts):
        return "a NUL character in its name"
    if parts[0].startswith("/") or PureWindowsPath(parts[0]).drive:
        return "absolute path"
    if ".." in parts or not root.joinpath(*parts).resolve().is_relative_to(root):
        return "points outside the folder"
    return None


def _is_junk(parts: tuple[str, ...]) -> bool:
    """macOS resource forks (`__MACOSX/`, `._*`), `.DS_Store` and other hidden files or folders."""
    return any(part == "__MACOSX" or part.startswith(".") for part in parts)


def _copy_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, total: int, limit: int) -> int:
    """Stream one member to `target`, adding the bytes that come out to the archive's running `total`
    and refusing the archive once it passes `limit`; returns the new total."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for chunk in _read_chunks(archive, member):
            total += len(chunk)
            if total > limit:
                raise _too_large(Path(archive.filename).name, limit)
            out.write(chunk)
    return total


def _read_chunks(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Iterator[bytes]:
    """A member's decompressed bytes. A damaged member raises `_DamagedMember`; only reading is guarded
    here, so that a full disk while writing is not mistaken for a bad zip."""
    try:
        with archive.open(member) as source:
            while chunk := source.read(_CHUNK):
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as err:
        name = Path(archive.filename).name
        raise _DamagedMember(f"{name}: {member.filename} is corrupt or compressed in an unsupported way ({err})") from err


class _DamagedMember(UploadError):
    """One member of a zip cannot be decompressed (the others may be fine)."""


def _upload_too_large() -> UploadError:
    return UploadError(f"the upload takes more than {_describe_size(MAX_TOTAL_BYTES)} or holds more than {MAX_MEMBERS:,} "
                       "files: upload fewer images at a time")


class _TooLarge(UploadError):
    """A zip expands past what it may take, or holds too many entries: alone a possible zip bomb, after other files
    the upload's caps."""


def _too_large(name: str, limit: int) -> UploadError:
    return _TooLarge(f"{name} expands to more than {_describe_size(limit)}; refusing it as a possible zip bomb")


def as_uploaded(message: str, folders: Iterable[str | Path]) -> str:
    """`message` with its files named as the user knows them, never by a server path: each upload
    lands in a temporary folder of its own under one of `folders` (the web server's upload cache,
    the app's per-request folder), and that much of every path is cut."""
    for folder in folders:  # `folder/<tmp>/` before a path in the upload; `folder/<tmp>` alone is the upload itself
        pattern = re.escape(str(folder).rstrip("/")) + r"/[\w-]+(/|\b)"  # temporary folders: mkdtemp's, Gradio's hashes
        message = re.sub(pattern, lambda match: "" if match[1] else "the upload", message)
    return message


def unique_name(name: str, taken: set[str], *, split_suffix: bool = True) -> str:
    """`name`, or `a_1.png`, `a_2.png`... for `a.png` while that name is in `taken`; records the result.

    Names are compared case-insensitively (case-blind file systems such as macOS's and Windows'
    would make `A.png` and `a.png` one file), so `taken` holds casefolded names: seed it with
    `{name.casefold() for name in ...}`. The number goes before the suffix (`.png`); pass
    `split_suffix=False` for names that have none, such as folders and file stems (`v1.2` -> `v1.2_1`).
    """
    suffix = PurePosixPath(name).suffix if split_suffix else ""
    stem = name[:len(name) - len(suffix)]
    candidate, n = name, 0
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{stem}_{n}{suffix}"
    taken.add(candidate.casefold())
    return candidate


def is_renumbered(name: str, original: str) -> bool:
    """Whether `name` is `original` as `unique_name` numbers it (`a_1.png` for `a.png`, either case), or
    lies in its numbered top folder (`batch_1/x.png` for `batch/x.png`): what a second upload of the same
    file or zip gets."""
    suffix = PurePosixPath(original).suffix
    stem = original[:len(original) - len(suffix)]
    if re.fullmatch(f"{re.escape(stem)}_[0-9]+{re.escape(suffix)}", name, re.IGNORECASE) is not None:
        return True
    (top, _, rest), (original_top, _, original_rest) = name.partition("/"), original.partition("/")
    return bool(rest) and rest == original_rest and re.fullmatch(f"{re.escape(original_top)}_[0-9]+", top, re.IGNORECASE) is not None


def unsuffixed(name: str) -> str:
    """A relative path less its suffix, `good/000.png` -> `good/000`: what names derived files (masks, overlays)."""
    return PurePosixPath(name).with_suffix("").as_posix()


def _describe_size(size: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1024:
            return f"{size:.4g} {unit}"
        size /= 1024
    return f"{size:.4g} GB"
