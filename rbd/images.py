"""Reading images of any kind into one form: float32 RGB arrays in [0, 1], shape (H, W, 3).

Inspection cameras produce grey, 16-bit, RGBA and EXIF-rotated files; all of them become the
same array here so nothing downstream has to care. Pillow decodes most of them; 16-bit colour
PNG and TIFF files, which Pillow would cut to their high byte, are decoded at full depth by
imagecodecs (PNG) and tifffile (TIFF). Unreadable files raise `ImageReadError` with the file
name; folder readers skip them with a warning as long as something usable is left.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import sys
from pathlib import Path, PurePath
from typing import Callable, Iterable, Iterator, Mapping, Union

import imagecodecs
import numpy as np
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageReadError, InvalidInputError, NoImagesError
from .notices import notify, some

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".pgm", ".ppm", ".pbm", ".pnm")  # the last: Netpbm, as machine-vision cameras and their tools write
UNSHOWN_EXTENSIONS = (".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm")  # the ones a browser does not draw
# tifffile logs a tag it cannot parse (an orientation of 9) as a warning, once per read: a line on the command line's
# terminal for every such file, which rbd reads as the tag were absent
logging.getLogger("tifffile").setLevel(logging.ERROR)
MAX_SIDE = 4096  # the app and CLI score larger images on a downscaled copy (the model sees <= 1024 px)

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]


MARK = "rbd-picture"  # the PNG text chunk every picture rbd writes carries (`rbd.outputs.marked`)


def picture_mark(path: str | Path) -> str:
    """The mark of a picture rbd wrote ("overlay <its output folder's identity>", `rbd.outputs.marked`); "" for any
    other file. Reads the header only: the mark comes before the pixels."""
    if Path(path).suffix.lower() != ".png":
        return ""
    try:
        with Image.open(path) as image:
            return str(image.info.get(MARK, "")) if image.format == "PNG" else ""
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return ""


def is_path(image) -> bool:
    """Whether an input names a file (a str, a Path, an os.DirEntry, any os.PathLike) rather than holding pixels."""
    return isinstance(image, (str, os.PathLike))


def is_image_name(relative: PurePath) -> bool:
    """Whether a file found under a searched folder (its path relative to that folder) is taken as
    an image: an image extension, and no hidden file or folder on the way."""
    return relative.suffix.lower() in IMAGE_EXTENSIONS and not any(part.startswith(".") for part in relative.parts)


def find_images(folder: str | Path) -> list[Path]:
    """All image files under `folder` (recursively, `is_image_name`), sorted. Linked folders are searched too
    (a lot linked in from a share: `rglob` skipped them without a word), each real folder once, so a link
    loop ends, and by its own path where it has one under `folder` (by the first link, in name order, where not):
    which path an image was found by hung on the file system's listing order, and named outputs and masks by it.
    A link to a folder above `folder` (by its real path or the path given) is not followed: it led out of it, to the
    images of its sibling folders.
    Hidden folders are not searched (their images are no images, `is_image_name`: a link to one was skipped as found
    there), and a folder that cannot be listed is named in a notice."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NoImagesError(f"{folder} is not a folder")
    unlinked = set()  # the folders reached without a link
    for top, folders, _ in os.walk(folder):
        unlinked.add(_identity(top))
        folders[:] = _shown(folders)
    found, broken, unlisted, through_link = [], [], [], {}
    seen = {_identity(above) for path in (os.path.abspath(folder), os.path.realpath(folder)) for above in Path(path).parents}
    for top, folders, files in os.walk(folder, followlinks=True, onerror=lambda err: unlisted.append(err.filename)):
        identity, linked = _identity(top), through_link.get(top, False)
        if identity in seen or (linked and identity in unlinked):
            folders.clear()
            continue
        seen.add(identity)
        folders[:] = _shown(folders)
        through_link.update({os.path.join(top, name): linked or os.path.islink(os.path.join(top, name)) for name in folders})
        for path in (Path(top) / name for name in files):
            if is_image_name(path.relative_to(folder)):
                (found if path.is_file() else broken).append(path)
    if broken:  # a link whose target moved: said, or a set would shrink without a word
        names = [path.relative_to(folder).as_posix() for path in sorted(broken)]
        notify(f"{folder}: skipped {len(names)} image name(s) that lead to no regular file (a broken link, a pipe?): {some(names)}")
    if unlisted:
        names = sorted(Path(name).relative_to(folder).as_posix() for name in unlisted)
        notify(f"{folder}: could not list {len(names)} folder(s), whose images are left out (no permission?): {some(names)}")
    return sorted(found)


