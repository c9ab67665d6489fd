"""Command line: `python -m rbd train | evaluate | predict | info`.

Other tools call these commands, so their arguments and outputs are a contract (see README).
A user mistake prints one line, `error: ...`, and exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from pathlib import Path

from PIL import Image

from .errors import NoImagesError, RBDError
from .images import find_images, read_images


def _train(args: argparse.Namespace) -> None:
    from .checkpoint import save
    from .datasets import training_folder
    from .model import ModelConfig
    from .train import TrainConfig, train

    model_config = ModelConfig(backbone=args.backbone, image_size=args.image_size)
    config = TrainConfig(epochs=args.epochs, max_minutes=args.max_minutes, seed=args.seed, device=args.device)
    folder = training_folder(args.data)
    print(f"training on {folder}", file=sys.stderr)

    def report(p):
        if p.step % 25 == 0:
            print(f"step {p.step:5d}  epoch {p.epoch:6.1f}  loss {p.loss:.4f}  {p.elapsed_s:6.0f} s", file=sys.stderr)

    detector = train(folder, model_config, config, progress=report)
    save(detector, args.out)
    c = detector.calibration
    print(f"saved {args.out}: threshold {c.threshold:.5f} ({100 * c.false_alarm_rate:g}% false alarms on "
          f"{len(c.normal_scores)} held-out images), synthetic defects caught {100 * c.synthetic_catch_rate:.0f}%")


def _evaluate(args: argparse.Namespace) -> None:
    from .checkpoint import load
    from .evaluate import evaluate

    result = evaluate(load(args.checkpoint, args.revision), args.data).summary()
    for key, value in result.items():
        print(f"{key:<12} {'-' if value is None else f'{value:.4f}' if isinstance(value, float) else value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def _predict(args: argparse.Namespace) -> None:
    from .checkpoint import load
    from .visualize import mask_image, overlay

    detector = load(args.checkpoint, args.revision)
    paths = []
    for item in map(Path, args.images):
        if item.is_dir():
            paths += find_images(item)
        elif item.exists():
            paths.append(item)
        else:
            raise NoImagesError(f"{item}: no such file or folder")
    images, paths = read_images(paths)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = unique_stems(paths)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "score", "normalized_score", "threshold", "verdict"])
        for path, name, image in zip(paths, names, images):
            p = detector.predict(image)
            Image.fromarray(overlay(image, p.anomaly_map, detector.calibration, p.threshold)).save(out / f"{name}_overlay.png")
            Image.fromarray(mask_image(p.mask)).save(out / f"{name}_mask.png")
            writer.writerow([str(path), f"{p.score:.6f}", f"{p.normalized_score:.6f}", f"{p.threshold:.6f}", p.verdict])
    print(f"wrote {len(paths)} overlays, masks and {out / 'results.csv'}")


def unique_stems(paths: list[Path]) -> list[str]:
    """File stems, made unique with a numeric suffix where two files share one."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        count = seen.get(path.stem, 0)
        seen[path.stem] = count + 1
        names.append(path.stem if count == 0 else f"{path.stem}_{count}")
    return names


def _info(args: argparse.Namespace) -> None:
    from .checkpoint import checkpoint_config, load

    config = checkpoint_config(load(args.checkpoint, args.revision))
    config["calibration"] = {k: v for k, v in config["calibration"].items() if not k.endswith("_scores")}
    config["training"] = {k: v for k, v in config["training"].items() if k != "loss_curve"}
    print(json.dumps(config, indent=2))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m rbd", description="Visual anomaly detection by reconstruction-based distillation.")
    commands = root.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train on normal images")
    p.add_argument("data", help="MVTec-layout category (uses train/good) or any folder of normal images")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--backbone", default="tf_efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(run=_train)

    p = commands.add_parser("evaluate", help="metrics on an MVTec-layout category")
    p.add_argument("data")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder or Hub repo id")
    p.add_argument("--revision", default=None)
    p.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    p.set_defaults(run=_evaluate)

    p = commands.add_parser("predict", help="score images, write overlays, masks and results.csv")
    p.add_argument("checkpoint", help="checkpoint folder or Hub repo id")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True)
    p.add_argument("--revision", default=None)
    p.set_defaults(run=_predict)

    p = commands.add_parser("info", help="print a checkpoint's config and calibration")
    p.add_argument("checkpoint")
    p.add_argument("--revision", default=None)
    p.set_defaults(run=_info)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)
            args.run(args)
    except RBDError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
