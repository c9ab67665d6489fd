"""Can the calibrated threshold be trusted? False alarms and recall at it, trained on few or many images.

    python -m bench.calibration --sets bottle ksdd weld bsd_pitting elpv_mono --images 10 30 all
    python -m bench.calibration --sets weld --images 10 all --models bench/results/models --minutes 5

For each set and training-set size (a seeded random subset of train/good, or all of it) a
detector is trained with default settings (at most `--minutes`), or, for `all`, loaded from
`--models/<set>` when that checkpoint exists. At its calibrated threshold we count the false
alarms on test/good (the target is 0-5 %) and the recall on the test defects, beside what the
calibration itself knew: how many normal images it rested on, the threshold's bootstrap interval
and the share of synthetic defects it catches. Results go to `--out/calibration-<set>-<n>.json`,
with the normal test images the threshold flagged (one unusual part, or scattered ones?).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import rbd
from bench import options
from rbd import metrics
from rbd.datasets import training_folder
from rbd.images import read_image_folder


def subset(images: list, count: str, seed: int = 0) -> list:
    if count == "all" or int(count) >= len(images):
        return images
    return [images[i] for i in sorted(np.random.default_rng(seed).permutation(len(images))[: int(count)])]


def measure(detector: rbd.Detector, data: Path) -> dict:
    rows = rbd.evaluate(detector, data).rows
    c = detector.calibration
    return {
        "normal_images": len(c.normal_scores), "interval": c.interval, "synthetic_catch_rate": c.synthetic_catch_rate,
        **metrics.at_threshold([r["label"] for r in rows], [r["score"] for r in rows], detector.threshold),
        "false_alarm_files": [r["file"] for r in rows if r["label"] == 0 and r["verdict"] == "defective"],
    }


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--images", nargs="+", default=["10", "30", "all"])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--models", type=Path, default=None, help="folder of <set> checkpoints trained on all images")
    args = options.parse(parser)
    rows = []
    for name in args.sets:
        data = args.data / name
        images, _ = read_image_folder(training_folder(data))
        for count in args.images:
            shipped = args.models / name if args.models else None
            if count == "all" and shipped is not None and shipped.is_dir():
                detector, minutes = rbd.load(shipped), None
            else:
                detector, minutes = rbd.train(subset(images, count), config=rbd.TrainConfig(max_minutes=args.minutes)), args.minutes
            result = {"set": name, "trained_on": len(subset(images, count)), "minutes": minutes,
                      "date": time.strftime("%Y-%m-%d"), **measure(detector, data)}
            (args.out / f"calibration-{name}-{count}.json").write_text(json.dumps(result, indent=2))
            print(json.dumps(result), flush=True)
            rows.append(result)
    print("| set | trained on | normal images | threshold (95% interval) | synthetic caught | false alarms on test/good | recall |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        interval = f" ({r['interval'][0]:.3f}-{r['interval'][1]:.3f})" if r["interval"] else ""
        caught = "–" if r["synthetic_catch_rate"] is None else f"{100 * r['synthetic_catch_rate']:.0f}%"
        print(f"| {r['set']} | {r['trained_on']} | {r['normal_images']} | {r['threshold']:.3f}{interval} | {caught} | "
              f"{100 * r['false_alarm_rate']:.1f}% ({r['false_alarms']}/{r['good_images']}) | "
              f"{100 * r['recall']:.1f}% ({r['defective_images']}) |")


if __name__ == "__main__":
    main()
