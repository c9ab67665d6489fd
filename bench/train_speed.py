"""Training speed: optimiser steps per second, and where a step's time goes.

    python -m bench.train_speed --set ksdd --steps 60
    PYTHONPATH=/tmp/rbd-0.1 python -m bench.train_speed --set ksdd --steps 60   # another rbd checkout, same script

Trains on a set for `--steps` steps (no time limit) and reports the median seconds per step
after the first ten (the steps alone: caching, memory and calibration are timed by `train()`
itself in its summary, `seconds_by_phase`). `--profile` adds torch.profiler's table of the
operators that took the most time. Run two checkouts one after the other on an idle machine to
compare them; the script uses only `rbd.train`'s public API, which both share.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import rbd
from bench import options
from rbd.datasets import training_folder
from rbd.images import read_image_folder


WARM_UP = 10  # steps not timed: the first ones set up kernels and memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--set", default="ksdd")
    parser.add_argument("--steps", type=int, default=60, help=f"at least {WARM_UP + 2}: the first {WARM_UP} are not timed "
                                                               "(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.steps < WARM_UP + 2:
        parser.error(f"--steps must be at least {WARM_UP + 2}: the first {WARM_UP} warm up, and a median needs one interval after them")
    torch.set_num_threads(args.threads)
    images, _ = read_image_folder(training_folder(args.data / args.set))
    stamps = []
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if args.profile else None
    if profiler:
        profiler.start()
    detector = rbd.train(images, config=rbd.TrainConfig(epochs=options.epochs_for(args.steps, len(images)), max_minutes=None),
                         progress=lambda p: stamps.append(time.perf_counter()))
    if profiler:
        profiler.stop()
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    per_step = [b - a for a, b in zip(stamps[WARM_UP:], stamps[WARM_UP + 1:])]
    result = {"set": args.set, "rbd": rbd.__version__, "steps": len(stamps), "threads": args.threads,
              "median_s_per_step": round(statistics.median(per_step), 4), "steps_per_minute": round(60 / statistics.median(per_step), 1),
              "seconds": detector.training["seconds"], "seconds_by_phase": detector.training.get("seconds_by_phase")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
