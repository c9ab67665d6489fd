"""The memory reading a large 16-bit colour PNG takes, with this checkout's image reader or another revision's.

    python -m bench.read_memory --side 8000                      # this checkout
    python -m bench.read_memory --side 8000 --against cdac309    # the reader of another revision

An all-black 16-bit RGB PNG of `--side` x `--side` pixels (a few hundred KB: what an upload may be) is read as a
prediction reads it (`read_image_for_scoring`: decoded at full depth, shrunk to 4096 pixels a side). Run each reader in
a process of its own: the peak resident memory of a process only grows. Prints the peak before and after the read and
the difference, in MB, and the seconds the read took.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import imagecodecs
import numpy as np

import rbd.images


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=8000)
    parser.add_argument("--against", help="a revision whose reader is measured instead (`bench.read_deep.module_at`)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "deep.png"
        path.write_bytes(imagecodecs.png_encode(np.zeros((args.side, args.side, 3), np.uint16), level=9))
        if args.against:
            from bench.read_deep import module_at

            images = module_at(args.against, Path(folder))
        else:
            images = rbd.images
        before, start = peak_mb(), time.perf_counter()
        images.read_image_for_scoring(path)
        seconds, after = time.perf_counter() - start, peak_mb()
    print(f"{args.against or 'this checkout'}: peak {before:.0f} -> {after:.0f} MB (+{after - before:.0f}), {seconds:.1f} s")


if __name__ == "__main__":
    main()
