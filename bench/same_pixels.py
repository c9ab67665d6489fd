"""Whether this checkout reads every image of the data sets as another revision did: same files found, same pixels.

    python -m bench.same_pixels --against cdac309 --data ../shared/data --sets bottle ksdd weld bsd_pitting elpv_mono

A change to image reading (`rbd/images.py`) can move every figure of a set without a line of the model changing; where
the model's code did not change either, identical pixels on every file of a set mean its figures cannot move. Each
file is read as a prediction and an evaluation read it (`read_image_for_scoring`), by this checkout's reader and by the
one of revision `--against` (`bench.read_deep.module_at`). Prints, per set, the files found and those that differ.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import rbd.images
from bench.read_deep import module_at


def differing(root: Path, other) -> tuple[int, list[str]]:
    """(files found, the names of those read otherwise) of the images under `root`, by this reader and `other`."""
    found = rbd.images.find_images(root)
    if [p.relative_to(root) for p in other.find_images(root)] != [p.relative_to(root) for p in found]:
        raise SystemExit(f"{root}: the two revisions find other files")
    changed = []
    for path in found:
        new, old = rbd.images.read_image_for_scoring(path)[0], other.read_image_for_scoring(path)[0]
        if new.shape != old.shape or not np.array_equal(new, old):
            changed.append(path.relative_to(root).as_posix())
    return len(found), changed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the revision whose reader is compared (a commit, a tag)")
    parser.add_argument("--data", type=Path, required=True, help="the folder holding the sets")
    parser.add_argument("--sets", nargs="+", required=True)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        other = module_at(args.against, Path(folder))
        for name in args.sets:
            count, changed = differing(args.data / name, other)
            print(f"{name}: {count} files, {len(changed)} read otherwise" + (f": {', '.join(changed[:5])}" if changed else ""))


if __name__ == "__main__":
    main()
