"""Is bfloat16 safe for a checkpoint? Its maps, scores and verdicts with each half of the network in bfloat16.

    python -m bench.precision --models checkpoints --sets bottle ksdd weld

rbd computes maps and scores in float32 on a CPU (rbd.runtime). This bench runs each
`--models/<set>` checkpoint over its test set four ways: float32 (what rbd does), the teacher in
bfloat16 autocast (what rbd did before on CPUs with native bfloat16), the student in bfloat16,
and both. For each: the metrics (rbd.metrics at the image's size), false alarms and recall at the
checkpoint's calibrated threshold, and how far scores and maps move from float32. On a CPU without
native bfloat16 the bfloat16 rows are emulated: the same numbers, slowly.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch

import rbd
from bench import options
from bench.compare import read_mask, score_outputs
from rbd import metrics
from rbd.datasets import mvtec_test_set
from rbd.geometry import to_image_size, to_input
from rbd.images import read_image

VARIANTS = {"float32": (False, False), "teacher bfloat16": (True, False), "student bfloat16": (False, True), "both bfloat16": (True, True)}


def bfloat16(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


@torch.inference_mode()
def outputs(model: rbd.RBD, x: torch.Tensor, teacher_bf16: bool, student_bf16: bool) -> tuple[float, torch.Tensor]:
    """The score and map of `RBD.scored`, with the teacher and the student each in bfloat16 or not."""
    with bfloat16(teacher_bf16):  # the teacher module itself: `RBD.features` would keep it float32
        teacher = [f.float() for f in model.teacher(model.teacher_input(x))]
    with bfloat16(student_bf16):  # reaches the student only: distances and memory are float32 inside
        scale_maps, memory_map = model.distances_from_features(teacher)
    maps, score = model.scored(scale_maps, memory_map, x.shape[-2:])
    return float(score[0]), maps[0, 0]


def measure(detector: rbd.Detector, category) -> dict:
    model, threshold = detector.model, detector.threshold
    items = mvtec_test_set(category)
    with_masks = all(item.mask_path for item in items if item.is_anomalous)
    labels = np.array([int(item.is_anomalous) for item in items])
    scores = {v: [] for v in VARIANTS}
    maps = {v: [] for v in VARIANTS}
    masks = []
    for item in items:
        image = read_image(item.path)
        fitted = model.config.fit(*image.shape[:2])
        x = to_input(image, fitted)[None]
        for variant, halves in VARIANTS.items():
            score, amap = outputs(model, x, *halves)
            scores[variant].append(score)
            maps[variant].append(to_image_size(amap, fitted).numpy())
        if with_masks:
            masks.append(read_mask(item, image.shape[:2]))
    rows = {}
    for variant in VARIANTS:
        s = np.array(scores[variant])
        moved = np.abs(s - np.array(scores["float32"]))
        rows[variant] = {
            **score_outputs(labels, s, masks or None, maps[variant] if with_masks else None),
            **metrics.at_threshold(labels, s, threshold),
            "score_moved_max": float(moved.max()), "score_moved_median": float(np.median(moved)),
            "map_moved_max": max(float(np.abs(a - b).max()) for a, b in zip(maps[variant], maps["float32"])),
        }
    return {"set": category.name, "threshold": threshold, "images": len(items), "date": time.strftime("%Y-%m-%d"), "variants": rows}


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--models", default="checkpoints", help="folder of <set> checkpoints")
    args = options.parse(parser)
    results = []
    for name in args.sets:
        result = measure(rbd.load(f"{args.models}/{name}"), args.data / name)
        (args.out / f"precision-{name}.json").write_text(json.dumps(result, indent=2))
        results.append(result)
    print("| set | threshold | variant | image AUROC | pixel AUROC | AUPRO | false alarms | recall | score moved (max, median) | map moved (max) |")
    print("|---" * 10 + "|")
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for r in results:
        for variant, m in r["variants"].items():
            print(f"| {r['set']} | {r['threshold']:.3f} | {variant} | {fmt(m['image_auroc'])} | {fmt(m['pixel_auroc'])} | {fmt(m['aupro'])} | "
                  f"{100 * m['false_alarm_rate']:.1f}% | {100 * m['recall']:.1f}% | {m['score_moved_max']:.3f}, {m['score_moved_median']:.3f} | "
                  f"{m['map_moved_max']:.3f} |")


if __name__ == "__main__":
    main()
