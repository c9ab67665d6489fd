"""Training-length and learning-rate sweep on one set: how much training is enough?

    python -m bench.sweep --set ksdd --epochs 20 40 80
    python -m bench.sweep --set weld --epochs 150 600 --learning-rate 5e-4

Trains one model per (epochs, learning rate) with otherwise default settings (no time limit,
seed 0), evaluates it, and prints one JSON line per run and a table at the end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import rbd
from rbd.datasets import training_folder

from .run import fmt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--set", required=True)
    parser.add_argument("--epochs", type=int, nargs="+", required=True)
    parser.add_argument("--learning-rate", type=float, nargs="+", default=[rbd.TrainConfig().learning_rate])
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = args.data / args.set
    rows = []
    for learning_rate in args.learning_rate:
        for epochs in args.epochs:
            detector = rbd.train(training_folder(data), config=rbd.TrainConfig(epochs=epochs, max_minutes=None, learning_rate=learning_rate))
            result = {"set": args.set, "epochs": epochs, "learning_rate": learning_rate, "steps": detector.training["steps"],
                      "train_s": detector.training["seconds"], **rbd.evaluate(detector, data).summary()}
            rows.append(result)
            print(json.dumps(result), flush=True)
    print("| set | epochs | steps | learning rate | image AUROC | pixel AUROC | AUPRO | train s |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['epochs']} | {r['steps']} | {r['learning_rate']:g} | {fmt(r['image_auroc'])} | "
              f"{fmt(r['pixel_auroc'])} | {fmt(r['aupro'])} | {r['train_s']:.0f} |")


if __name__ == "__main__":
    main()