def _shown(folders: list[str]) -> list[str]:
    return sorted(name for name in folders if not name.startswith("."))


def _identity(folder: str) -> tuple[int, int]:
    real = os.stat(folder)
    return real.st_dev, real.st_ino


def read_image(path: str | Path, max_side: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one file. `max_side` downscales a huge image, keeping its aspect ratio; `size`, (height,
    width), resizes the upright image to exactly that, for showing it. Both decode a JPEG at the
    smallest of its 1/1 to 1/8 scales that still covers the result (draft mode): a 20-megapixel
    photo shown at a megapixel decodes in 0.04 s instead of 2-3 s."""
    try:
        return _decoded(path, max_side, size)
    except ImageReadError as err:  # every failure named by its file, also one found once the pixels were decoded
        raise err if str(err).startswith(f"{path}: ") or not os.fspath(path) else ImageReadError(f"{path}: {err}") from err


def _decoded(path: str | Path, max_side: int | None, size: tuple[int, int] | None) -> np.ndarray:
    if is_path(path) and _is_special_file(path):
        raise ImageReadError(f"{path}: not a regular file (a pipe or a device), which reading could wait on for ever")
    try:
        with Image.open(path) as image:
            if _misread_by_pillow(image):
                return _read_deep_colour(path, image, max_side, size)
            if image.mode in ("I", "F"):  # 32-bit samples, read by their values (`_samples`)
                return _deep_grey(image, max_side, size)
            if size is not None or (max_side is not None and max(image.size) > max_side):
                image.draft("RGB", _draft_size(image, max_side, size))  # no-op for other formats
            image = _upright(image)
            image.load()
            image = _without_alpha(image)  # before it is shrunk
            sixteen = image.mode.startswith("I;16")
            if sixteen:
                image = image.convert("I")  # PIL cannot resize 16-bit images in place
            if size is not None and image.size != size[::-1]:
                image = image.resize(size[::-1], Image.Resampling.BILINEAR)
            elif size is None and max_side is not None and max(image.size) > max_side:
                image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return to_rgb_array(image.convert("I;16") if sixteen else image)  # 16-bit again: "I" is read by its values
    except (FileNotFoundError, IsADirectoryError) as err:
        raise _not_a_file(path, err) from err
    except UnidentifiedImageError as err:
        if not _is_tiff(path):
            raise ImageReadError(f"{path}: not an image file") from err
        try:  # a TIFF Pillow has no mode for (32-bit float colour, from scientific cameras)
            return _read_tiff(path, max_side, size)
        except (tifffile.TiffFileError, ValueError, IndexError, OSError) as tiff_err:
            raise ImageReadError(f"{path}: corrupt or unsupported TIFF ({tiff_err})") from tiff_err
        except MemoryError as memory_err:  # (raised in this handler, so the one below would not see it)
            raise _too_large(path, "more memory than this machine has") from memory_err
    except Image.DecompressionBombError as err:  # Pillow's guard; an upload of any size could exhaust the memory
        raise _too_large(path, str(err)) from err
    except (OSError, SyntaxError, ValueError, RuntimeError, IndexError) as err:  # truncated or corrupt data
        raise ImageReadError(f"{path}: corrupt or truncated image ({err})") from err
    except MemoryError as err:  # a file within every limit that still asks for more than this machine has
        raise _too_large(path, "more memory than this machine has") from err


def _is_special_file(path: str | Path) -> bool:
    """Whether `path` is something other than a file or a folder (a pipe, a device), from one stat."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing or unnamable: `Image.open` says which
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _not_a_file(path: str | Path, err: OSError) -> ImageReadError:
    """A path that names no file: missing, or a folder (which `predict_files` and `train` take whole)."""
    if not os.fspath(path):  # said ": no such file"
        return ImageReadError("an empty path, not an image file")
    return ImageReadError(f"{path}: is a folder, not an image file" if isinstance(err, IsADirectoryError) else f"{path}: no such file")


def _draft_size(image: Image.Image, max_side: int | None, size: tuple[int, int] | None) -> tuple[int, int]:
    """The (width, height) a draft must cover, in the file's own orientation (before any EXIF turn)."""
    if size is None:
        return max_side, max_side  # as before `size` existed: the scoring path decodes what it always did
    height, width = size
    return (height, width) if _orientation(image) in (5, 6, 7, 8) else (width, height)


def _misread_by_pillow(image: Image.Image) -> bool:
    """Whether Pillow would give other pixels than the file's picture: its file is read otherwise (`_read_deep_colour`)."""
    return _is_deep_colour(image) or _is_turned_tiff(image) or _is_deep_min_is_white(image)


def _is_deep_min_is_white(image: Image.Image) -> bool:
    """A 16- or 32-bit grey TIFF whose 0 is white (X-ray detectors write them): Pillow inverts only 1- and 8-bit ones,
    and its picture of such a file came out a negative."""
    return image.format == "TIFF" and image.mode.startswith(("I", "F")) and image.tag_v2.get(262) == 0  # PhotometricInterpretation


def _is_turned_tiff(image: Image.Image) -> bool:
    """A TIFF whose orientation tag turns it: Pillow 12 reports such a file's size turned already yet its EXIF
    orientation unchanged, and decodes grey ones into scrambled pixels, so tifffile reads and turns them."""
    return image.format == "TIFF" and image.tag_v2.get(0x0112, 1) != 1


def _is_deep_colour(image: Image.Image) -> bool:
    """Whether the file is colour with more than 8 bits a channel, which Pillow (no such mode) would cut to 8."""
    if image.mode not in ("RGB", "RGBA"):
        return False
    if image.format == "TIFF":
        return max(image.tag_v2.get(258, (8,))) > 8  # BitsPerSample
    return _is_16_bit_png(image)


def _is_16_bit_png(image: Image.Image) -> bool:
    return image.format == "PNG" and bool(image.tile) and str(image.tile[0][3]).endswith(";16B")  # raw mode of 16-bit data


# EXIF orientation -> the same turn as ImageOps.exif_transpose, on an (H, W, C) array
_TURNS = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
          6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).swapaxes(0, 1), 8: lambda a: np.rot90(a)}


