"""What every benchmark over the development sets takes: where the sets are, which, how many
torch threads, and where results go; one definition for the benches that share it."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

import rbd
from rbd.train import split_holdout

SETS = ("bottle", "ksdd", "weld", "bsd_pitting", "elpv_mono")


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with --data, --sets, --threads and --out; each bench adds its own options."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder of MVTec-layout sets")
    p.add_argument("--sets", nargs="+", default=list(SETS))
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--out", type=Path, default=Path("bench/results"), help="folder for the JSON results")
    return p


def parse(p: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments, with torch's threads set and the output folder made."""
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def epochs_for(steps: int, image_count: int) -> int:
    """The epochs of about `steps` training steps on a set of `image_count` images (the default
    recipe: its hold-out split and batch size), for a bench that trains by steps, not minutes."""
    config = rbd.TrainConfig()
    per_epoch = math.ceil(len(split_holdout(image_count, config)[0]) / config.batch_size)
    return max(1, math.ceil(steps / per_epoch))
