"""Which image score separates good from defective parts best? (How the defaults were chosen.)

    python -m bench.score_rules --data ../shared/data --checkpoints checkpoints
    python -m bench.score_rules --data ../shared/data --checkpoints MODELS --sets bsd_pitting elpv_mono --sources

Evaluates each checkpoint with every rule in `rbd.anomaly_map.SCORE_RULES` and prints the image
AUROC and F1-max per set (the pixel metrics do not depend on the rule). With `--sources`, instead,
what the image score is taken from: the anomaly map's score, the memory's own (in the map's units),
their mean (`score_from = "both"`, the default) and their maximum.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

import rbd
from rbd.anomaly_map import SCORE_RULES
from rbd.metrics import auroc, f1_max


def source_scores(detector: rbd.Detector, category: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The test images' labels, and their scores from the map, the memory, and the two combined."""
    config = detector.config
    scores = {}
    try:
        for source in ("map", "memory"):
            detector.model.config = dataclasses.replace(config, score_from=source)
            rows = rbd.evaluate(detector, category).rows
            scores[source] = np.array([row["score"] for row in rows])
    finally:
        detector.model.config = config
    scores["mean (default)"] = (scores["map"] + scores["memory"]) / 2
    scores["max"] = np.maximum(scores["map"], scores["memory"])
    return np.array([row["label"] for row in rows]), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    parser.add_argument("--sets", nargs="+", default=["bottle", "ksdd", "weld"])
    parser.add_argument("--sources", action="store_true", help="compare what the score is taken from instead of the rules")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.sources:
        for name in args.sets:
            labels, scores = source_scores(rbd.load(args.checkpoints / name), args.data / name)
            results = {source: (auroc(labels, s), f1_max(labels, s)) for source, s in scores.items()}
            print(json.dumps({"set": name, **{k: {"image_auroc": a, "image_f1max": f} for k, (a, f) in results.items()}}), flush=True)
            print(f"| {name} | " + " | ".join(f"{a:.3f} / {f:.3f}" for a, f in results.values()) + " |", flush=True)
        return
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