def _read_deep_colour(path: str | Path, header: Image.Image, max_side: int | None, size: tuple[int, int] | None) -> np.ndarray:
    """A 16-bit colour PNG or a TIFF (16-bit colour, or turned) at full depth, upright and (with `max_side` or
    `size`) shrunk like Pillow's images."""
    if header.format != "PNG":
        return _read_tiff(path, max_side, size)
    return _upright_and_shrunk(imagecodecs.png_decode(Path(path).read_bytes()), _orientation(header), max_side, size)


def _is_tiff(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, either byte order


def _read_tiff(path: str | Path, max_side: int | None, size: tuple[int, int] | None) -> np.ndarray:
    """A TIFF's first frame (the one Pillow shows) by tifffile, at full depth: 16-bit colour, and float colour,
    which Pillow cannot open at all."""
    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages[0]
        # Pillow's guard, which tifffile lacks (a 370 KB tiled file asked for 10 GB), from the header before decoding
        pixels = math.prod(page.shape[:2] if not page.axes.startswith("S") else page.shape[1:3])
        limit = Image.MAX_IMAGE_PIXELS  # None: the limit lifted, as Pillow allows
        if limit is not None and pixels > 2 * limit:
            raise _too_large(path, f"{pixels} pixels, over the limit of {2 * limit}")
        if page.samplesperpixel > 4:  # up to 65535 planes a pixel: gigabytes from a small image
            raise ImageReadError(f"{path}: {page.samplesperpixel} samples a pixel; an image has 1 to 4 (grey, RGB, RGBA)")
        array = page.asarray()
        if page.axes.startswith("S"):  # planar: one plane per channel
            array = np.moveaxis(array, 0, -1)
        array = _as_shown(array, page)
        orientation = page.tags.get(0x0112)  # the TIFF tag Pillow reads as EXIF orientation
    return _upright_and_shrunk(array, int(orientation.value) if orientation else 1, max_side, size)


def _as_shown(array: np.ndarray, page: tifffile.TiffPage) -> np.ndarray:
    """A TIFF page's stored samples as the picture they encode (`_samples`), which tifffile leaves to its caller: 0 as
    white inverted, a palette's indices as its colours, CMYK inks as RGB. Pillow does so for the files it reads."""
    photometric = page.photometric
    if photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None:
        return np.moveaxis(page.colormap[:, array], 0, -1)  # 16 bits a channel
    if photometric == tifffile.PHOTOMETRIC.SEPARATED and array.ndim == 3 and array.shape[-1] >= 4:
        ink = array[..., :4] / ((1 << page.bitspersample) - 1) if array.dtype.kind in "iu" else array[..., :4]
        return ((1 - ink[..., :3]) * (1 - ink[..., 3:])).astype(np.float32)
    if photometric != tifffile.PHOTOMETRIC.MINISWHITE:
        return _samples(array, page.bitspersample)
    if array.dtype == bool:
        return ~array
    if array.dtype.kind in "iu":
        return _samples(((1 << page.bitspersample) - 1 - array.astype(np.int64)).astype(array.dtype), page.bitspersample)
    return 1 - _samples(array, page.bitspersample)


def _too_large(path: str | Path, detail: str) -> ImageReadError:
    return ImageReadError(f"{path}: too large to decode safely ({detail}): split it, or downscale it, first")


def _upright_and_shrunk(array: np.ndarray, orientation: int, max_side: int | None, size: tuple[int, int] | None) -> np.ndarray:
    """`array` turned upright and (with `max_side` or `size`) shrunk as 32-bit float planes, one at a time: a grey one
    as one plane, made three after shrinking (three planes of a huge 16-bit grey image took 4 times as long and twice
    the memory), and a colour one's integer planes each made float only as it is shrunk (all three at once, and copies
    of them, took 2.9 GB for a 374 KB PNG of 8000 x 8000 16-bit pixels)."""
    turn = _TURNS.get(orientation)
    array = turn(array) if turn else array
    if size is None and (max_side is None or max(array.shape[:2]) <= max_side):
        return to_rgb_array(array)
    if array.ndim == 2:
        planes = [array]
    elif array.dtype.kind == "f":  # floats are scaled by the whole image's range (`_scale_to_unit`), not each plane's
        planes = list(np.moveaxis(to_rgb_array(array), -1, 0))
    else:  # alpha dropped, grey and alpha as grey (`to_rgb_array`)
        planes = list(np.moveaxis(array[..., :3] if array.shape[2] > 2 else array[..., :1], -1, 0))
    shrunk = []
    for plane in planes:
        channel = Image.fromarray(np.ascontiguousarray(_scale_to_unit(plane)))
        if size is not None:
            channel = channel.resize(size[::-1], Image.Resampling.BILINEAR)
        else:
            channel.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        shrunk.append(np.asarray(channel))
    return to_rgb_array(np.clip(np.stack(shrunk, axis=-1), 0.0, 1.0))


def file_shape(path: str | Path) -> tuple[int, int]:
    """(height, width) of the upright image in `path`, from its header: the shape of the arrays `read_image`
    makes of it at full size (`upright_size` gives width first, as Pillow does)."""
    return upright_size(path)[::-1]


def mask_at_size(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask brought to `size` (height, width) by nearest neighbour: the mask of an image scored on
    a downscaled copy, laid on the image file itself (`file_shape`)."""
    if mask.shape == tuple(size):
        return mask
    return np.asarray(Image.fromarray(mask).resize(size[::-1], Image.Resampling.NEAREST))


def mask_covering(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask brought to a smaller `size` (height, width), a pixel set where any pixel it covers is, so that a
    hairline defect stays one unbroken line (nearest neighbour would drop or break it)."""
    if mask.shape == tuple(size):
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size[::-1], Image.Resampling.BOX)) > 0


