"""Batch scoring on Ray: `rbd predict CKPT INPUT... --out OUT --engine ray [--address ADDR]`.

Ray Data streams the files through two stages: tasks read each file's bytes (local paths, or
URIs of any filesystem pyarrow reaches: `s3://`, `gs://`, `hdfs://`, `file://`), and a pool of
actors, each holding one loaded detector (one GPU each where the cluster has GPUs, one CPU core
each otherwise), decode, score and draw a batch at a time. The command receives the results in
input order and writes them as it writes the local engine's, so both give the same files.

A file that cannot be read or decoded becomes a result with its error, never a failed job. On a
cluster (`--address`), the workers need rbd installed, and local paths (inputs, checkpoint) must
be on storage every node sees; a Hub repo id or URIs work anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from dataclasses import asdict, fields
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator
from urllib.parse import quote

import torch

from .checkpoint import load
from .errors import EngineError, ImageReadError, InvalidInputError, NoImagesError, require_modules
from .images import MAX_SIDE, file_shape, is_image_name, read_image_for_scoring, report_files
from .outputs import ScoredFile, scored_file


def check_installed() -> None:
    """Ray and pyarrow are an extra: without them `--engine ray` says so before any work, rather than with a traceback
    once an earlier run's table is gone."""
    require_modules(("ray", "pyarrow"), "--engine ray", "ray", {"ray": "'ray[data]'"})


def is_uri(item: str) -> bool:
    return "://" in item


def list_uri(uri: str) -> list[str]:
    """The image files at a URI: the file itself, or a folder's, searched recursively (hidden ones skipped)."""
    from pyarrow import ArrowException, fs

    try:
        filesystem, path = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.File:
            return [uri]
        if info.type != fs.FileType.Directory:
            raise NoImagesError(f"{uri}: no such file or folder")
        found = filesystem.get_file_info(fs.FileSelector(path, recursive=True))
    except (ArrowException, OSError) as err:
        raise InvalidInputError(f"{uri}: cannot be listed ({err})") from err
    relative = [PurePosixPath(f.path).relative_to(PurePosixPath(path)) for f in found if f.is_file]
    # percent-encoded: a name's space, '%' or '#' would otherwise be read as URI syntax (`c%41.jpg` as `cA.jpg`)
    return [f"{uri.rstrip('/')}/{quote(r.as_posix())}" for r in sorted(filter(is_image_name, relative))]


def score_files(checkpoint: str, files: list[str], batch_size: int, address: str | None = None, revision: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> Iterator[ScoredFile]:
    """Score `files` on a local Ray instance, or on the cluster at `address`; results stream back in
    the order of `files`. Unreadable and downscaled files are reported as the local engine reports them.
    Every actor loads the checkpoint: load it once first (as the command does), so a bad one is one clear error."""
    import ray
    import ray.data
    import ray.exceptions

    _quiet_ray()
    located = str(Path(checkpoint).resolve()) if Path(checkpoint).exists() else checkpoint  # workers run elsewhere
    # Ray's core prints a line of its own as a local instance starts (its failures still raise); joining a cluster,
    # its lines are kept: they are all a user sees of an address that does not answer (Ray retries for minutes)
    with _stderr_muted() if not _joins_a_cluster(address) else contextlib.nullcontext():
        ray.init(address=address, include_dashboard=False if address is None else None, logging_level=logging.ERROR,
                 log_to_driver=False)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = context.print_on_execution_start = False
        gpus = int(ray.cluster_resources().get("GPU", 0))
        actors = gpus or max(1, int(ray.cluster_resources().get("CPU", 1)) - 1)  # one core left for reading
        items = [{"index": i, "file": f, "location": f if is_uri(f) else str(Path(f).resolve())} for i, f in enumerate(files)]
        results = (ray.data.from_items(items)
                   .map_batches(_read, batch_size=batch_size, batch_format="pyarrow")
                   .map_batches(_Scorer, fn_constructor_args=(located, revision, "cuda" if gpus else "cpu", batch_size),
                                batch_size=batch_size, batch_format="pyarrow", num_gpus=1 if gpus else 0, num_cpus=1,
                                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors)))
        skipped, notices = [], []
        for done, row in enumerate(results.iter_rows(), 1):
            notices += [row["notice"]] if row["notice"] else []
            result = ScoredFile(**{f.name: row[f.name] for f in fields(ScoredFile)})
            skipped += [result.error] if result.error else []
            yield result
            if progress is not None:
                progress(done, len(files))
    except ray.exceptions.RayError as err:  # a worker lost, out of memory...: one line, as any failure while running
        raise EngineError(f"the Ray job failed: {(str(err).strip().splitlines() or [type(err).__name__])[-1]}") from err
    finally:
        ray.shutdown()
    report_files(len(files), len(files) - len(skipped), skipped, notices)


