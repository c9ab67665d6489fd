"""Training's peak memory on a folder of large photos: what a set of camera photos costs.

    python -m bench.train_memory --photos 6 24 --side 4000
    PYTHONPATH=/tmp/rbd-old python -m bench.train_memory --photos 6 24   # another rbd checkout, same script

Writes `--photos` synthetic grey JPEGs of `--side` x `--side` pixels, then trains the default model
on the folder for one epoch in a fresh process each (rbd from PYTHONPATH if set, else this checkout), and reports that process's peak resident memory
before and after training (`ru_maxrss`). Only training's reading and resizing of the images grows with
the photos' size; the network's memory does not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHECKOUT = Path(__file__).resolve().parents[1]  # the rbd the child trains with, unless PYTHONPATH names another
CHILD = """
import json, resource, sys, time
import rbd
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
rbd.train(sys.argv[1], config=rbd.TrainConfig(epochs=1, max_minutes=None, seed=0))
print(json.dumps({"before_mb": round(before), "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "seconds": round(time.perf_counter() - start, 1)}))
"""


def photos(folder: Path, count: int, side: int) -> Path:
    """`count` grey JPEGs of side x side: a smooth random texture, upscaled (what a camera photo costs to decode)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        texture = Image.fromarray((rng.uniform(0, 1, (side // 8, side // 8)) * 255).astype(np.uint8))
        texture.resize((side, side), Image.Resampling.BILINEAR).save(folder / f"{i:03d}.jpg", quality=90)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, nargs="+", default=[6, 24])
    parser.add_argument("--side", type=int, default=4000)
    args = parser.parse_args()
    print("| photos | side | peak MB before training | peak MB after | seconds |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.photos:
            folder = photos(Path(tmp) / f"{count}", count, args.side)
            out = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, check=True, cwd=tmp,
                                 env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(CHECKOUT)})
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {count} | {args.side} | {result['before_mb']} | {result['peak_mb']} | {result['seconds']} |", flush=True)


if __name__ == "__main__":
    main()