def nearest_sources(n: int, size: int) -> np.ndarray:
    """(size,) int: the index among `n` samples that each of `size` samples takes in `mask_at_size`'s
    nearest-neighbour resizing (non-decreasing), found by resizing the indices themselves."""
    indices = Image.fromarray(np.arange(n, dtype=np.int32)[None, :])
    return np.asarray(indices.resize((size, 1), Image.Resampling.NEAREST))[0].astype(np.int64)


def upright_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the image as `read_image` turns it upright, from the header alone."""
    try:
        if _is_tiff(path):  # tifffile's header: Pillow's size of a turned TIFF is turned already (`_is_turned_tiff`)
            with tifffile.TiffFile(path) as tiff:
                page, orientation = tiff.pages[0], tiff.pages[0].tags.get(0x0112)
                (height, width), turn = (page.imagelength, page.imagewidth), int(orientation.value) if orientation else 1
        else:
            with Image.open(path) as header:
                (width, height), turn = header.size, _orientation(header)
    except (FileNotFoundError, IsADirectoryError) as err:
        raise _not_a_file(path, err) from err
    except Image.DecompressionBombError as err:  # past Pillow's guard even for its header: as `read_image` says
        raise _too_large(path, str(err)) from err
    except (OSError, ValueError, SyntaxError, IndexError, tifffile.TiffFileError) as err:
        raise ImageReadError(f"{path}: corrupt or truncated image ({err})") from err
    return (height, width) if turn in (5, 6, 7, 8) else (width, height)  # EXIF orientations that swap the sides


def scored_input(image: ImageLike) -> np.ndarray:
    """What a prediction scores of an input: a file as `predict_files` and training read it (past MAX_SIDE, a
    downscaled copy, with a notice), so that it is judged as its threshold's calibration images were; an array or
    PIL image as it is."""
    if not is_path(image):
        return given_image(image)
    array, downscaled = read_image_for_scoring(image)
    if downscaled:
        notify(downscaled)
    return array


def read_image_for_scoring(path: str | Path, max_side: int = MAX_SIDE, name: str | None = None) -> tuple[np.ndarray, str | None]:
    """The image, downscaled if its long side exceeds `max_side`, and a notice saying so, or that only the first of
    its frames is scored (an animated GIF); else None. The notice names the file `name` (by default its file name).

    A 10000 x 10000 photo would need 1.2 GB as a float array and its map as much again, while
    the model only looks at about a thousand pixels a side anyway.
    """
    image = read_image(path, max_side)
    width, height = upright_size(path)
    name, downscaled = name or Path(path).name, max(width, height) > max_side
    notes = [f"{name} is {width}x{height}: downscaled to {image.shape[1]}x{image.shape[0]}"] if downscaled else []
    notes += [f"{name} is animated: its first frame is scored"] if _is_animated(path) else []
    return image, "; ".join(notes) or None


def _is_animated(path: str | Path) -> bool:
    """Whether the file holds frames after the first, which `read_image` reads alone (an animated GIF, PNG or WebP)."""
    try:
        with Image.open(path) as image:
            return bool(getattr(image, "is_animated", False))
    except (OSError, ValueError, SyntaxError, IndexError, Image.DecompressionBombError):
        return False


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """Convert a PIL image, an array (grey/RGB/RGBA, uint8/uint16/float) or a path to (H, W, 3) float32."""
    if is_path(image):
        return read_image(image)
    if isinstance(image, Image.Image):
        return _pil_to_array(image)
    array = np.asarray(image)
    if array.ndim == 0:  # bytes, None, a number: np.asarray made one value of it
        raise ImageReadError(f"expected a path, an image array or a PIL image, got {type(image).__name__}"
                             + (" (a file object: pass its path, or PIL.Image.open(it))" if hasattr(image, "read") else ""))
    if array.dtype.kind not in "biuf":  # complex values lost their imaginary part with a bare numpy warning; text raised
        raise ImageReadError(f"expected an image array of numbers (uint8, uint16 or floats from 0 to 1), got {array.dtype}")
    if array.ndim == 3 and array.shape[2] in (1, 2, 3, 4):  # grey, grey and alpha, RGB, RGBA: alpha is dropped
        array = array[..., :3] if array.shape[2] > 2 else array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageReadError(f"expected an image array of shape (H, W) or (H, W, 1 to 4 channels), got {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageReadError(f"image has no pixels: shape {array.shape}")
    return _scale_to_unit(array)


def given_image(image: ImageLike) -> np.ndarray:
    """An image a caller handed in (`Detector.predict`, `rbd.train`) as `to_rgb_array` reads it, with one rule more for
    arrays of integers of another type than uint8 and uint16 (`np.array(picture, dtype=int)`, a list of lists): 8-bit
    data where their values fit 0-255, 16-bit where they fit 0-65535, refused otherwise. Read by their type's range,
    a picture of 8-bit values came out nearly black and was judged defective. (A file is read by its bit depth: a 16-bit
    PNG stays 16-bit however dark; 32-bit samples, whose depth says nothing of their range, follow this rule.)"""
    if isinstance(image, (list, tuple)) and image and all(_is_one_image(item) for item in image):
        raise ImageReadError(f"expected one image (a path, an array or a PIL image), got a list of {len(image)}: "
                             "Detector.predict_batch and rbd.predict_files take several")  # said "got (1,)", as one array
    torch = sys.modules.get("torch")  # (not imported for this: a tensor's caller has)
    if torch is not None and isinstance(image, torch.Tensor):  # one that needs gradients, or of bfloat16, numpy refused
        # with torch's error (not any object with a detach(): an open file's took its stream from its caller)
        image = image.detach().cpu()
        image = image.float() if image.is_floating_point() else image
    if is_path(image) or isinstance(image, Image.Image) or np.ndim(image) == 0:  # a path, a PIL image, or what to_rgb_array refuses
        return to_rgb_array(image)
    array = np.asarray(image)
    unsigned_8_or_16 = array.dtype.kind == "u" and array.dtype.itemsize <= 2  # either byte order
    if np.issubdtype(array.dtype, np.integer) and not unsigned_8_or_16:
        array = _as_8_or_16_bit(array)
    return to_rgb_array(_from_black(array) if array.dtype.kind == "f" else array)


def _as_8_or_16_bit(array: np.ndarray) -> np.ndarray:
    """Integers whose type says nothing of their range (a caller's int64, a 32-bit TIFF's samples) as the 8-bit data
    their values fit, or else 16-bit; refused beyond: read by their type's range, 8-bit values came out nearly black."""
    if not array.size:
        return array
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 65535:
        raise ImageReadError(f"an image of integers must hold values from 0 to 255 (8-bit) or 65535 (16-bit), got {low} to "
                             f"{high}: pass (or save) it as uint8 or uint16 values, or floats from 0 to 1")
    return array.astype(np.uint8 if high <= 255 else np.uint16)


