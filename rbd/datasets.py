"""Where the images are: MVTec AD category folders, or any folder of normal images.

MVTec AD layout:
    CATEGORY/train/good/*.png
    CATEGORY/test/good/*.png, CATEGORY/test/<defect>/*.png
    CATEGORY/ground_truth/<defect>/<stem>_mask.png   (optional: image-level metrics only)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetLayoutError
from .images import find_images


def training_folder(data: str | Path) -> Path:
    """`DATA/train/good` for an MVTec category, otherwise DATA itself (searched recursively)."""
    data = Path(data)
    mvtec = data / "train" / "good"
    return mvtec if mvtec.is_dir() else data


@dataclass(frozen=True)
class TestImage:
    path: Path
    defect: str  # "good" for normal images
    mask_path: Path | None

    @property
    def is_anomalous(self) -> bool:
        return self.defect != "good"


def truth_mask(category: str | Path, image: Path) -> Path | None:
    """The ground-truth mask of the test image `image` (`CATEGORY/test/<defect>/<stem>.*`), if there is one."""
    mask = Path(category) / "ground_truth" / image.parent.name / f"{image.stem}_mask.png"
    return mask if mask.is_file() else None


def mvtec_test_set(category: str | Path) -> list[TestImage]:
    """The labelled test images of an MVTec-layout category, with their masks where present."""
    category = Path(category)
    test = category / "test"
    if not test.is_dir() or not (test / "good").is_dir():
        raise DatasetLayoutError(f"{category} is not an MVTec AD category: expected {test}/good/ and {test}/DEFECT/ folders "
                                 "(one per defect, by any name)")
    items = []
    for folder in sorted(p for p in test.iterdir() if p.is_dir()):
        for path in find_images(folder):
            items.append(TestImage(path, folder.name, truth_mask(category, path)))
    if not any(item.is_anomalous for item in items):
        raise DatasetLayoutError(f"{test} has no defect folder with images (only test/good): image metrics need both classes")
    if not any(not item.is_anomalous for item in items):
        raise DatasetLayoutError(f"{test}/good holds no images: image metrics need both classes")
    return items