def _quiet_ray() -> None:
    """Ray's own chatter (start-up, deprecations inside Ray, execution logs) stays out of the command's
    output; its failures still arrive as exceptions."""
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.")
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _joins_a_cluster(address: str | None) -> bool:
    """Whether `ray.init(address)` joins a running cluster rather than starting a local instance: given an address,
    or without one, where Ray finds one in RAY_ADDRESS (`ray job submit` sets it) or a cluster `ray start` left running."""
    current = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray" / "ray_current_cluster"
    return address is not None or bool(os.environ.get("RAY_ADDRESS")) or current.exists()


@contextlib.contextmanager
def _stderr_muted():
    """The process's standard error (file descriptor 2, which Ray's C++ core writes to) sent nowhere meanwhile."""
    sys.stderr.flush()
    saved, nowhere = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(nowhere, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(nowhere)
        os.close(saved)


def _read(batch):
    """Ray Data task: each file's bytes, or why they cannot be had."""
    import pyarrow as pa
    from pyarrow import fs

    rows = batch.to_pylist()
    for row in rows:
        row["data"], row["error"] = None, None
        try:
            if is_uri(row["location"]):
                filesystem, path = fs.FileSystem.from_uri(row["location"])
                with filesystem.open_input_stream(path) as stream:
                    row["data"] = stream.readall()
            else:
                row["data"] = Path(row["location"]).read_bytes()
        except (OSError, pa.ArrowException) as err:
            row["error"] = f"{row['file']}: cannot be read ({err})"
    return pa.Table.from_pylist(rows)


class _Scorer:
    """Ray Data actor: one loaded detector, which decodes, scores and draws a batch of files at a time.
    Files are decoded by rbd's own reader (16-bit, EXIF, huge images as in the local engine) from a
    scratch copy; notices name the file the user knows."""

    def __init__(self, checkpoint: str, revision: str | None, device: str, batch_size: int):
        if device == "cpu":
            torch.set_num_threads(1)  # each actor has one core: the pool's size is the parallelism
        self.detector = load(checkpoint, revision, device)
        self.batch_size = batch_size
        self.scratch = Path(tempfile.mkdtemp(prefix="rbd-ray-"))

    def __del__(self):
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __call__(self, batch):
        import pyarrow as pa

        rows = batch.to_pylist()
        outcomes: dict[int, tuple[ScoredFile, str | None]] = {}
        decoded = []
        for row in rows:
            if row["error"]:
                outcomes[row["index"]] = ScoredFile(row["file"], error=row["error"]), None
                continue
            try:
                image, notice, size = self._decode(row["file"], row["data"])
            except ImageReadError as err:
                outcomes[row["index"]] = ScoredFile(row["file"], error=str(err)), None
                continue
            decoded.append((row, image, notice, size))
        predictions = self.detector.predict_batch([image for _, image, _, _ in decoded], self.batch_size) if decoded else []
        for (row, image, notice, size), prediction in zip(decoded, predictions):
            outcomes[row["index"]] = scored_file(row["file"], image, prediction, self.detector.calibration, size), notice
        return pa.Table.from_pylist([{"index": index, **asdict(result), "notice": notice}
                                     for index, (result, notice) in sorted(outcomes.items())])

    def _decode(self, file: str, data: bytes):
        """The image as scored, its notice (if downscaled) and the file's upright (height, width). The scratch
        copy keeps only the name's suffix: a URI's percent-encoded name can be too long for a file name."""
        copy = self.scratch / f"{uuid.uuid4().hex}{PurePosixPath(file).suffix[:16]}"  # a name no message holds otherwise
        try:
            copy.write_bytes(data)
            image, notice = read_image_for_scoring(copy, MAX_SIDE)
            return image, notice and notice.replace(copy.name, PurePosixPath(file).name), file_shape(copy)
        except (ImageReadError, OSError) as err:  # one file's problem (a full scratch disk too), never the job's
            raise ImageReadError(str(err).replace(str(copy), file)) from err
        finally:
            copy.unlink(missing_ok=True)
