"""What reading a large 16-bit grey PNG costs, against the image reader of another revision, in one run.

    python -m bench.read_deep --against f283114 --rounds 6

An 8000 x 6000 PNG of random 16-bit values (zlib level 1) is read at the app's limit (`read_image(path, MAX_SIDE)`:
decoded, made upright and shrunk to 4096 pixels a side) by this checkout's `rbd/images.py` and by the one of revision
`--against` (taken with `git show`, loaded as a module of its own), in turn, so that load on the machine touches both
alike. Median seconds, and their ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imagecodecs
import numpy as np

import rbd.images


def module_at(revision: str, folder: Path):
    """`rbd/images.py` of `revision`, importable beside this checkout's (its relative imports made absolute)."""
    source = subprocess.run(["git", "show", f"{revision}:rbd/images.py"], check=True, capture_output=True, text=True).stdout
    path = folder / "images_at_revision.py"
    path.write_text(source.replace("from .", "from rbd."))
    spec = importlib.util.spec_from_file_location("images_at_revision", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the revision whose image reader is the baseline")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        pixels = (np.random.default_rng(0).random((6000, 8000)) * 65535).astype(np.uint16)
        (folder / "deep.png").write_bytes(imagecodecs.png_encode(pixels, level=1))
        readers = {args.against: module_at(args.against, folder), "this checkout": rbd.images}
        times = {name: [] for name in readers}
        for _ in range(args.rounds):
            for name, module in readers.items():
                start = time.perf_counter()
                module.read_image(folder / "deep.png", rbd.images.MAX_SIDE)
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:>16}  {median:.3f} s")
    print(f"{'ratio':>16}  {medians['this checkout'] / medians[args.against]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
