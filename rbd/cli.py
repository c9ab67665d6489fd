"""Command line: `rbd train | evaluate | predict | export | info` (or `python -m rbd ...`).

Other tools call these commands, so their arguments, outputs and exit statuses are a contract
(see README): 0 on success, 2 for usage mistakes and bad input (one line, `error: ...`), 1 for a
failure while running, such as a Hub that cannot be reached. Long work shows a progress bar on
stderr unless `--quiet`.
"""

from __future__ import annotations

import argparse
import csv
import errno
import inspect
import io
import json
import os
import sys
import tempfile
import warnings
from dataclasses import fields
from itertools import compress
from pathlib import Path, PurePosixPath
from typing import Callable
from urllib.parse import unquote, urlparse

from PIL import Image
from tqdm import tqdm

from . import __version__, distributed
from .backbones import BACKBONES, offline_backbones
from .checkpoint import load, save, settings, stored_config, writable_target
from .datasets import training_folder
from .detector import OUT_OF_DOMAIN_MEANS, predict_files
from .errors import InvalidInputError, NoImagesError, RBDError
from .evaluate import MISRANKED_COUNT, evaluate, evaluation_picture, metric_text
from .files import atomic_write
from .images import IMAGE_EXTENSIONS, file_shape, find_images
from .model import ModelConfig
from .notices import notify, some
from .outputs import CSV_COLUMNS, PREDICTED, ScoredFile, fitting_name, marked, output_names, picture_kind, picture_names, png_bytes, scored_file
from .ray_engine import check_installed, is_uri, list_uri, score_files
from .runtime import device_name_parts
from .thresholds import describe
from .train import Progress, TrainConfig, train
from .uploads import unique_name, unsuffixed


def _train(args: argparse.Namespace) -> None:
    """Under torchrun every process runs this; rank 0 reports, calibrates and saves (distributed.py)."""
    writable_target(_writable(args.out, "--out"))  # refuse a bad --out now, not after training
    model_config = ModelConfig(backbone=args.backbone, image_size=args.image_size)
    config = TrainConfig(epochs=args.epochs, max_minutes=args.max_minutes, seed=args.seed, device=args.device)
    folder = training_folder(args.data)
    with distributed.process_group(args.device) as processes:
        if processes.is_main:
            print(f"training on {folder}" + (f" with {processes.size} processes" if processes.size > 1 else ""), file=sys.stderr)
        with _Progress(args, "step", "training", disable=not processes.is_main) as progress:

            def report(p: Progress) -> None:  # the budget is epochs or minutes: its total in steps is projected
                progress(p.step, max(p.step, round(p.step / p.fraction)), epoch=f"{p.epoch:.1f}", loss=f"{p.loss:.4f}")

            detector = train(folder, model_config, config, progress=report)
        if processes.is_main:
            save(detector, args.out)
            print(f"saved {args.out}: {describe(detector.calibration)}")


def _evaluate(args: argparse.Namespace) -> None:
    if args.json is not None and _writable(args.json, "--json").is_dir():
        raise InvalidInputError(f"--json {args.json} is a folder, not a file")
    pictures = _output_folder(args.misranked, "--misranked") if args.misranked is not None else None
    if pictures and pictures.resolve().is_relative_to(Path(args.data).resolve()):
        raise InvalidInputError(f"--misranked {pictures} is inside {args.data}: its pictures would be test images of the next evaluation")
    if pictures and args.json is not None and pictures.resolve().is_relative_to(Path(args.json).resolve()):
        raise InvalidInputError(f"--misranked {pictures} is the --json file {args.json}, or inside it: name a folder for the "
                                "pictures and a file for the metrics")  # found only once the evaluation was done
    detector = load(args.checkpoint, args.revision, args.device)
    with _Progress(args, "image", "evaluating") as progress:
        evaluation = evaluate(detector, args.data, progress=progress)
    result = evaluation.summary()
    for key, value in result.items():
        print(f"{key:<16} {metric_text(key, value)}")
    if args.json:
        _write(json.dumps(result, indent=2).encode(), Path(args.json))
    if pictures:
        good, defective = evaluation.misranked()
        drawn = {fitting_name(f"{kind}_{rank}_{Path(row['file']).stem}") + ".png": evaluation_picture(detector, args.data, row["file"])
                 for kind, rows in (("good", good), ("defective", defective)) for rank, row in enumerate(rows, 1)}
        pictures.mkdir(parents=True, exist_ok=True)
        for earlier in pictures.glob("*.png"):  # else they would pass for this evaluation's
            if picture_kind(earlier, pictures) == "misranked":
                earlier.unlink()
        taken = {entry.name.casefold() for entry in pictures.iterdir()}
        for name, picture in drawn.items():  # numbered past a file of the user's that has the name
            named = unique_name(name, taken)
            _write(marked(png_bytes(picture), "misranked", pictures, named), pictures / named)
        wrong = sum(evaluation.ranked_wrong_against(row) > 0 for row in good + defective)
        print(f"wrote pictures of the {len(good)} highest-scoring good and {len(defective)} lowest-scoring defective images to "
              f"{pictures}: {wrong} of them ranked wrong against an image of the other kind")


