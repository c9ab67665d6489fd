"""Quality benchmark: the shipped checkpoints and their ablations beside anomalib's peers.

    python -m bench.run --data ../shared/data --checkpoints checkpoints
    python -m bench.run --variants full no_corruption no_consistency

`full` evaluates the shipped checkpoint of each set (built by checkpoints/build.sh). Each
ablation retrains with exactly that checkpoint's training settings (read from its config.json)
but one switch flipped, and is evaluated the same way. Results go to `--out/<set>-<variant>.json`;
runs whose JSON exists are not repeated (delete it to rerun), except the evaluation of the
shipped checkpoints under `--record-metrics`. The peers' numbers are parsed
from `--peers`: the best figure per column and set is the bar.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import torch

import rbd
from rbd.datasets import training_folder

ABLATIONS = {"no_corruption": {"corruption": False}, "no_consistency": {"consistency": False}}
COLUMNS = ("image_auroc", "pixel_auroc", "aupro")


def run_one(data: Path, variant: str, shipped: rbd.Detector, out: Path, reuse: bool = True) -> dict:
    result_path = out / f"{data.name}-{variant}.json"
    if reuse and result_path.exists():
        return json.loads(result_path.read_text())
    detector = shipped
    if variant != "full":
        config = rbd.TrainConfig(**{**shipped.training["config"], **ABLATIONS[variant]})
        detector = rbd.train(training_folder(data), shipped.config, config)
        rbd.save(detector, out / f"{data.name}-{variant}")
    evaluation = rbd.evaluate(detector, data)
    result = {
        "set": data.name, "variant": variant, **evaluation.summary(),
        "train_s": detector.training["seconds"], "steps": detector.training["steps"], "threshold": detector.threshold,
        "synthetic_catch_rate": detector.calibration.synthetic_catch_rate,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
    }
    result_path.write_text(json.dumps(result, indent=2))
    return result


def peer_bars(peers_md: Path) -> dict[str, dict[str, tuple[float, str]]]:
    """{set: {column: (best value, "model settings")}} from the peers' markdown table."""
    bars: dict[str, dict[str, tuple[float, str]]] = {}
    for line in peers_md.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or not re.fullmatch(r"[0-9.]+", cells[3]):
            continue
        name, model, settings = cells[0], cells[1], cells[2]
        for column, cell in zip(COLUMNS, cells[3:6]):
            if re.fullmatch(r"[0-9.]+", cell):
                best = bars.setdefault(name, {}).get(column, (-1.0, ""))
                if float(cell) > best[0]:
                    bars[name][column] = (float(cell), f"{model} {settings}".strip())
    return bars


def fmt(value: float | None) -> str:
    """A metric for a Markdown table: three decimals, or a dash where it does not apply."""
    return "–" if value is None else f"{value:.3f}"


def table(results: list[dict], bars: dict) -> str:
    lines = ["| set | model | image AUROC | pixel AUROC | AUPRO | image F1-max | steps | train s | ms/img |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['set']} | rbd {r['variant']} | " + " | ".join(fmt(r[c]) for c in COLUMNS)
                     + f" | {fmt(r['image_f1max'])} | {r['steps']} | {r['train_s']:.0f} | {r['ms_per_image']:.1f} |")
    for name in dict.fromkeys(r["set"] for r in results):
        bar = bars.get(name, {})
        lines.append(f"| {name} | best peer | " + " | ".join(f"{bar[c][0]:.3f} ({bar[c][1]})" if c in bar else "–" for c in COLUMNS) + " | | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    parser.add_argument("--sets", nargs="+", default=["bottle", "ksdd", "weld"])
    parser.add_argument("--variants", nargs="+", default=["full"], choices=["full", *ABLATIONS])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--peers", type=Path, default=Path("../shared/peers.md"))
    parser.add_argument("--record-metrics", action="store_true",
                        help="write each shipped checkpoint's metrics into its config and model card")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.sets:
        shipped = rbd.load(args.checkpoints / name)
        for variant in args.variants:
            recording = variant == "full" and args.record_metrics  # never record a cached figure of another checkpoint
            results.append(run_one(args.data / name, variant, shipped, args.out, reuse=not recording))
            print(json.dumps(results[-1]), flush=True)
            if recording:
                rbd.save(shipped, args.checkpoints / name, metrics={k: results[-1][k] for k in COLUMNS + ("image_f1max",)})
    print(table(results, peer_bars(args.peers) if args.peers.exists() else {}))


if __name__ == "__main__":
    main()
