"""Time to quality: image AUROC, pixel AUROC and AUPRO after 1, 2, 5, 10 and 20 minutes of training.

    python -m bench.curve --sets bottle ksdd weld bsd_pitting elpv_mono --minutes 1 2 5 10 20
    python -m bench.curve --models bench/results/models     # reuse the 10-minute models of bench.compare

Each point is its own training run with the default settings and that budget (the learning-rate
schedule follows the budget, so a snapshot of a longer run would not be what a user gets), then
`rbd.evaluate`. Results go to `--out/curve-<set>-<minutes>.json` (existing ones are reused: delete
to rerun) and the plot of every point in `--out` to `--plot`, so a curve can be run in parts (some
sets with other budgets) and drawn whole.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import rbd  # noqa: E402
from bench import options  # noqa: E402
from rbd.datasets import training_folder  # noqa: E402

COLUMNS = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "aupro": "AUPRO"}


def point(data: Path, minutes: float, models: Path | None, out: Path) -> dict:
    path = out / f"curve-{data.name}-{minutes:g}.json"
    if path.exists():
        return json.loads(path.read_text())
    reuse = models / data.name if models is not None else None
    if reuse is not None and reuse.is_dir() and rbd.load(reuse).training["config"].get("max_minutes") == minutes:
        detector = rbd.load(reuse)
    else:
        detector = rbd.train(training_folder(data), config=rbd.TrainConfig(max_minutes=minutes))
    result = {"set": data.name, "minutes": minutes, "steps": detector.training["steps"], "seconds": detector.training["seconds"],
              **rbd.evaluate(detector, data).summary(), "date": time.strftime("%Y-%m-%d")}
    path.write_text(json.dumps(result, indent=2))
    return result


def plot(results: list[dict], path: Path) -> None:
    figure, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    names = list(dict.fromkeys(r["set"] for r in results))  # one colour per set in every panel, as the legend says
    for axis, (key, title) in zip(axes, COLUMNS.items()):
        for colour, name in enumerate(names):
            points = sorted((r["minutes"], r[key]) for r in results if r["set"] == name and r[key] is not None)
            if points:
                axis.plot(*zip(*points), marker="o", label=name, color=f"C{colour}")
        axis.set_xscale("log")
        axis.set_xticks([1, 2, 5, 10, 20], labels=["1", "2", "5", "10", "20"])
        axis.set_xlabel("training minutes (2-core CPU)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--models", type=Path, default=None, help="reuse checkpoints <set> of this folder where their budget matches")
    parser.add_argument("--plot", type=Path, default=Path("bench/time_to_quality.png"))
    args = options.parse(parser)
    results = []
    for name in args.sets:
        for minutes in args.minutes:
            results.append(point(args.data / name, minutes, args.models, args.out))
            print(json.dumps(results[-1]), flush=True)
    plot([json.loads(p.read_text()) for p in sorted(args.out.glob("curve-*.json"))], args.plot)
    print("| set | minutes | steps | image AUROC | pixel AUROC | AUPRO |\n|---|---|---|---|---|---|")
    for r in results:
        cells = " | ".join("–" if r[k] is None else f"{r[k]:.3f}" for k in COLUMNS)
        print(f"| {r['set']} | {r['minutes']:g} | {r['steps']} | {cells} |")


if __name__ == "__main__":
    main()