RESULT_TABLES = ("results.csv", "results.parquet")  # what `predict` writes into --out beside its pictures


def _predict(args: argparse.Namespace) -> None:
    out = _output_folder(args.out, "--out")
    if args.address is not None and args.engine != "ray":
        raise InvalidInputError("--address names a Ray cluster: it goes with --engine ray")
    if args.engine == "ray":
        check_installed()
        if args.device != "auto":
            raise InvalidInputError("--device goes with the local engine: --engine ray gives each actor a GPU where the "
                                    "cluster has them, else a CPU")
    named = _input_images(args.images, uris=args.engine == "ray", leave_out=out)
    files = [file for file, _ in named]
    undecodable = [file for file in files if not _is_utf8(file)] if args.engine == "ray" else []
    if undecodable:  # Ray's tables hold text: such a name failed after the pictures were written
        raise InvalidInputError(f"--engine ray takes file names in UTF-8 only, not {some(undecodable, 3)}: rename them, "
                                "or score them with the local engine")
    names: dict[str, list[str]] = {}  # a file named twice is scored twice, its outputs named each time as then
    for (file, _), name in zip(named, output_names([name for _, name in named])):
        names.setdefault(file, []).append(name)
    ours = _earlier_pictures(out, unchanged=True)
    pictures = [picture for file_names in names.values() for name in file_names for picture in picture_names(name)]
    users = [picture for picture in pictures if _present(out / picture) and not ours(out / picture)]
    users += [table for table in RESULT_TABLES if _present(out / table) and not _is_results_table(out / table)]
    users += sorted({folder.as_posix() for picture in pictures for folder in PurePosixPath(picture).parents  # a file where
                     if folder.parts and _present(out / folder) and not (out / folder).is_dir()})       # a folder goes
    if users:  # a ground-truth mask named as this run names its masks, or a report of the user's, say: never written over
        raise InvalidInputError(f"--out {out} holds {len(users)} file(s) rbd did not write where this run writes its pictures "
                                f"and tables ({some(users, 3)}): choose another --out, or move them")
    # Ray's actors load their own (on a GPU each, where the cluster has them): this copy only checks it, on the CPU
    detector = load(args.checkpoint, args.revision, "cpu" if args.engine == "ray" else args.device)
    written: list[tuple[ScoredFile, str | None]] = []  # each result and the output name of its pictures (None: unreadable)
    tables_cleared = False
    with _Progress(args, "image", "scoring") as progress:  # a batch at a time: decode, score, write, forget
        if args.engine == "ray":
            results = score_files(args.checkpoint, files, args.batch_size, args.address, args.revision, progress)
        else:
            results = (scored_file(str(path), image, prediction, detector.calibration, file_shape(path))
                       for path, image, prediction in predict_files(detector, files, args.batch_size, progress=progress))
        for result in results:
            name = None
            if result.error is None:
                name = names[result.file].pop(0)
                if not tables_cleared:  # the first picture: an earlier run's tables go, they would describe pictures
                    for table in RESULT_TABLES:  # this run replaces (a run that scores nothing keeps them)
                        (out / table).unlink(missing_ok=True)
                    tables_cleared = True
                out.mkdir(parents=True, exist_ok=True)  # its pictures are marked with it (and a run that scores nothing makes none)
                for picture, kind, file_name in zip((result.overlay_png, result.mask_png), PREDICTED, picture_names(name)):
                    _write(marked(picture, kind, out, file_name), out / file_name)
            written.append((result, name))
    scored = [(result, name) for result, name in written if name is not None]
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(result.csv_row(name) for result, name in scored)
    _write(text.getvalue().encode("utf-8", "surrogateescape"), out / "results.csv")  # a file name not in UTF-8 as its bytes
    if args.engine == "ray":
        _write(_parquet(written), out / "results.parquet")
    print(f"wrote {len(scored)} overlay(s), mask(s) and {out / 'results.csv'}" + (" and results.parquet" if args.engine == "ray" else ""))
    unfamiliar = sum(result.out_of_domain for result, _ in scored)
    if unfamiliar:
        notify(f"{unfamiliar} of {len(scored)} image(s) look unlike the model's training images (out_of_domain in results.csv): "
               f"{OUT_OF_DOMAIN_MEANS}")


