"""What `rbd predict` makes of one image, whichever engine scored it: the results row and the
overlay and mask as PNG files' bytes.

The local engine renders them in the command's process, the Ray engine in its actors (so the
drawing is spread over the cluster too); the command writes both the same way, so the two
engines give the same files.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from .calibration import Calibration
from .detector import Prediction, is_out_of_domain
from .images import MARK, mask_at_size, picture_mark
from .uploads import unique_name
from .visualize import mask_image, overlay

PREDICTED = ("overlay", "mask")  # the kinds of `rbd predict`'s pictures, in `picture_names`' order
NAME_BYTES = 255  # the longest file name common file systems take
# out_of_domain: "yes" where the image looks unlike the model's training images (detector.OUT_OF_DOMAIN_MEANS);
# familiarity and out_of_domain are empty for a model without memory, which cannot tell; overlay and mask:
# the row's pictures, relative to the output folder (two inputs of one name get different ones)
CSV_COLUMNS = ("file", "score", "normalized_score", "threshold", "verdict", "familiarity", "out_of_domain", "overlay", "mask")


def picture_names(name: str) -> tuple[str, str]:
    """The overlay's and the mask's file names for an output `name` (a path relative to the output folder)."""
    return f"{name}_overlay.png", f"{name}_mask.png"


def fitting_name(name: str, room: int = 20) -> str:
    """An output `name` whose last part leaves `room` bytes of a file name for what picture_names and numbering
    add: a longer one is cut, and ends in a digest of the whole, so that two long names stay apart."""
    folder, _, last = name.rpartition("/")
    encoded = os.fsencode(last)  # as the file system takes it: a name not in UTF-8 (Latin-1, say) keeps its bytes (cut, its UTF-8 characters)
    if len(encoded) <= NAME_BYTES - room:
        return name
    digest = hashlib.sha1(encoded).hexdigest()[:8]
    cut = encoded[: NAME_BYTES - room - len(digest) - 1].decode("utf-8", "ignore")  # whole characters only
    return f"{folder}/{cut}~{digest}" if folder else f"{cut}~{digest}"


def output_names(names: list[str]) -> list[str]:
    """Each input's output name, from its own (`names`, in input order): that name where no earlier input has it
    (compared as case-blind disks do), else numbered (`a_1`) past every input's own name, so a numbered name never
    takes a file's own (`a.png`, `a.jpg` and `a_1.png`: `a`, `a_2`, `a_1`). `rbd predict`'s files and Inspect's
    downloads alike."""
    names = [fitting_name(name) for name in names]  # a name at a file system's limit, cut to take a suffix
    taken = {name.casefold() for name in names}
    seen: set[str] = set()
    out = []
    for name in names:
        if name.casefold() in seen:
            name = unique_name(name, taken, split_suffix=False)
        seen.add(name.casefold())
        out.append(name)
    return out


@dataclass(frozen=True)
class ScoredFile:
    """One input file's outcome; a file that could not be read or decoded has only its `error`."""

    file: str
    score: float | None = None
    normalized_score: float | None = None
    threshold: float | None = None
    verdict: str | None = None
    familiarity: float | None = None
    overlay_png: bytes | None = None
    mask_png: bytes | None = None
    error: str | None = None

    @property
    def out_of_domain(self) -> bool:
        return is_out_of_domain(self.familiarity)

    def csv_row(self, name: str) -> list[str]:
        """The results.csv row of a scored file whose pictures were written under the output `name`."""
        known = self.familiarity is not None
        return [self.file, f"{self.score:.6f}", f"{self.normalized_score:.6f}", f"{self.threshold:.6f}", self.verdict,
                f"{self.familiarity:.4f}" if known else "", ("yes" if self.out_of_domain else "no") if known else "",
                *picture_names(name)]


def scored_file(file: str, image: np.ndarray, prediction: Prediction, calibration: Calibration,
                size: tuple[int, int]) -> ScoredFile:
    """The row and pictures of one scored image whose file is `size` (height, width, upright): its mask at
    that size also where the image was scored on a downscaled copy, so that it lies on the file."""
    return ScoredFile(file, prediction.score, prediction.normalized_score, prediction.threshold, prediction.verdict,
                      prediction.familiarity, png_bytes(overlay(image, prediction.anomaly_map, calibration, prediction.threshold)),
                      mask_png(prediction, size))


def mask_png(prediction: Prediction, size: tuple[int, int]) -> bytes:
    """The PNG file of a prediction's mask (255 on defect pixels) at the image file's `size` (height, width, upright)."""
    return png_bytes(mask_image(mask_at_size(prediction.mask, size)))


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def marked(png: bytes, kind: str, folder: Path, name: str) -> bytes:
    """`png` with a text chunk saying that rbd wrote it as a `kind` picture into the output folder `folder` under the
    name `name` (relative to it), each by a token alone, never a path: pictures are passed on. The folder's identity on
    disk (device and inode) tells a picture copied into another folder; the name's digest one copied within the folder
    (a predicted mask kept as a label beside its image was written over as rbd's own)."""
    data = f"{MARK}\0{kind} {_identity(folder)} {_name_token(name)}".encode("latin-1")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:33] + chunk + png[33:]  # after the signature (8 bytes) and the header chunk (25), before the pixels


def picture_kind(path: Path, folder: Path) -> str | None:
    """The kind of picture ("overlay", "mask", "misranked") that rbd wrote at `path` as an output of `folder`, or None
    for any other file: a user's own, which a later run must neither take for its own picture nor write over (a
    ground-truth mask named `a_mask.png` beside `a.png`, as MVTec names them; a picture of rbd's copied there as a label)."""
    kind, _, rest = picture_mark(path).partition(" ")
    written_for, _, named = rest.partition(" ")
    if not kind or written_for != _identity(folder):
        return None
    try:
        name = Path(path).resolve().relative_to(folder.resolve()).as_posix()  # (--out named through a link, or with ..)
    except ValueError:
        return None
    return kind if named in ("", _name_token(name)) else None  # "": an rbd before names were marked


def _identity(folder: Path) -> str:
    status = folder.stat()
    return f"{status.st_dev:x}:{status.st_ino:x}"


def _name_token(name: str) -> str:
    return hashlib.sha256(PurePosixPath(name).as_posix().encode("utf-8", "surrogateescape")).hexdigest()[:12]
