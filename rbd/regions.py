"""Connected defect regions of a mask: the one definition everything uses.

Pixels touching at a corner belong to the same region (8-connectivity), the rule of MVTec AD's
AUPRO, so the regions the app lists, the instances COCO exports and the regions AUPRO averages
over are the same regions.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from scipy import ndimage

STRUCTURE = np.ones((3, 3), dtype=bool)


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(labels, count): region k's pixels are `labels == k`, k = 1..count."""
    return ndimage.label(np.asarray(mask) > 0, structure=STRUCTURE)


def connected_regions(mask: np.ndarray) -> Iterator[tuple[tuple[slice, slice], np.ndarray]]:
    """Each region as (its bounding box as row/column slices, its pixels inside that box)."""
    labels, _ = label(mask)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        yield box, labels[box] == index


def box_xyxy(box: tuple[slice, slice]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) with x1/y1 exclusive."""
    return box[1].start, box[0].start, box[1].stop, box[0].stop