def _parquet(results: list[tuple[ScoredFile, str | None]]) -> bytes:
    """Every file's row with its pictures' names, unreadable ones with their error instead, as a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [field.name for field in fields(ScoredFile) if not field.name.endswith("_png")]
    rows = []
    for result, name in results:
        overlay, mask = picture_names(name) if name else (None, None)
        out_of_domain = result.out_of_domain if result.familiarity is not None else None  # as results.csv's column
        rows.append({**{c: getattr(result, c) for c in columns}, "out_of_domain": out_of_domain, "overlay": overlay, "mask": mask})
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue().to_pybytes()


def _export(args: argparse.Namespace) -> None:
    from .export import check_installed, export_onnx, onnx_target  # imports the ONNX exporter only for this command

    check_installed()
    out = _writable(args.out, "--out")
    try:
        onnx_target(out)
    except InvalidInputError as err:
        raise InvalidInputError(f"--out {err}") from err
    detector = load(args.checkpoint, args.revision)
    detector.model  # noqa: B018 - an ONNX export has none: refused before "exporting" is said
    if not args.quiet:
        print(f"exporting {args.checkpoint} to ONNX (a minute or two on a CPU)", file=sys.stderr)
    export_onnx(detector, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): image (batch, 3, height, width) in [0, 1] -> "
          f"anomaly_map, score{', familiarity' if detector.config.memory_size else ''}; calibration in its metadata. "
          f"Feed it images resized as rbd does (short side {detector.config.image_size}, long side at most "
          f"{detector.config.max_aspect:g} times that, both multiples of {detector.config.input_multiple}; other sides "
          "are refused); rbd.load() of the file does this for you")


def _info(args: argparse.Namespace) -> None:
    config = stored_config(args.checkpoint, args.revision)
    settings(config, args.checkpoint)  # what `load` refuses is refused here too (a NaN threshold printed as NaN, exit 0)
    config["calibration"] = {k: v for k, v in config["calibration"].items() if not k.endswith("_scores")}
    config["training"] = {k: v for k, v in (config.get("training") or {}).items() if k != "loss_curve"}  # none: made by hand
    print(json.dumps(config, indent=2))


def _input_images(items: list[str], uris: bool = False, leave_out: Path | None = None) -> list[tuple[str, str]]:
    """The image files named on the command line, folders searched recursively, and with `uris` (the
    Ray engine) files and folders of any filesystem pyarrow reaches; checked before any work starts.
    Each comes with the name its outputs take: its path in the folder named, less its suffix
    (`good/000`), so that a folder's tree is kept; a file named itself goes by its stem. Found in a
    folder searched or named themselves (a shell's `*.png`), the files under `leave_out` (the output folder) are not
    inputs where an earlier run wrote them there (`_earlier_pictures`: a user's own `a_mask.png` beside `a.jpg` is an
    input), with a notice."""
    skipped = leave_out.resolve() if leave_out is not None else None
    ours = _earlier_pictures(leave_out) if leave_out is not None else None

    left_out: dict[str, int] = {}  # by the folder named, or for the files named one by one

    def inputs(item: str, found: list[Path]) -> list[bool]:
        """Which of the files `found` under `item` (a folder or a folder's address named, or "files named") are inputs."""
        if skipped is None:
            return [True] * len(found)
        # the pictures an earlier run wrote into --out are no inputs, the user's files there are (an --out inside the
        # folder named left all of them out, and said they came from an earlier run)
        chosen = [not (path.resolve().is_relative_to(skipped) and ours(path)) for path in found]
        if not all(chosen):
            left_out[item] = left_out.get(item, 0) + chosen.count(False)
        return chosen

    files: list[tuple[str, str]] = []
    for item in items:
        if uris and is_uri(item):
            folder = item.rstrip("/") + "/"
            listed = list_uri(item)
            if item.startswith("file://"):  # on this machine: its --out is left out as a local folder's
                local = [Path(unquote(urlparse(uri).path)) for uri in listed]
                listed = list(compress(listed, inputs(item, local)))
            files += [(uri, unsuffixed(unquote(uri[len(folder):] if uri.startswith(folder) else PurePosixPath(uri).name)))
                      for uri in listed]
        elif Path(item).is_dir():
            found = find_images(item)
            files += [(str(path), unsuffixed(path.relative_to(item).as_posix())) for path in compress(found, inputs(item, found))]
        elif Path(item).exists():  # named itself (a shell's `*.png`): left out too where an earlier run wrote it
            files += [(str(Path(item)), Path(item).stem)] if all(inputs("files named", [Path(item)])) else []
        else:
            raise NoImagesError(f"{item}: no such file or folder")
    for item, count in left_out.items():  # once each: a shell's `*.png` after a 500-image run named 1000 of them
        notify(f"{item}: left out {count} file(s) in --out {leave_out}, there from an earlier run")
    if not files:
        raise NoImagesError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(items)}")
    return files


def _is_results_table(path: Path) -> bool:
    """Whether a file named as one of RESULT_TABLES is one an earlier `predict` wrote (all its columns are rbd's): any
    other is the user's own report, which a run must neither delete nor replace."""
    try:
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8", errors="surrogateescape") as table:
                columns = next(csv.reader(table), [])
        else:
            import pyarrow.parquet as pq

            columns = pq.read_schema(path).names
    except (OSError, csv.Error, UnicodeDecodeError, ValueError, ImportError):  # unreadable, not a table, or no pyarrow
        return False
    return {"file", "score", "verdict"} <= set(columns) <= {*CSV_COLUMNS, *(f.name for f in fields(ScoredFile))}  # an older rbd's too


def _is_utf8(name: str) -> bool:
    """Whether a file name is text in UTF-8 (Python keeps another's bytes as surrogates, which no text table holds)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _present(path: Path) -> bool:
    """Whether something is at `path`, a broken link too (a write there would follow it)."""
    return path.exists() or path.is_symlink()


def _earlier_pictures(out: Path, unchanged: bool = False) -> Callable[[Path], bool]:
    """Whether a file in `out` is a picture an earlier `predict` wrote there: marked so (`rbd.outputs.picture_kind`), or
    named in the results.csv it left (an rbd before the mark, or a copy of the folder, whose marks name the original).
    `unchanged`, where a run would write over it: listed, only if not changed since that table was written, after its
    pictures (a mask the user corrected in an image editor, which drops the mark, was written over as a label)."""
    listed, written = set(), None
    try:
        with open(out / "results.csv", newline="", encoding="utf-8", errors="surrogateescape") as table:
            written = os.fstat(table.fileno()).st_mtime_ns
            listed = {(out / row[column]).resolve() for row in csv.DictReader(table) for column in ("overlay", "mask") if row.get(column)}
    except (OSError, csv.Error, UnicodeDecodeError):  # none, or not one of rbd's
        pass

    def unchanged_since(path: Path) -> bool:
        try:
            return path.stat().st_mtime_ns <= written
        except OSError:
            return False
    return lambda path: picture_kind(path, out) in PREDICTED or (path.resolve() in listed and (not unchanged or unchanged_since(path)))


def _writable(path: str, option: str) -> Path:
    """`path`, checked to be creatable before the long work starts: a bad output path is bad input
    (exit 2), while a write that fails later (a full disk) is a failure while running (exit 1)."""
    path = Path(path)  # never empty (`_named`)
    if path.is_symlink() and not path.exists():
        raise InvalidInputError(f"{option} {path} is a link to {os.readlink(path)}, which does not exist")
    existing = next(p for p in [path, *path.parents] if p.exists())  # the path itself too: an existing output folder
    if existing == path and not path.is_dir():  # an existing file is replaced: its folder is written
        existing = path.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK) or not _takes_a_file(existing):
        raise InvalidInputError(f"{option} {path}: {existing} is not a folder this user can write in")
    return path


def _takes_a_file(folder: Path) -> bool:
    """Whether a file can be made in `folder`, tried: root may write anywhere by its permissions, yet not in /proc.
    A full disk or quota is no bad path (it fails the write itself, a failure while running)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError as err:
        return err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR)