def _from_black(array: np.ndarray) -> np.ndarray:
    """`array`, floats, refused where they reach below black by more than a resampling's undershoot (FLOAT_UNIT_BOTTOM):
    clipped to 0, a picture normalised for a network, or a height map, was judged as a dark picture, defective.
    (NaN is left to `_scale_to_unit`'s error.)"""
    if array.size and np.isfinite(array).all() and float(array.min()) < FLOAT_UNIT_BOTTOM * max(1.0, _float_top(array)):
        raise ImageReadError(f"an image of floats must hold values from 0 (black) up, its lowest is {float(array.min()):.3g}: a picture "
                             "normalised for a network (its mean taken out), or a signed measurement such as a height map, is "
                             "judged as a dark, clipped one; pass (or save) it as floats from 0 to 1, or as uint8 or uint16")
    return array


def _is_one_image(item) -> bool:
    """Whether a list's item is an image of its own (a path, a PIL image, an array or tensor of rows): such a list is
    several images. (A list of lists of numbers is one image, row by row.)"""
    return is_path(item) or isinstance(item, Image.Image) or (hasattr(item, "shape") and len(item.shape) >= 2)


def alpha_channel(path: str | Path) -> tuple[np.ndarray, bool] | None:
    """The file's alpha channel (uint8, upright as `read_image` turns it), which `read_image` drops, and whether it
    comes from a transparent colour (a palette, grey or RGB PNG's tRNS, a GIF's: 0 where that colour is) rather than
    an alpha band; None for a file without either, or one Pillow alone does not read (a TIFF `read_image` reads
    otherwise, a file it cannot read)."""
    if _is_tiff(path):
        return None
    try:
        with Image.open(path) as image:
            keyed = image.mode not in ("RGBA", "RGBa", "LA", "La", "PA")
            if keyed and "transparency" not in image.info:
                return None
            if keyed and _is_16_bit_png(image):  # Pillow matches the 16-bit colour against the 8 bits it keeps of each pixel
                alpha = (imagecodecs.png_decode(Path(path).read_bytes())[..., -1] >> 8).astype(np.uint8)  # tRNS made alpha
                turn = _TURNS.get(_orientation(image))
                return (turn(alpha) if turn else alpha), keyed
            return np.asarray(_palette_alpha(_upright(image)).convert("RGBA").getchannel("A")), keyed
    except (OSError, ValueError, SyntaxError, IndexError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as uint8, for display and PNG files."""
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (exif_transpose copies even when upright)."""
    return ImageOps.exif_transpose(image) if _orientation(image) != 1 else image


def _orientation(image: Image.Image) -> int:
    """The image's EXIF orientation; 1 (as taken) where its EXIF block is damaged. Pillow reads such a block in a
    JPEG as it opens, but refuses it in a converted or resized copy (SyntaxError), which failed the image."""
    try:
        return image.getexif().get(0x0112, 1)
    except (SyntaxError, ValueError, OSError):
        return 1


def _palette_alpha(image: Image.Image) -> Image.Image:
    """`image`, a palette's transparent entries made its palette's alpha (in a copy: a caller's own PIL image is left as
    it was): converted as they were, Pillow warned that such an image "should be converted to RGBA images", which the
    command line printed to its user."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.copy()
        image.apply_transparency()
    return image


def _pil_to_array(image: Image.Image) -> np.ndarray:
    if _reread(image):
        return read_image(image.filename)  # the file's, as its path gives: Pillow would scramble the pixels or cut them to 8 bits
    if image.mode.startswith(("I", "F")):
        return _deep_grey(image)
    image = _without_alpha(_upright(image))  # images opened by the caller
    return to_rgb_array(np.asarray(image.convert("L" if image.mode in ("L", "1") else "RGB")))  # P/CMYK/YCbCr convert


def _reread(image: Image.Image) -> bool:
    """Whether a caller's PIL image is read from its file (`_misread_by_pillow`): a turned TIFF always (Pillow scrambles
    its pixels), a deep or 0-is-white one while its pixels are not loaded yet, so that one the caller changed in place
    (thumbnailed, drawn on), which keeps its file name, is read as changed."""
    if not (getattr(image, "filename", "") and image.tell() == 0):
        return False
    return _is_turned_tiff(image) or (bool(image.tile) and _misread_by_pillow(image))


def _without_alpha(image: Image.Image) -> Image.Image:
    """`image` as rbd scores it: its alpha dropped, the colour under transparent pixels kept. Shrunk with its alpha,
    Pillow premultiplies: a cut-out part's background turned black in a downscaled copy (a photo past MAX_SIDE, the
    review's picture), where the file at its own size was scored in that background's colour."""
    image = _palette_alpha(image)
    if image.mode in ("LA", "La"):
        return image.getchannel(0)  # Pillow cannot convert La to L
    return image.convert("RGB") if image.mode in ("RGBA", "RGBa", "PA") else image


def _deep_grey(image: Image.Image, max_side: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """A 16- or 32-bit grey PIL image ("I;16", "I", "F") at full depth, upright and shrunk as float planes (Pillow cannot
    shrink 16-bit ones), its samples read by its file's bit depth, which an upright or shrunk copy no longer has."""
    array = _upright_and_shrunk(_samples(np.asarray(image), _sample_bits(image)), _orientation(image), max_side, size)
    return 1 - array if _is_deep_min_is_white(image) else array  # (a caller's loaded file: its samples as stored)


