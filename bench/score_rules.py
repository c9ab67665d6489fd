"""Which image score rule separates good from defective parts best? (How the default was chosen.)

    python -m bench.score_rules --data ../shared/data --checkpoints checkpoints

Evaluates each shipped checkpoint with every rule in `rbd.anomaly_map.SCORE_RULES` and prints
the image AUROC and F1-max per set (the pixel metrics do not depend on the rule).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

import rbd
from rbd.anomaly_map import SCORE_RULES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    parser.add_argument("--sets", nargs="+", default=["bottle", "ksdd", "weld"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("| set | " + " | ".join(f"{rule} AUROC | {rule} F1-max" for rule in SCORE_RULES) + " |")
    print("|---|" + "---|---|" * len(SCORE_RULES))
    for name in args.sets:
        detector = rbd.load(args.checkpoints / name)
        cells = []
        for rule in SCORE_RULES:
            detector.model.config = dataclasses.replace(detector.config, score_rule=rule)
            result = rbd.evaluate(detector, args.data / name)
            cells += [f"{result.image_auroc:.3f}", f"{result.image_f1max:.3f}"]
            print(json.dumps({"set": name, "rule": rule, "image_auroc": result.image_auroc, "image_f1max": result.image_f1max}), flush=True)
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