def _output_folder(path: str, option: str) -> Path:
    """`path` checked (see `_writable`) to be a folder that can be made or written in."""
    folder = _writable(path, option)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"{option} {folder} is a file, not a folder")
    return folder


def _write(data: bytes, path: Path) -> None:
    with atomic_write(path) as f:
        f.write(data)


class _Progress:
    """A `progress(done, total)` callback that draws a bar on stderr (counts, rate, time left) from its first call: an
    error said before any progress (a test set's layout, after a notice) stood on the line of an empty bar. `--quiet`
    turns it off; `postfix` adds figures after the counts (training's epoch and loss)."""

    def __init__(self, args: argparse.Namespace, unit: str, description: str, disable: bool = False):
        self.settings = dict(desc=description, unit=unit, disable=args.quiet or disable, file=sys.stderr, dynamic_ncols=True)
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int, **postfix: str) -> None:
        if self.bar is None:
            self.bar = tqdm(**self.settings)
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _named(text: str) -> str:
    """A path argument, never empty: an empty one (an unset shell variable, `--out "$OUT"`) is the current folder to
    Path(""), which was then trained on, scored whole or written into (replacing its results.csv). A leading ~ is the
    home folder, also where the shell leaves it (`--out=~/results`): outputs went into a folder named ~ here."""
    if not text:
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?): name a path (. for the current folder)")
    return os.path.expanduser(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _device_name(text: str) -> str:
    try:
        device_name_parts(text)
    except InvalidInputError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


def _default(api: Callable, name: str):
    """A setting's default as the config class or function declares it, so the command line never repeats it."""
    return inspect.signature(api).parameters[name].default


class _OneLineParser(argparse.ArgumentParser):
    """Usage mistakes are bad input too: one `error:` line and exit status 2 (`--help` shows usage)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}\n")


def parser() -> argparse.ArgumentParser:
    prog = "rbd" if Path(sys.argv[0]).name == "rbd" else "python -m rbd"  # the console script, or the module
    root = _OneLineParser(prog=prog, description="Visual anomaly detection by reconstruction-based distillation.",
                          epilog="Exit status: 0 on success, 2 for usage mistakes and bad input, 1 for a failure while "
                                 "running (for example a Hugging Face Hub that cannot be reached), 130 when interrupted (Ctrl-C).")
    root.add_argument("--version", action="version", version=f"rbd {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quiet = _OneLineParser(add_help=False)
    quiet.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    revision = _OneLineParser(add_help=False)
    revision.add_argument("--revision", default=None, help="branch, tag or commit of a Hub repo (default: main)")
    scoring = _OneLineParser(add_help=False)
    scoring.add_argument("--device", default="auto", type=_device_name,
                         help="where to score: auto, cpu, cuda or cuda:N (one GPU of several); auto picks a CUDA GPU when there is "
                              "one (default: %(default)s)")

    p = commands.add_parser("train", parents=[quiet], help="train on normal images, write a checkpoint folder")
    p.add_argument("data", type=_named, help="MVTec-layout category (uses train/good) or any folder of normal images, searched recursively")
    p.add_argument("--out", required=True, type=_named, help="checkpoint folder to write (new, empty, or an rbd checkpoint to replace)")
    p.add_argument("--backbone", default=_default(ModelConfig, "backbone"), choices=list(BACKBONES), metavar="NAME",
                   help=f"frozen ImageNet teacher: %(choices)s (default: %(default)s; {', '.join(offline_backbones())} work "
                        "offline, the others download from the Hugging Face Hub once)")
    p.add_argument("--image-size", type=int, default=_default(ModelConfig, "image_size"),
                   help="short side of the model input in pixels, a multiple of 32 for the default layers, at most 1024 (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=_default(TrainConfig, "epochs"),
                   help="passes over the images; training stops at this or --max-minutes, whichever comes first "
                        "(default: %(default)s, no limit)")
    p.add_argument("--max-minutes", type=float, default=_default(TrainConfig, "max_minutes"),
                   help="time budget in minutes for the whole training, calibration included; inf for none, with --epochs "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=_default(TrainConfig, "seed"), help="random seed (default: %(default)s)")
    p.add_argument("--device", default=_default(TrainConfig, "device"), type=_device_name,
                   help="where to train: auto, cpu, cuda or cuda:N (one GPU of several); auto picks a CUDA GPU when "
                        "there is one (default: %(default)s)")
    p.set_defaults(run=_train)

    p = commands.add_parser("evaluate", parents=[quiet, revision, scoring], help="metrics on an MVTec-layout category")
    p.add_argument("data", type=_named, help="MVTec-layout category: test/good, test/<defect>, optional ground_truth/<defect> masks")
    p.add_argument("--checkpoint", required=True, type=_named, help="checkpoint folder, a zip of one, ONNX export (.onnx) or Hub repo id (owner/name)")
    p.add_argument("--json", default=None, type=_named, help="also write the metrics to this JSON file (default: none)")
    p.add_argument("--misranked", default=None, type=_named, metavar="DIR",
                   help=f"also write the {MISRANKED_COUNT} highest-scoring good and {MISRANKED_COUNT} lowest-scoring defective "
                        "test images under their heat maps, truth masks outlined, to this folder: where the ranking "
                        "goes wrong, or comes closest (default: none)")
    p.set_defaults(run=_evaluate)

    p = commands.add_parser("predict", parents=[quiet, revision, scoring], help="score images, write overlays, masks and results.csv")
    p.add_argument("checkpoint", type=_named, help="checkpoint folder, a zip of one, ONNX export (.onnx) or Hub repo id (owner/name)")
    p.add_argument("images", nargs="+", type=_named, help="image files or folders (searched recursively); with --engine ray also "
                                             "URIs pyarrow reaches (s3://, gs://, hdfs://, file://)")
    p.add_argument("--out", required=True, type=_named, help="folder for the overlays, masks and results.csv")
    p.add_argument("--batch-size", type=_positive_int, default=_default(predict_files, "batch_size"),
                   help="images decoded and scored together; memory holds one batch (default: %(default)s)")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: this process; ray: Ray Data with a pool of actors, one detector (and GPU, where the "
                        "cluster has them) each, also writing results.parquet; --device then stays auto (default: %(default)s)")
    p.add_argument("--address", default=None,
                   help="with --engine ray, the Ray cluster to join (default: none, start a local Ray instance)")
    p.set_defaults(run=_predict)

    p = commands.add_parser("export", parents=[quiet, revision], help="write a checkpoint as one ONNX file for deployment")
    p.add_argument("checkpoint", type=_named, help="checkpoint folder, a zip of one or Hub repo id (owner/name)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="file format: %(choices)s (default: %(default)s)")
    p.add_argument("--out", required=True, type=_named, help="file to write, ending in .onnx")
    p.set_defaults(run=_export)

    p = commands.add_parser("info", parents=[revision], help="print a checkpoint's config and calibration as JSON, as stored (no model is built)")
    p.add_argument("checkpoint", type=_named, help="checkpoint folder, a zip of one, ONNX export (.onnx) or Hub repo id (owner/name)")
    p.set_defaults(run=_info)
    return root


def main(argv: list[str] | None = None) -> int:
    # A file name not in UTF-8 (held as surrogates) printed by a strict stream (en_US.UTF-8's) was a traceback after the
    # work was done: such streams escape it while the command runs (C.UTF-8's write its bytes, as they are)
    strict = [stream for stream in (sys.stdout, sys.stderr) if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure")]
    for stream in strict:
        stream.reconfigure(errors="backslashreplace")
    try:
        return _run(parser().parse_args(argv))
    finally:
        for stream in strict:
            stream.reconfigure(errors="strict")


def _run(args: argparse.Namespace) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            # past Pillow's pixel guard rbd reads an image downscaled and says so (`read_image_for_scoring`): Pillow's
            # own warning came again for each time the file was opened, and told of an attack
            warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
            # tqdm.write keeps a warning from tearing a progress bar line
            warnings.showwarning = lambda message, *_, **__: tqdm.write(f"warning: {message}", file=sys.stderr)
            args.run(args)
    except RBDError as err:  # explained: one line, no traceback (a file name not in UTF-8 in it escaped, on any stream)
        print(f"error: {err}".encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr)
        return err.exit_status
    except BrokenPipeError:  # the reader stopped early (`| head`): nothing to report, and nothing left to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:  # a read or write that failed while running (outputs were checked before)
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: one line, as for any stop; 130 as a shell reports it
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
