"""Ablation of the anomaly map: the student alone, standardised, the memory alone, and both.

    python -m bench.ablation --models bench/results/models     # the models bench.compare trained
    python -m bench.ablation --sets bottle ksdd weld bsd_pitting elpv_mono --minutes 10
    python -m bench.ablation --sets weld --steps 1000        # a fixed number of steps instead

Trains the default recipe once per set, then evaluates four maps of that one model, so the
rows differ only in how the map is made (anomaly_map.py):
`raw` the mean of the student's distances (rbd 0.1's map), `student` the same with each scale
standardised on normal images, `memory` the patch memory's map alone, `full` the default (both).
Results go to `--out/ablation-<set>.json`; the table prints at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path


import rbd
from bench import options
from rbd.datasets import training_folder
from rbd.images import read_image_folder
from rbd.train import split_holdout

from .run import fmt

VARIANTS = ("raw", "student", "memory", "full")


def variant(detector: rbd.Detector, name: str) -> rbd.Detector:
    """A copy of `detector` whose map is made the `name` way (its threshold is meaningless)."""
    model = copy.deepcopy(detector.model)
    scales = len(model.teacher.strides)
    if name in ("raw", "student"):
        model.memory = None
    if name == "raw":
        model.normal_mean.zero_()
        model.normal_std.fill_(1.0)
    if name == "memory":  # an infinite spread weighs the student's scales to zero
        model.normal_std[:scales] = math.inf
    return rbd.Detector(model, detector.calibration, detector.training)


def train(data: Path, args: argparse.Namespace) -> rbd.Detector:
    """The default recipe on the set, for --minutes or (about) --steps steps; saved beside the results."""
    images, _ = read_image_folder(training_folder(data))
    config = rbd.TrainConfig(max_minutes=args.minutes)
    if args.steps:
        steps_per_epoch = math.ceil(len(split_holdout(len(images), config)[0]) / config.batch_size)
        config = rbd.TrainConfig(epochs=math.ceil(args.steps / steps_per_epoch), max_minutes=None)
    detector = rbd.train(images, config=config)
    rbd.save(detector, args.out / f"ablation-{data.name}")
    return detector


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None, help="train this many steps (about) instead of --minutes")
    parser.add_argument("--models", type=Path, default=None, help="evaluate the checkpoint <set> of this folder instead of training")
    args = options.parse(parser)
    rows = []
    for name in args.sets:
        data = args.data / name
        detector = rbd.load(args.models / name) if args.models is not None else train(data, args)
        result = {"set": name, "steps": detector.training["steps"], "train_s": detector.training["seconds"],
                  "date": time.strftime("%Y-%m-%d"), "variants": {}}
        for v in VARIANTS:
            if v in ("memory", "full") and detector.model.memory is None:
                continue
            result["variants"][v] = rbd.evaluate(variant(detector, v), data).summary()
            print(name, v, json.dumps(result["variants"][v]), flush=True)
        (args.out / f"ablation-{name}.json").write_text(json.dumps(result, indent=2))
        rows.append(result)
    print("| set | map | image AUROC | pixel AUROC | AUPRO | steps |\n|---|---|---|---|---|---|")
    for r in rows:
        for v, m in r["variants"].items():
            print(f"| {r['set']} | {v} | {fmt(m['image_auroc'])} | {fmt(m['pixel_auroc'])} | {fmt(m['aupro'])} | {r['steps']} |")


if __name__ == "__main__":
    main()