def _sample_bits(image: Image.Image) -> int:
    """Bits a sample of a 16- or 32-bit grey PIL image holds in its file, which mode "I" does not say: Pillow opens a
    signed 16-bit TIFF and a 16-bit PGM so, as it does a 32-bit TIFF and an image made of int32 values (32)."""
    if image.mode != "I":
        return 16 if image.mode.startswith("I;16") else 32
    if image.format == "TIFF":
        return max(image.tag_v2.get(258, (32,)))  # BitsPerSample
    return 16 if image.format in ("PNG", "PPM") else 32


def _samples(array: np.ndarray, bits: int) -> np.ndarray:
    """A file's samples (`bits` each) read as a caller's arrays are (`given_image`) where the file does not give their
    range: 32-bit integers as the 8 or 16 bits their values fit, floats from black up."""
    if array.dtype.kind == "f":
        return _from_black(array)
    return _as_8_or_16_bit(array) if bits > 16 and array.dtype.kind in "iu" else array


# Float images hold no range of their own: values up to FLOAT_UNIT_TOP are taken as [0, 1] (a resampling's overshoot
# clipped: a bright spot no longer darkens the rest), larger ones scale by the image's own maximum (steps at 255 and
# 65535 read a 12-bit camera's float TIFF almost black). Pass 8-bit data as uint8.
FLOAT_UNIT_TOP = 2.0
# Below this share of its range a float image is refused (`given_image`): a resampling's undershoot is a few hundredths,
# a picture normalised for a network (mean and spread taken out) goes to -1 or -2, which clipping to 0 judged as a dark
# picture, defective
FLOAT_UNIT_BOTTOM = -0.25


