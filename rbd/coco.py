"""COCO instance-segmentation export: masks as uncompressed run-length encoding (RLE).

Uncompressed RLE is plain JSON (no pycocotools needed to write it) and pycocotools reads it
as it is: `counts` are run lengths over the mask in column-major (Fortran) order, alternating
background and foreground and always starting with background, so a mask whose first pixel is
set starts with a 0 count.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import numpy as np

from .regions import box_xyxy, connected_regions

CATEGORIES = [{"id": 1, "name": "defect"}]


class CocoImage(NamedTuple):
    """One image to export; `mask` None (or empty) means no defect, `score` is an optional model score."""

    file_name: str
    height: int
    width: int
    mask: np.ndarray | None
    score: float | None = None


def encode_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE of a 2-D mask (anything > 0 is foreground)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    return region_rle(mask > 0, 0, 0, *mask.shape)


def region_rle(inside: np.ndarray, x0: int, y0: int, height: int, width: int) -> dict:
    """`encode_rle` of a (height, width) mask that is empty but for `inside`, a region's pixels in its box
    whose top-left corner is (x0, y0): from the region's own pixels, at a cost that does not grow with the
    image (an export of many small regions on a large photo encoded the whole photo once per region)."""
    columns, rows = np.nonzero(np.asarray(inside).T)  # column-major: by column, then by row
    index = (columns + x0) * height + rows + y0
    size, pixels = [int(height), int(width)], int(height) * int(width)
    if not index.size:
        return {"size": size, "counts": [pixels]}
    breaks = np.flatnonzero(np.diff(index) != 1) + 1  # where one run of set pixels ends and the next begins
    starts, ends = index[np.r_[0, breaks]], index[np.r_[breaks - 1, index.size - 1]] + 1
    edges = np.column_stack([starts, ends]).ravel()
    last = edges[:0] if edges[-1] == pixels else [pixels]  # no background run after the image's last pixel (an empty
    return {"size": size, "counts": np.diff(np.r_[0, edges, last]).tolist()}  # list of its type: [] made the counts floats)


def decode_rle(rle: dict) -> np.ndarray:
    """The (H, W) bool mask of an uncompressed RLE; compressed (string) counts are not supported."""
    height, width = (int(v) for v in rle["size"])
    if isinstance(rle["counts"], (str, bytes)):
        raise ValueError("compressed RLE (string counts) is not supported; decode it with pycocotools")
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() != height * width:
        raise ValueError(f"RLE counts must be non-negative and sum to {height} x {width} = {height * width}")
    values = np.arange(counts.size) % 2 == 1  # even runs are background
    return np.repeat(values, counts).reshape((height, width), order="F")


def coco_dataset(items: Iterable[tuple]) -> dict:
    """A COCO instance-segmentation dict with one annotation per connected defect region.

    Each item is (file_name, height, width, mask or None[, score]), as `CocoImage`. Regions are
    split with 8-connectivity, like `Prediction.regions`, so two separate scratches on one part
    are two instances. `iscrowd` is 0: each region is one object, so COCO evaluation matches it
    (pycocotools reads RLE segmentations of single objects as well). Image and annotation ids count from 1.
    """
    images, annotations = [], []
    for image_id, fields in enumerate(items, start=1):
        item = CocoImage(*fields)
        images.append({"id": image_id, "file_name": item.file_name, "height": int(item.height), "width": int(item.width)})
        if item.mask is None:
            continue
        mask = np.asarray(item.mask) > 0
        if mask.shape != (item.height, item.width):
            raise ValueError(f"{item.file_name}: mask shape {mask.shape} != image size {(item.height, item.width)}")
        for box, inside in connected_regions(mask):
            x0, y0, x1, y1 = box_xyxy(box)
            segmentation = region_rle(inside, x0, y0, item.height, item.width)
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 1,
                "segmentation": segmentation,
                "area": int(sum(segmentation["counts"][1::2])),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
            }
            if item.score is not None:
                annotation["score"] = float(item.score)
            annotations.append(annotation)
    return {"images": images, "annotations": annotations, "categories": [dict(c) for c in CATEGORIES]}
