"""Images per second of `rbd predict` with each engine, on one folder, side by side.

    python -m bench.engines --checkpoint checkpoints/bottle --images ../shared/data/bottle/test --repeats 3

Each run is the whole command as a user runs it (`rbd predict CKPT IMAGES --out OUT --engine E`):
listing, decoding, scoring, drawing and writing overlays, masks and results; for Ray also starting
a local Ray instance and its actors, and writing results.parquet. Reports the median over
`--repeats` runs of each engine, run alternately so both see the same machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch

from rbd.cli import main as rbd_main
from rbd.images import find_images

ENGINES = ("local", "ray")


def run_seconds(engine: str, checkpoint: str, images: str, batch_size: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        code = rbd_main(["predict", checkpoint, images, "--out", out, "--engine", engine,
                         "--batch-size", str(batch_size), "--quiet"])
        seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"rbd predict --engine {engine} failed with exit status {code}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/bottle")
    parser.add_argument("--images", required=True, help="a folder of images")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the local engine")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    count = len(find_images(args.images))
    seconds: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    for _ in range(args.repeats):
        for engine in ENGINES:
            seconds[engine].append(run_seconds(engine, args.checkpoint, args.images, args.batch_size))
    per_second = {engine: count / statistics.median(times) for engine, times in seconds.items()}
    print(json.dumps({
        "checkpoint": args.checkpoint, "images": args.images, "n_images": count, "batch_size": args.batch_size,
        "threads": args.threads, "cpus": torch.multiprocessing.cpu_count(),
        "seconds": {engine: [round(s, 2) for s in times] for engine, times in seconds.items()},
        "images_per_second": {engine: round(v, 2) for engine, v in per_second.items()},
        "ray_vs_local": round(per_second["ray"] / per_second["local"], 2),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
    }, indent=2))


if __name__ == "__main__":
    main()
