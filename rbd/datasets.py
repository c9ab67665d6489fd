"""Where the images are: MVTec AD category folders, or any folder of normal images.

MVTec AD layout:
    CATEGORY/train/good/*.png
    CATEGORY/test/good/*.png, CATEGORY/test/<defect>/*.png
    CATEGORY/ground_truth/<defect>/<stem>_mask.png   (optional: image-level metrics only)
A defect folder may hold folders of its own (`test/<defect>/lot1/000.png`); their masks mirror them
(`ground_truth/<defect>/lot1/000_mask.png`) or lie flat in `ground_truth/<defect>/`. Hidden folders
(`.thumbnails`, `.ipynb_checkpoints`) are no defect, as hidden files are no image (`find_images`).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetLayoutError, NoImagesError
from .images import alpha_channel, find_images, folder_images, picture_mark, read_image
from .notices import collect, notify, some


NOT_NORMAL = ("test", "ground_truth")  # an MVTec category's folders of test images and masks: never training data


def training_folder(data: str | Path) -> Path:
    """`DATA/train/good` for an MVTec category, otherwise DATA itself (searched recursively). Refused, since searched
    whole it would train on defects: a folder with `test/` or `ground_truth/` but no `train/good`, and a category's
    `test/` or `ground_truth/` folder (or one inside them) given as DATA."""
    data = Path(data)
    if not data.is_dir():  # before anything is said of training on it
        raise NoImagesError(f"{data} is not a folder")
    mvtec = subfolder(data, "train", "good")
    if mvtec is not None:
        return mvtec
    if any(subfolder(data, name) for name in NOT_NORMAL):
        raise _no_train_good(data)
    resolved = data.resolve()
    # a category: train/good, or test/good beside ground_truth/ (a test set alone, whose defects were trained on; a
    # user's own folder named test, without good/ in it, is no test set)
    inside = next((folder for folder in [resolved, *resolved.parents] if folder.name.casefold() in NOT_NORMAL and (
        subfolder(folder.parent, "train", "good") or (subfolder(folder.parent, "test", "good")
                                                      and subfolder(folder.parent, "ground_truth")))), None)
    if inside is not None:
        category, within = inside.parent, resolved.relative_to(inside.parent).as_posix()
        what = {"ground_truth": "masks, not images of parts",
                "test": "test images, defects among them"}[inside.name.casefold()]
        if within.casefold() == "test/good":
            what = "the normal images it is evaluated on: trained on, its evaluation would say nothing"
        instead = f"train on {category} (its train/good/), or" if subfolder(category, "train", "good") else "it has no train/good/:"
        raise DatasetLayoutError(f"{data} is {within}/ of the MVTec category {category}, which holds {what}: {instead} copy the "
                                 "images to a folder of their own")
    return data


def subfolder(folder: Path, *names: str) -> Path | None:
    """`folder/names...` with each name in any case (as it is, where it is there), or None. A layout made where case is
    ignored (macOS, Windows: `Train/Good`, `Test/`) is the same layout on Linux, where looking up `train/good` alone
    missed it, and the whole folder, test defects and masks among them, was trained on as normal."""
    for name in names:
        if not (folder / name).is_dir():
            try:
                fits = sorted(child for child in folder.iterdir() if child.name.casefold() == name.casefold() and child.is_dir())
            except OSError:
                return None
            if not fits:
                return None
            name = fits[0].name
        folder = folder / name
    return folder


def test_folder(category: str | Path) -> Path:
    """A category's `test/` folder, in any case (`subfolder`); `test` where there is none."""
    return subfolder(Path(category), "test") or Path(category) / "test"


def truth_folder(category: str | Path) -> Path:
    """A category's `ground_truth/` folder, in any case (`subfolder`); `ground_truth` where there is none."""
    return subfolder(Path(category), "ground_truth") or Path(category) / "ground_truth"


def training_images(data: str | Path) -> list[Path]:
    """The normal images of a folder to train on: those of its `training_folder`, searched recursively, less
    the test images and masks of any MVTec category inside it (`normal_images`). `NoImagesError` if none."""
    folder = training_folder(data)
    return normal_images(folder_images(folder), folder)


def normal_images(images: list[Path], root: Path) -> list[Path]:
    """`images` under `root` less what `training_folder`'s rule leaves out, for every MVTec category among them
    at any depth (a folder of categories, a zip of one): a category's `train/good` images only, with a notice
    of what was left out; `DatasetLayoutError` where a folder holds `test/` or `ground_truth/` without
    `train/good/` beside them, whose defects would be trained on as normal."""
    def folders(image: Path) -> tuple[str, ...]:  # compared in any case (`subfolder`)
        return tuple(part.casefold() for part in image.relative_to(root).parts[:-1])

    images = without_results(images, root, "normal images")

    categories = {parts[:i] for parts in map(folders, images) for i in range(len(parts) - 1) if parts[i : i + 2] == ("train", "good")}
    kept, left_out = [], 0
    for image in images:
        parts = folders(image)
        category = max((c for c in categories if parts[: len(c)] == c), key=len, default=None)  # the innermost
        if category is not None:
            normal = parts[len(category) : len(category) + 2] == ("train", "good")
            kept += [image] if normal else []
            left_out += not normal
            continue
        inside = [k for k, name in enumerate(parts) if name in NOT_NORMAL]
        if inside:
            raise _no_train_good(root.joinpath(*image.relative_to(root).parts[: inside[0]]))  # as named
        kept.append(image)
    if left_out:
        notify(f"{left_out} image(s) of MVTec-layout test/ and ground_truth/ folders left out: only a category's "
               "train/good images are normal training data")
    return kept


