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
    flat = mask.ravel(order="F") > 0
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    if flat.size and flat[0]:
        counts.insert(0, 0)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


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
            region = np.zeros_like(mask)
            region[box] = inside
            x0, y0, x1, y1 = box_xyxy(box)
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 1,
                "segmentation": encode_rle(region),
                "area": int(region.sum()),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
            }
            if item.score is not None:
                annotation["score"] = float(item.score)
            annotations.append(annotation)
    return {"images": images, "annotations": annotations, "categories": [dict(c) for c in CATEGORIES]}
