"""Speed and size benchmark: end-to-end milliseconds per image and checkpoint size.

    python -m bench.speed --checkpoint checkpoints/bottle --threads 2

End to end = a decoded 256x256 RGB uint8 image in, anomaly map (at the image size) and score
out: `Detector.predict`. Reports the median over `--repeats` runs after a warm-up. A CPU predicts
in float32 whatever it has natively (rbd.runtime), so there is one path to time; the GPU's
mixed precision is `bench/gpu.py`'s.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import rbd


def median_ms(detector: rbd.Detector, images: list[np.ndarray], warmup: int) -> float:
    for image in images[:warmup]:
        detector.predict(image)
    times = []
    for image in images:
        start = time.perf_counter()
        detector.predict(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/bottle")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = rbd.load(args.checkpoint)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(args.repeats)]

    ms = median_ms(detector, images, warmup=10)
    folder = Path(args.checkpoint)
    size_mb = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6 if folder.is_dir() else None
    print(json.dumps({
        "checkpoint": args.checkpoint, "image": f"{args.size}x{args.size}", "threads": args.threads,
        "ms_per_image": round(ms, 2),
        "checkpoint_mb": None if size_mb is None else round(size_mb, 2),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
    }, indent=2))


if __name__ == "__main__":
    main()