def normal_uploads(images: list[Path], upload: Path) -> list[Path]:
    """`normal_images` of an upload (`rbd.uploads.gather_images` into `upload`), each zip or picked folder in it
    a folder of its own: its name is no category's folder (a picked folder called `test` holds normal images)."""
    tops: dict[str, list[Path]] = {}
    for image in images:
        parts = image.relative_to(upload).parts
        tops.setdefault(parts[0] if len(parts) > 1 else "", []).append(image)
    kept = set()
    for top, group in tops.items():
        kept.update(normal_images(group, upload / top) if top else without_results(group, upload, "normal images"))
    return [image for image in images if image in kept]


def without_results(images: list[Path], root: Path, what: str) -> list[Path]:
    """`images` less the pictures rbd wrote (`picture_mark`: heat-map overlays and masks of `rbd predict --out` put
    inside a data folder), with a notice: trained on as normal, or scored as test images, they moved a threshold, and
    an image AUROC from 1.0 to 0.73 where they were half a test set."""
    results = [image for image in images if picture_mark(image)]
    if not results:
        return images
    notify(f"left out {len(results)} picture(s) rbd wrote ({some([r.relative_to(root).as_posix() for r in results])}): "
           f"heat maps and masks are results, not {what}")
    left_out = set(results)
    return [image for image in images if image not in left_out]


def _no_train_good(data: Path) -> DatasetLayoutError:
    return DatasetLayoutError(f"{data} has test/ or ground_truth/ folders but no train/good/: put the normal training "
                              "images in train/good/ (MVTec AD layout), or point at a folder of normal images only")


@dataclass(frozen=True)
class TestImage:
    path: Path
    defect: str  # "good" for normal images
    mask_path: Path | None

    @property
    def is_anomalous(self) -> bool:
        return self.defect.casefold() != "good"  # `test/Good` too, which a case-blind disk finds as test/good


def truth_mask(category: str | Path, image: Path) -> Path | None:
    """The ground-truth mask of the test image `image` (`truth_masks`), without its notices, which
    `mvtec_test_set` gives once for the whole set."""
    defect = image.relative_to(test_folder(category)).parts[0]
    with collect():
        return truth_masks(category, find_images(test_folder(category) / defect)).get(image)


def truth_masks(category: str | Path, images: list[Path]) -> dict[Path, Path | None]:
    """The ground-truth mask of each test image (`CATEGORY/test/<defect>/[<folders>/]<stem>.*`), where it
    has one: `ground_truth/<defect>/[<folders>/]<stem>_mask.png`, or flat in `ground_truth/<defect>/`; where that name
    is not there, its file name in another case (test images are taken with any: `_mask.PNG` masks dropped the pixel
    metrics), unless that is another image's own mask's name, or several files fit.
    A mask that fits several of the images (`000.png` beside `000.jpg`, or a flat mask and images of
    its name in two folders) is none of theirs, with a notice: pixel metrics against another image's
    truth would be wrong without a sign."""
    category = Path(category)
    truth, test = truth_folder(category), test_folder(category)

    def names(image: Path) -> tuple[Path, Path]:  # (mirrored, flat) under ground_truth/
        relative = image.relative_to(test)
        return relative.parent / f"{image.stem}_mask.png", Path(relative.parts[0]) / f"{image.stem}_mask.png"

    mirrored = Counter(names(image)[0] for image in images)
    flat = Counter(names(image)[1] for image in images)  # every image of a defect with that stem, in any folder
    listed: dict[Path, dict[str, list[str]]] = {}  # a folder's files by their name in lower case
    found_folders: dict[Path, Path] = {}  # a folder as test/ names it, as ground_truth/ holds it
    masks, left_out, unsure = {}, [], set()

    def existing(name: Path) -> Path | None:
        if (truth / name).is_file():
            return name
        # its folders in any case too: `test/Defective` beside `ground_truth/defective` (zipped where case is ignored)
        if name.parent not in found_folders:
            found_folders[name.parent] = subfolder(truth, *name.parent.parts) or truth / name.parent
        folder = found_folders[name.parent]
        if folder not in listed:
            listed[folder] = {}
            with contextlib.suppress(OSError):  # none there, or not to be listed: no mask, as for a missing name
                for entry in sorted(os.listdir(folder)):
                    listed[folder].setdefault(entry.casefold(), []).append(entry)
        fits = [other for other in listed[folder].get(name.name.casefold(), []) if (other == name.name or (
                name.parent / other not in mirrored and name.parent / other not in flat)) and (folder / other).is_file()]
        if len(fits) > 1:
            unsure.add(f"ground_truth/{name.as_posix()} ({', '.join(fits)})")
        return folder.relative_to(truth) / fits[0] if len(fits) == 1 else None

    for image in images:
        own, shared = names(image)
        for name, counts in ((own, mirrored), (shared, flat)):
            found = existing(name)
            if found is not None:
                break
        if found is not None and counts[name] > 1:
            left_out.append(f"{test.name}/{image.relative_to(test).as_posix()} ({truth.name}/{found.as_posix()})")
            found = None
        masks[image] = None if found is None else truth / found
    if left_out:
        notify(f"no mask for {', '.join(left_out)}: each mask named there fits several test images of one name")
    if unsure:
        notify(f"no mask taken for {', '.join(sorted(unsure))}: several files have the mask's name in other cases")
    return masks