def _scale_to_unit(array: np.ndarray) -> np.ndarray:
    """Integer images scale by their type's range; 32-bit integers are taken as 16-bit data; floats by the range
    their values fit (FLOAT_UNIT_TOP)."""
    if array.dtype == np.uint8:
        scaled = array.astype(np.float32)
        scaled /= 255.0  # in place: one copy of a large image, not two
        return scaled
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        scaled = array.astype(np.float32)
        scaled /= 65535.0
        return np.clip(scaled, 0.0, 1.0, out=scaled)
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ImageReadError("image contains NaN or infinite values")
    scale = _float_top(array)
    return np.clip(array / scale if scale != 1.0 else array, 0.0, 1.0)


def _float_top(array: np.ndarray) -> float:
    """The value a float image's white is: 1, or its own maximum above FLOAT_UNIT_TOP."""
    top = float(np.nanmax(array)) if array.size else 1.0
    return 1.0 if top <= FLOAT_UNIT_TOP else top


def several(images, what: str, hint: str = "") -> list:
    """`images` as a list, refusing one image where several are expected (a path's characters, an array's rows, were
    taken as images); a 4-D array is one image per first index, and so is a 3-D one whose last axis holds more than
    an image's 4 channels (a stack of grey images, (N, H, W)). A torch tensor is taken as an array is (it was cut into
    its rows, or its channels, each scored as an image), but for a 3-D one with at most 4 on its first axis, torch's
    (C, H, W) image; an array of text or objects (paths, a pandas column of them) is a list."""
    ndim, shape = getattr(images, "ndim", None), getattr(images, "shape", None)
    numbers = getattr(getattr(images, "dtype", None), "kind", None) not in ("O", "S", "U")  # torch's dtypes have no kind
    one_array = isinstance(ndim, int) and shape is not None and numbers and (ndim < 3 or (ndim == 3 and shape[-1] <= 4))
    if is_path(images) or isinstance(images, Image.Image) or one_array:
        raise InvalidInputError(f"{what} takes a list of images (or a 4-D array), not one image{hint}")
    if type(images).__module__.startswith("torch") and ndim == 3 and shape[0] <= 4:
        raise InvalidInputError(f"{what} takes a list of images (or a 4-D array), not one (C, H, W) tensor: pass a list of "
                                "(H, W, C) images, tensor.permute(1, 2, 0) for one")
    if images is None or isinstance(images, (bytes, str)) or not isinstance(images, Iterable):
        raise InvalidInputError(f"{what} takes a list of images, got {type(images).__name__}")
    return list(images)


