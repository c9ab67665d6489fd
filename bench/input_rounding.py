"""How far rounding a model's input (or its teacher features) moves image scores: why training keeps its
pictures as the float32 input a prediction makes.

    python -m bench.input_rounding --checkpoints checkpoints --sets ksdd weld bottle --images 30

Scores the first `--images` `test/good` images of each set with the checkpoint of that name, from the
float32 model input, from that input rounded to uint8 (as training kept its pictures before) and to
float16, and from the float32 input with the teacher's features rounded to float16 (as training's
feature cache keeps them); reports each rounding's score differences against the float32 input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import rbd
from bench import options
from rbd.images import find_images, read_image
from rbd.train import resized

ROUNDINGS = {"uint8": lambda x: (x * 255).round() / 255, "float16": lambda x: x.half().float()}


@torch.inference_mode()
def scores(detector: rbd.Detector, pictures: list[torch.Tensor], input_rounding=None, feature_rounding=None) -> np.ndarray:
    """Each picture's image score, its input and its teacher features rounded as given."""
    model = detector.model.eval()
    found = []
    for picture in pictures:
        x = (input_rounding or (lambda t: t))(picture)[None]
        features = model.features(x)
        if feature_rounding is not None:
            features = [feature_rounding(f) for f in features]
        found.append(float(model.scored(*model.distances_from_features(features), x.shape[-2:])[1][0]))
    return np.array(found)


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    parser.add_argument("--images", type=int, default=30)
    parser.set_defaults(sets=["ksdd", "weld", "bottle"])
    args = options.parse(parser)
    print("| set (threshold, normal spread) | rounding | mean / median abs / max abs score difference |\n|---|---|---|")
    for name in args.sets:
        detector = rbd.load(args.checkpoints / name)
        pictures = [resized(read_image(p), detector.config) for p in find_images(args.data / name / "test" / "good")[: args.images]]
        exact = scores(detector, pictures)
        label = f"{name} ({detector.threshold:.3f}, {detector.calibration.scale:.3f})"
        runs = {f"input {k}": scores(detector, pictures, input_rounding=f) for k, f in ROUNDINGS.items()}
        runs["teacher features float16"] = scores(detector, pictures, feature_rounding=ROUNDINGS["float16"])
        for kind, rounded in runs.items():
            d = rounded - exact
            print(f"| {label} | {kind} | {d.mean():+.4f} / {np.median(np.abs(d)):.4f} / {np.abs(d).max():.4f} |", flush=True)


if __name__ == "__main__":
    main()