def read_truth_mask(path: Path) -> np.ndarray:
    """A ground-truth mask file as a bool array: a pixel is defective where any colour channel is above
    0 in a faint mask (0/1, label indices: no value shown above half the range), and above half the mask's brightest
    value shown in a bright one (0/255, 16-bit, coloured; a second colour less than half as bright as the first is no
    defect), so all of them read alike. A mask once saved as JPEG keeps faint values around every stroke (1-9 of 255, a
    few pixels out), and an editor's soft brush fades at its edge: "above 0" read both as defect (BENCHMARKS.md: ksdd's
    masks so saved moved its AUPRO from 0.793 to 0.819). In a mask whose alpha channel or transparent colour hides
    some pixels and shows others, only a pixel shown counts: where every pixel an alpha channel shows has one colour
    (an editor's layer, white or black everywhere, its strokes in the alpha channel alone), every one. (A transparent
    colour hides by colour: the colours shown still tell.)"""
    colours = read_image(path)  # first: a file it cannot read gets its error, named
    brightest, transparency = colours.max(axis=-1), alpha_channel(path)
    alpha, keyed = transparency or (None, False)
    if alpha is None or alpha.shape != brightest.shape or alpha.min() == 255 or alpha.max() == 0:
        return _bright(brightest)  # every pixel shows, or none does: the colours are the mask
    visible = alpha > 0
    shown = colours[visible]
    if not keyed and (shown == shown[0]).all():  # the pixels shown are of one colour: the strokes are in the alpha channel alone
        return visible
    return _bright(brightest, visible) & visible  # a black background with a transparent margin; red strokes on a transparent white


def _bright(brightest: np.ndarray, shown: np.ndarray | None = None) -> np.ndarray:
    """The defective pixels of a mask's brightest channel (`read_truth_mask`'s rule), judged by the pixels `shown`."""
    top = float(brightest[shown].max() if shown is not None else brightest.max())
    return brightest > (top / 2 if top > 0.5 else 0)


def _is_mask_beside(path: Path, images: set[tuple[Path, str]]) -> bool:
    """Whether `path` is named as the mask of an image in its own folder (`X_mask.png` beside `X.jpg`)."""
    stem = path.stem.casefold()
    return stem.endswith("_mask") and (path.parent, stem.removesuffix("_mask")) in images


def without_good(tests: list[str]) -> str:
    """What is wrong with categories whose test folders `tests` hold defects only."""
    return (f"{some(tests, 3)} {'has' if len(tests) == 1 else 'have'} no good/ folder: evaluation needs good test images "
            "(test/good/) beside the defective ones (test/DEFECT/)")


def mvtec_test_set(category: str | Path) -> list[TestImage]:
    """The labelled test images of an MVTec-layout category, with their masks where present."""
    category = Path(category)
    test = test_folder(category)
    if test.is_dir() and subfolder(test, "good") is None:
        raise DatasetLayoutError(without_good([test.as_posix()]))
    if not test.is_dir():
        raise DatasetLayoutError(f"{category} is not an MVTec AD category: expected {test}/good/ and {test}/DEFECT/ folders "
                                 "(one per defect, by any name)")
    items, masks_in_test = [], []
    for folder in sorted(p for p in test.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name.casefold() == "ground_truth":  # the masks put under test/: their images' defect folder, for all they say
            masks_in_test.append(f"test/{folder.name}/")
            continue
        paths = without_results(find_images(folder), category, "test images")
        images = {(path.parent, path.stem.casefold()) for path in paths}
        beside = [path for path in paths if _is_mask_beside(path, images)]
        masks_in_test += [path.relative_to(category).as_posix() for path in beside]
        paths = [path for path in paths if path not in beside]
        masks = truth_masks(category, paths)
        items += [TestImage(path, folder.name, masks[path]) for path in paths]
    if masks_in_test:
        notify(f"masks under test/ are not test images, and are not scored: {some(masks_in_test)} (a test image's mask is "
               "ground_truth/<defect>/<name>_mask.png, beside test/)")
    if not any(item.is_anomalous for item in items):
        raise DatasetLayoutError(f"{test} has no defect folder with images (only test/good): image metrics need both classes")
    if not any(not item.is_anomalous for item in items):
        raise DatasetLayoutError(f"{test}/good holds no images: image metrics need both classes")
    return items