def each_image(images: list, convert: Callable[[object], np.ndarray]) -> list[np.ndarray]:
    """`convert` of every image; an error of one among several names which (one NaN array among hundreds)."""
    converted = []
    for index, image in enumerate(images):
        try:
            converted.append(convert(image))
        except (ImageReadError, InvalidInputError) as err:
            if len(images) == 1:
                raise
            raise type(err)(f"image {index} of {len(images)} (counting from 0): {err}") from err
    return converted


def checked_batch_size(batch_size) -> int:
    """How many images a batch takes: a whole number, at least 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidInputError(f"batch size must be a whole number, at least 1, got {batch_size!r}")
    return int(batch_size)


def image_batches(paths: Iterable[str | Path], batch_size: int, max_side: int | None = MAX_SIDE,
                  names: Mapping[Path, str] | None = None) -> Iterator[tuple[int, list[tuple[Path, np.ndarray]]]]:
    """Decode files `batch_size` at a time, so memory holds one batch.

    Yields (files consumed so far, [(path, image)] of the readable ones among them). Unreadable
    files are skipped and images over `max_side` downscaled; each kind is reported in one notice
    at the end, which calls a file by its `names` entry where it has one (a review's stored copy `3.png` by the name
    the user knows). Raises `NoImagesError` (listing the first failures) if no file is usable.
    """
    checked_batch_size(batch_size)
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or max_side < 1):
        raise InvalidInputError(f"max_side must be a whole number of pixels, at least 1 (or None: no limit), got {max_side!r}")
    paths = [Path(p) for p in paths]
    skipped, downscaled, usable = [], [], 0
    for start in range(0, len(paths), batch_size):
        batch = []
        for path in paths[start : start + batch_size]:
            name = (names or {}).get(path)
            try:
                image, notice = read_image_for_scoring(path, max_side, name) if max_side else (read_image(path), None)
            except ImageReadError as err:
                skipped.append(str(err).replace(str(path), name) if name else str(err))
                continue
            batch.append((path, image))
            downscaled += [notice] if notice else []
        usable += len(batch)
        yield min(start + batch_size, len(paths)), batch
    report_files(len(paths), usable, skipped, downscaled)


def report_files(total: int, usable: int, skipped: list[str], downscaled: list[str]) -> None:
    """The end of a batch job over `total` files: `NoImagesError` (listing the first failures) if
    none was usable, else one notice for the `skipped` (unreadable) ones and one for the `downscaled`."""
    if not usable:
        detail = f": {'; '.join(skipped[:5])}" if skipped else ""
        raise NoImagesError(f"no usable image among {total} file(s){detail}", skipped)
    if skipped:
        notify(f"skipped {len(skipped)} unreadable file(s): {'; '.join(skipped)}")
    if downscaled:
        notify("; ".join(downscaled))


def read_images(paths: Iterable[str | Path], max_side: int | None = None) -> tuple[list[np.ndarray], list[Path]]:
    """Decode many files at once, as `image_batches` does: returns the images and their paths."""
    paths = list(paths)
    decoded = [item for _, batch in image_batches(paths, max(len(paths), 1), max_side) for item in batch]
    return [image for _, image in decoded], [path for path, _ in decoded]


def read_image_folder(folder: str | Path, max_side: int | None = None) -> tuple[list[np.ndarray], list[Path]]:
    """All readable images under a folder (recursively); `NoImagesError` if there are none."""
    return read_images(folder_images(folder), max_side)


def folder_images(folder: str | Path) -> list[Path]:
    """The image files under a folder (`find_images`); `NoImagesError` if there are none."""
    paths = find_images(folder)
    if not paths:
        raise NoImagesError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    return paths
