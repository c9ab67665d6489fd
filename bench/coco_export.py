"""How long a review export's COCO annotations take for masks of many regions on a large photo.

    python -m bench.coco_export [--side 4000] [--regions 10 100 1000] [--repeats 3]

Each mask is a (3/4 side, side) photo with `regions` separate 2x2 specks spread over it, the kind a
speckled defect or a noisy painted mask gives; the figure is the median seconds of `coco_dataset`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from rbd.coco import coco_dataset


def speckled(height: int, width: int, regions: int) -> np.ndarray:
    """A mask of `regions` 2x2 specks on a grid, apart from each other."""
    mask = np.zeros((height, width), bool)
    per_row = int(np.ceil(np.sqrt(regions * width / height)))
    step_y, step_x = height // (-(-regions // per_row) + 1), width // (per_row + 1)
    for k in range(regions):
        y, x = (k // per_row + 1) * step_y, (k % per_row + 1) * step_x
        mask[y : y + 2, x : x + 2] = True
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=4000)
    parser.add_argument("--regions", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    height, width = args.side * 3 // 4, args.side
    for regions in args.regions:
        mask = speckled(height, width, regions)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            annotations = coco_dataset([("photo.png", height, width, mask)])["annotations"]
            times.append(time.perf_counter() - start)
        assert len(annotations) == regions
        print(json.dumps({"size": [height, width], "regions": regions, "seconds": round(statistics.median(times), 3)}))


if __name__ == "__main__":
    main()
