"""Command line: `python -m rbd train | evaluate | predict | info`.

Other tools call these commands, so their arguments and outputs are a contract (see README).
A user mistake prints one line, `error: ...`, and exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import warnings
from pathlib import Path

from PIL import Image

from .errors import InvalidInputError, NoImagesError, RBDError
from .files import atomic_write
from .images import IMAGE_EXTENSIONS, find_images
from .uploads import unique_name


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
    print(f"saved {args.out}: {detector.calibration.describe()}")


def _evaluate(args: argparse.Namespace) -> None:
    from .checkpoint import load
    from .evaluate import evaluate

    result = evaluate(load(args.checkpoint, args.revision), args.data).summary()
    for key, value in result.items():
        print(f"{key:<12} {'-' if value is None else f'{value:.4f}' if isinstance(value, float) else value}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


def _predict(args: argparse.Namespace) -> None:
    from .checkpoint import load
    from .detector import predict_files
    from .visualize import mask_image, overlay

    paths = _input_images(args.images)
    detector = load(args.checkpoint, args.revision)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out} is a file, not a folder")
    taken: set[str] = set()
    rows = []
    for path, image, p in predict_files(detector, paths, args.batch_size):  # a batch at a time: decode, score, write, forget
        name = unique_name(path.stem, taken, split_suffix=False)
        _write_png(overlay(image, p.anomaly_map, detector.calibration, p.threshold), out / f"{name}_overlay.png")
        _write_png(mask_image(p.mask), out / f"{name}_mask.png")
        rows.append([str(path), f"{p.score:.6f}", f"{p.normalized_score:.6f}", f"{p.threshold:.6f}", p.verdict])
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["file", "score", "normalized_score", "threshold", "verdict"])
    writer.writerows(rows)
    with atomic_write(out / "results.csv") as f:
        f.write(text.getvalue().encode("utf-8"))
    print(f"wrote {len(rows)} overlays, masks and {out / 'results.csv'}")


def _input_images(items: list[str]) -> list[Path]:
    """The image files named on the command line, folders searched recursively; checked before any work starts."""
    paths: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            paths += find_images(item)
        elif item.exists():
            paths.append(item)
        else:
            raise NoImagesError(f"{item}: no such file or folder")
    if not paths:
        raise NoImagesError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(items)}")
    return paths


def _write_png(array, path: Path) -> None:
    with atomic_write(path) as f:
        Image.fromarray(array).save(f, format="PNG")


def _info(args: argparse.Namespace) -> None:
    from .checkpoint import checkpoint_config, load

    config = checkpoint_config(load(args.checkpoint, args.revision))
    config["calibration"] = {k: v for k, v in config["calibration"].items() if not k.endswith("_scores")}
    config["training"] = {k: v for k, v in config["training"].items() if k != "loss_curve"}
    print(json.dumps(config, indent=2))


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


class _OneLineParser(argparse.ArgumentParser):
    """Usage mistakes are bad input too: one `error:` line and exit status 2 (`--help` shows usage)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}\n")


def parser() -> argparse.ArgumentParser:
    root = _OneLineParser(prog="python -m rbd", description="Visual anomaly detection by reconstruction-based distillation.")
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
    p.add_argument("--batch-size", type=_positive_int, default=8, help="images decoded and scored together (memory: one batch)")
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
    except RBDError as err:  # explained: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return err.exit_status
    except OSError as err:  # a file that cannot be written or read
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
