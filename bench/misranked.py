"""Where is image AUROC lost? The normal test images a model scores highest and the defective ones it scores lowest.

    python -m bench.misranked --models MODELS --sets bsd_pitting elpv_mono --count 6

For each `--models/<set>` checkpoint: the `--count` highest-scoring normal and lowest-scoring
defective test images, with their scores, the calibrated threshold and the defect's area in the
truth mask (a defect of a few pixels is below what a stride-4 feature can resolve), as a table and
as a contact sheet `--out/misranked-<set>.png` (each image beside its heat map with the truth mask
outlined, drawn as `rbd evaluate --misranked` and the app's Evaluate tab draw them), so a person can
see whether the misranked images are the model's blind spots or the labels' edge cases.
"""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

import rbd
from bench import options
from rbd.datasets import mvtec_test_set, read_truth_mask
from rbd.evaluate import evaluation_picture
from rbd.images import read_image


def misranked(detector: rbd.Detector, category, count: int) -> list[dict]:
    """`rbd.Evaluation.misranked`'s rows (the `count` highest-scoring normal and `count` lowest-scoring
    defective test images of `category`): file, label, score, and the truth mask's area in pixels
    (None without a mask)."""
    items = {str(item.path.relative_to(category)): item for item in mvtec_test_set(category)}
    good, defective = rbd.evaluate(detector, category).misranked(count)
    found = []
    for row in good + defective:
        mask_path = items[row["file"]].mask_path
        area = int(read_truth_mask(mask_path).sum()) if mask_path else None
        found.append({"file": row["file"], "label": row["label"], "score": row["score"], "mask_area": area})
    return found


def contact_sheet(detector: rbd.Detector, category, found: list[dict], path) -> None:
    """One row per image: the image, and its heat-map overlay with the truth mask outlined (`rbd.evaluation_picture`)."""
    figure = Figure(figsize=(8, 2.2 * len(found)))
    axes = figure.subplots(len(found), 2, squeeze=False)
    for (left, right), row in zip(axes, found):
        left.imshow(read_image(category / row["file"]))
        right.imshow(evaluation_picture(detector, category, row["file"]))
        kind = "normal" if row["label"] == 0 else "defective"
        left.set_title(f"{kind}: {row['file']}", fontsize=7)
        right.set_title(f"score {row['score']:.2f} (threshold {detector.threshold:.2f})", fontsize=7)
        for axis in (left, right):
            axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--models", type=Path, required=True, help="folder of <set> checkpoints")
    parser.add_argument("--count", type=int, default=6, help="images of each kind (default 6)")
    args = options.parse(parser)
    print("| set | kind | file | score | threshold | defect area, px |\n|---|---|---|---|---|---|")
    for name in args.sets:
        detector, category = rbd.load(args.models / name), args.data / name
        found = misranked(detector, category, args.count)
        contact_sheet(detector, category, found, args.out / f"misranked-{name}.png")
        (args.out / f"misranked-{name}.json").write_text(json.dumps(found, indent=2))
        for row in found:
            kind = "normal, highest" if row["label"] == 0 else "defective, lowest"
            area = "–" if row["mask_area"] is None else row["mask_area"]
            print(f"| {name} | {kind} | {row['file']} | {row['score']:.2f} | {detector.threshold:.2f} | {area} |")


if __name__ == "__main__":
    main()
