"""Checkpoints: a folder with `model.safetensors` (student weights) and `config.json`.

The teacher is not stored: its name is in the config and its ImageNet weights come from
their own source (see backbones.py), which keeps checkpoints small. Nothing is pickled, so a
checkpoint from a stranger cannot run code. The same folder is a Hugging Face Hub model repo:
`load("owner/name")` downloads both files from one commit through `snapshot_download`,
`push_to_hub` uploads through `upload_folder` with a model card whose metadata (licence,
teacher as base model, evaluation results) the Hub shows.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .calibration import Calibration, percent
from .detector import Detector
from .backbones import BACKBONES, hub_repo, pretrained_name
from .errors import BackboneError, CheckpointError, HubError, UploadError
from .evaluate import SUMMARY_NAMES, Evaluation, metric_text
from .files import sync_files, sync_folder
from .notices import some
from .train import budget_notes
from .uploads import extract_zip
from .model import RBD, ModelConfig

FORMAT = "rbd-checkpoint"
FORMAT_VERSION = 4  # 4: the map less its normal level by distance from the edge (ModelConfig.edge_bands, edge_profile)
READABLE_VERSIONS = (1, 2, 3, 4)  # 1: the student alone (its map is the plain mean of the distances);
# 2: the student, the patch memory and the normal statistics, the map ranking images; 3: the memory's own map taking
# part in ranking images (ModelConfig.score_from, score_affine)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)  # all a checkpoint folder holds
READ_TRIES = 3  # reads of a folder that changes while it is read (`_one_save`)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_repo_id(text: str) -> bool:
    """Whether `text` looks like a Hub model repo id, `owner/name`."""
    return bool(_REPO_ID.match(text))


def checkpoint_config(detector: Detector, metrics: dict | Evaluation | None = None) -> dict:
    """The config.json of `detector`, with `metrics` (a dict, or an `rbd.evaluate` result: its `summary()`)."""
    if isinstance(metrics, Evaluation):  # a bare "Object of type Evaluation is not JSON serializable"
        metrics = metrics.summary()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rbd_version": __version__,
        "model": {**detector.config.to_dict(), "backbone": pretrained_name(detector.config.backbone)},  # with its tag
        "threshold": float(detector.threshold),  # also a numpy scalar set by hand
        "calibration": detector.calibration.to_dict(),
        "training": detector.training,
        "metrics": _as_json(metrics or detector.metrics),
    }


def _as_json(value):
    """`value` as JSON takes it: numpy numbers as Python's (json.dumps refused np.float32), NaN or infinite (no
    figure) as null (json.dumps wrote a bare NaN, which is not JSON)."""
    if isinstance(value, dict):
        return {str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save(detector: Detector, directory: str | Path, metrics: dict | Evaluation | None = None) -> Path:
    """Write the checkpoint folder; a half-written one never takes the place of a good one.

    Everything is written and synced in a staging folder next to the target, which is then
    renamed into place. Only an existing rbd checkpoint (or an empty folder) is replaced, so a
    mistyped --out never deletes someone's files.
    """
    directory = writable_target(directory)
    check_calibration(float(detector.threshold), detector.calibration, "the detector")  # what `load` would refuse is not
    weights = {k: v.detach().cpu().contiguous() for k, v in detector.model.trained_state().items()}  # written over a good
    _check_tensors(weights, weights, "the detector (one rbd.train has not made?)")                  # checkpoint
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_aside(directory), dir=directory.parent))
    retired = directory.with_name(f"{_retired_prefix(directory)}{uuid.uuid4().hex[:8]}")
    try:
        config = checkpoint_config(detector, metrics)
        try:
            save_file(weights, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
        except SafetensorError as err:  # its I/O errors (a full disk) are no OSError: said as one, like every other write
            raise OSError(f"could not write {WEIGHTS_FILE} ({err})") from err
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        model_card(config).save(staging / CARD_FILE)
        for path in staging.iterdir():
            path.chmod(0o644)  # shareable like any model file, not private like a temp file
        staging.chmod(0o755)
        sync_files(staging)
        if directory.exists():
            directory.rename(retired)
        staging.rename(directory)
        sync_folder(directory.parent)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if retired.exists() and not directory.exists():  # stopped between the two renames (Ctrl-C): the old one back
            retired.rename(directory)
    return directory


def _aside(directory: Path) -> str:
    """The start of the names `save` writes beside `directory` (its staging folder, the checkpoint it replaces): short
    whatever the folder's name is (one near the file system's 255 bytes failed the save after a whole training) and
    still its own (a long one's start and a hash of it)."""
    name = directory.name
    if len(os.fsencode(name)) <= 241:  # `.{name}.old-` and 8 characters: 255 bytes at most
        return f".{name}."
    return f".{name[:32]}-{hashlib.sha256(os.fsencode(name)).hexdigest()[:8]}."


def _retired_prefix(directory: Path) -> str:
    """The start of the name `save` sets a checkpoint aside under while it replaces it."""
    return f"{_aside(directory)}old-"


def _retired_copy(path: Path) -> Path | None:
    """The checkpoint `save` set aside under another name as it replaced the missing folder `path`, if one is there."""
    if path.exists() or not path.name:
        return None
    kept = sorted(path.parent.glob(f"{glob.escape(_retired_prefix(path))}*"))
    return next((p for p in kept if (p / CONFIG_FILE).is_file()), None)


def writable_target(directory: str | Path) -> Path:
    """`directory` as an absolute path `save` may write, checked before any work: only a new or
    empty folder or an existing rbd checkpoint holding nothing else, never a folder of someone's files
    (a clone of a Hub repo keeps `.git` beside the checkpoint; an evaluation may have written there)."""
    directory = Path(directory).resolve()
    here = _current_folder()
    if here is not None and here.is_relative_to(directory):  # replacing it would leave the shell in a deleted folder
        raise CheckpointError(f"{directory} is the current folder or holds it: save into a folder of its own (e.g. ./model)")
    parent = next(p for p in directory.parents if p.exists())  # where the staging folder goes, made if need be
    if not os.access(parent, os.W_OK | os.X_OK):  # else training would run to its end and then fail to save
        raise CheckpointError(f"cannot write in {parent}: choose a folder you can write to")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())) and not _is_checkpoint(directory):
        raise CheckpointError(f"{directory} exists and is not an rbd checkpoint: choose another folder")
    others = sorted(p.name for p in directory.iterdir() if p.name not in CHECKPOINT_FILES) if directory.is_dir() else []
    if others:
        raise CheckpointError(f"{directory} holds other files beside its checkpoint ({some(others)}), which "
                              "replacing it would delete: choose another folder")
    return directory


def _current_folder() -> Path | None:
    """The process's working folder; None where it was deleted (a save elsewhere is then no risk to it)."""
    try:
        return Path.cwd()
    except FileNotFoundError:
        return None


def _is_checkpoint(folder: Path) -> bool:
    """Whether `folder` holds an rbd checkpoint, of any format version (one this version cannot read too)."""
    try:
        return json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8-sig")).get("format") == FORMAT
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False


def load(path_or_repo_id: str | Path, revision: str | None = None, device: str | torch.device = "cpu") -> Detector:
    """A `Detector` from a local checkpoint folder, a zip of one (its files at the top or in a folder), an ONNX export
    (`.onnx`, run by onnxruntime) or, if no such folder or file exists, a Hub model repo id."""
    kind, where = _locate(path_or_repo_id, revision)
    if kind == "onnx":
        from .onnx_runtime import load_onnx  # onnxruntime is needed only here

        return load_onnx(where, device)
    if kind == "hub":
        config_path, weights_path = _named_on_hub(where, revision)
        with _named_in_repo(config_path.parent, where, revision):
            return _from_files(config_path, weights_path, device)
    if kind == "zip":
        with _unzipped(where) as folder:
            return _from_files(folder / CONFIG_FILE, folder / WEIGHTS_FILE, device)
    return _from_files(where / CONFIG_FILE, where / WEIGHTS_FILE, device)


def stored_config(path_or_repo_id: str | Path, revision: str | None = None) -> dict:
    """A checkpoint's config as it was written (its format and rbd versions, settings, calibration, training),
    read without building the network, so that `rbd info` needs no teacher weights and, for a local folder or
    .onnx file, no intact weights file (a Hub repo's config comes with its weights, from one commit: `_download`)."""
    kind, where = _locate(path_or_repo_id, revision)
    if kind == "onnx":
        from .onnx_runtime import OnnxNetwork

        return parse_config(OnnxNetwork(where).metadata, where)
    if kind == "hub":
        config_path = _named_on_hub(where, revision)[0]
        with _named_in_repo(config_path.parent, where, revision):
            return read_config(config_path)
    if kind == "zip":
        with _unzipped(where) as folder:
            return read_config(folder / CONFIG_FILE)
    return read_config(where / CONFIG_FILE)


@contextmanager
def _named_as(folder: Path, name: str) -> Iterator[None]:
    """Errors about the files of `folder` (a Hub repo's commit in the local cache, a zip's extracted checkpoint) name
    them as the user knows them (`owner/name@revision/model.safetensors`, `model.zip/config.json`): the folder is
    the server's, and an app would show it."""
    try:
        yield
    except CheckpointError as err:
        raise CheckpointError(str(err).replace(str(folder), name)) from err


def _named_in_repo(snapshot: Path, repo_id: str, revision: str | None):
    """`_named_as` for a Hub repo's files, read from `snapshot` (its commit in the local cache)."""
    return _named_as(snapshot, _repo_name(repo_id, _checked_revision(revision)))


@contextmanager
def _unzipped(zip_path: Path) -> Iterator[Path]:
    """The checkpoint a zip holds (the app's "Download the active model", or a zipped `rbd train --out` folder: its
    config.json beside its weights, at the zip's top or in a folder), extracted into a temporary folder while the
    block runs."""
    with tempfile.TemporaryDirectory() as temporary:
        try:
            files = set(extract_zip(zip_path, temporary))
        except UploadError as err:  # a damaged zip is a checkpoint that cannot be loaded, as every other
            raise CheckpointError(str(err)) from err
        configs = [file for file in files if file.name == CONFIG_FILE and file.with_name(WEIGHTS_FILE) in files]
        if len(configs) != 1:
            raise CheckpointError(f"{zip_path} holds {'no' if not configs else 'more than one'} rbd checkpoint (a {CONFIG_FILE} "
                                  f"beside its {WEIGHTS_FILE})")
        with _named_as(configs[0].parent, (zip_path / configs[0].parent.relative_to(temporary)).as_posix()):
            yield configs[0].parent


def _repo_name(repo_id: str, revision: str | None) -> str:
    return f"{repo_id}@{revision}" if revision else repo_id


def _named_on_hub(repo_id: str, revision: str | None) -> tuple[Path, Path]:
    """`_download` of a name that no local folder or file has: where that fails, the error says so too, as a
    mistyped folder (`checkpoints/botle`) reads as a Hub repo id."""
    try:
        return _download(repo_id, revision)
    except (CheckpointError, HubError) as err:
        suffix = Path(repo_id).suffix.lower()
        if suffix in (".onnx", ".zip"):  # most likely a mistyped file (the Hub allows me/parts.onnx): bad input, said so
            raise CheckpointError(f"{repo_id}: no such {suffix} file, nor a Hub repo of that name to be had ({err})") from err
        raise type(err)(f"{err}; nor is there a local folder or .onnx file {repo_id}") from err


def _locate(path_or_repo_id: str | Path, revision: str | None) -> tuple[str, Path | str]:
    """("folder", path), ("zip", path), ("onnx", path) or ("hub", repo id): where a checkpoint named so lives. A local
    name comes first; a revision belongs to Hub repos only, and a missing .onnx file is a typo, not a repo id."""
    revision = _checked_revision(revision)
    if not str(path_or_repo_id).strip():
        raise CheckpointError("no checkpoint named: give a checkpoint folder, an .onnx file or a Hub repo id (owner/name)")
    path = Path(path_or_repo_id)
    local = path.is_dir() or (path.is_file() and path.suffix.lower() in (".onnx", ".zip"))
    if local and revision is not None:  # a Hub repo id that names a local folder or file too: which was meant is not clear
        raise CheckpointError(f"{path_or_repo_id} is a local {'folder' if path.is_dir() else 'file'}, which has no revision "
                              f"{revision!r}: name the Hub repo from another working folder, or drop the revision")
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise CheckpointError(f"{path} has no {CONFIG_FILE}: not an rbd checkpoint")
        return "folder", path
    if local:
        return path.suffix.lower().lstrip("."), path
    if path.suffix.lower() in (".onnx", ".zip") and not is_repo_id(str(path_or_repo_id)):  # the Hub allows me/parts.onnx
        raise CheckpointError(f"{path_or_repo_id}: no such {path.suffix} file")
    retired = _retired_copy(path)
    if retired is not None:  # `save` was killed between its two renames (the finally that renames it back never ran)
        raise CheckpointError(f"{path_or_repo_id}: no such checkpoint folder; a save that stopped while replacing it left "
                              f"the checkpoint before at {retired}: rename that folder to {path.name}")
    if is_repo_id(str(path_or_repo_id)) and not path.exists():
        return "hub", str(path_or_repo_id)
    repo, at, named = str(path_or_repo_id).partition("@")
    if at and is_repo_id(repo) and not path.exists():  # as the app names a Hub model
        raise CheckpointError(f"{path_or_repo_id}: name the revision apart: {repo} with --revision {named} (revision= from Python)")
    if path.is_file():  # one of a checkpoint's files, say
        raise CheckpointError(f"{path_or_repo_id} is a file, not a checkpoint folder, a zip of one or an .onnx file"
                              + (f": name its folder, {path.parent}" if path.name in CHECKPOINT_FILES else ""))
    raise CheckpointError(f"{path_or_repo_id}: no such checkpoint folder or .onnx file, and not a Hub repo id (owner/name)")


def load_from_hub(repo_id: str, revision: str | None = None, device: str | torch.device = "cpu") -> Detector:
    """A `Detector` from a Hub model repo (through the local Hugging Face cache), never a local folder."""
    if not is_repo_id(repo_id):
        raise CheckpointError(f"{repo_id!r} is not a Hub repo id (owner/name)")
    config_path, weights_path = _download(repo_id, revision)
    with _named_in_repo(config_path.parent, repo_id, revision):
        return _from_files(config_path, weights_path, device)


def _from_files(config_path: Path, weights_path: Path, device: str | torch.device) -> Detector:
    config, weights = _one_save(config_path, weights_path)
    model_config, calibration = settings(config, config_path)
    try:  # (an ONNX export holds its teacher: only a model built here needs to know it)
        pretrained_name(model_config.backbone)
    except BackboneError as err:  # said "choose one of ...", as if the user had chosen the teacher
        raise CheckpointError(f"{config_path}: made with the teacher {model_config.backbone!r}, which this version of rbd does "
                              f"not know (it knows {', '.join(BACKBONES)})") from err
    try:
        model = RBD(model_config)
    except ValueError as err:  # settings of the right kinds that still make no network (a decoder width short)
        raise CheckpointError(f"{config_path}: the model settings make no network ({err})") from err
    target = model.student if config["format_version"] == 1 else model
    _check_tensors(weights, target.state_dict(), weights_path)
    try:
        if config["format_version"] == 1:
            model.student.load_state_dict(weights, strict=True)
        else:
            made_since = {2: ("score_affine", "edge_profile"), 3: ("edge_profile",)}.get(config["format_version"], ())
            model.load_trained_state({**{name: getattr(model, name) for name in made_since}, **weights})
    except RuntimeError as err:
        raise CheckpointError(f"{weights_path}: weights do not match the model in {CONFIG_FILE}") from err
    return assemble(model, calibration, config).to(device)


def _one_save(config_path: Path, weights_path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The config and the weights of one save. A folder that `save` replaces while it is read (`rbd train --out` into a
    folder the app lists) gave the old threshold with the new weights, both valid, nothing refused: the config is read
    again after the weights, and the pair again where it changed (or was away between `save`'s two renames)."""
    for attempt in range(READ_TRIES):
        try:
            config = read_config(config_path)
            weights = _read_weights(weights_path)
            if read_config(config_path) == config:
                return config, weights
        except CheckpointError:
            if attempt == READ_TRIES - 1:
                raise
        time.sleep(0.1)
    raise CheckpointError(f"{config_path.parent}: the checkpoint changed while it was read, {READ_TRIES} times (saved over "
                          "again and again?): load it once that has ended")


def _read_weights(weights_path: Path) -> dict[str, torch.Tensor]:
    if weights_path.is_dir():  # safetensors said "No such device (os error 19)"
        raise CheckpointError(f"{weights_path}: a folder, where the checkpoint's weights file belongs")
    try:
        return load_file(str(weights_path))
    except OSError as err:
        raise CheckpointError(f"{weights_path}: unreadable weights ({err})") from err
    except SafetensorError as err:  # a pickled `torch.save` renamed, a download cut short: rbd reads safetensors only
        raise CheckpointError(f"{weights_path}: unreadable weights, not a whole safetensors file ({err})") from err


def _check_tensors(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str | Path) -> None:
    """Every tensor of the model's type and finite, and every spread above 0: loading would convert an integer spread silently (to zero
    spreads and NaN scores), and a NaN score is below every threshold, so every image would pass as good."""
    for name, tensor in weights.items():
        if name in expected and tensor.dtype != expected[name].dtype:
            raise CheckpointError(f"{source}: {name} is {tensor.dtype}, not the model's {expected[name].dtype}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{source}: {name} holds NaN or infinite values")
        if name == "normal_std" and not (tensor > 0).all():  # a map divided by a spread of 0: every score NaN or infinite
            raise CheckpointError(f"{source}: {name} holds a spread of 0 or less")


def settings(config: dict, source: str | Path) -> tuple[ModelConfig, Calibration]:
    """The model settings and calibration of a checked config (`parse_config`)."""
    model = config["model"]
    try:
        earlier = {1: {"memory_size": 0, "score_from": "map", "edge_bands": 0}, 2: {"score_from": "map", "edge_bands": 0},
                   3: {"edge_bands": 0}}.get(config["format_version"], {})
        model_config, calibration = ModelConfig.from_dict({**earlier, **model}), Calibration.from_dict(config["calibration"])
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"{source}: invalid model settings or calibration ({err})") from err
    check_calibration(config.get("threshold", calibration.threshold), calibration, source)
    return model_config, calibration


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_calibration(threshold, calibration: Calibration, source) -> None:
    """CheckpointError unless `threshold` and `calibration` are what a checkpoint may hold: finite numbers, a scale
    above 0 (0 or less turns normalised scores upside down), a false-alarm rate in [0, 1) (0 only in checkpoints saved
    before `calibration.checked_rate` refused it), an interval of two. `save` checks before writing and `load` after
    reading, so no checkpoint is written that could not be loaded."""
    numbers = {"threshold": [threshold, calibration.threshold], "scale": [calibration.scale],
               "normal scores": calibration.normal_scores, "synthetic scores": calibration.synthetic_scores,
               "interval": calibration.interval or ()}  # a NaN synthetic score counted as caught, and was written as NaN
    wrong = [name for name, values in numbers.items()
             if not all(_is_number(v) and math.isfinite(v) for v in values)]
    if wrong:
        raise CheckpointError(f"{source}: the threshold and the calibration's scores must be finite numbers (wrong: "
                              f"{', '.join(wrong)}; threshold {threshold!r})")
    if not (calibration.scale > 0 and 0 <= calibration.false_alarm_rate < 1 and len(calibration.interval or (0, 0)) == 2):
        raise CheckpointError(f"{source}: the calibration needs a scale above 0, a false-alarm rate from 0 to below 1 and an "
                              "interval of two numbers (a scale of 0 or less turns normalised scores upside down)")


def assemble(network, calibration: Calibration, config: dict) -> Detector:
    """A `Detector` of a torch model or a `Network` with the calibration, threshold and summaries of `config`."""
    detector = Detector(network, calibration, config.get("training"), config.get("metrics"))
    detector.threshold = float(config.get("threshold", calibration.threshold))
    return detector


def read_config(path: Path) -> dict:
    """The parsed config.json, checked to be an rbd checkpoint this version can read."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # an editor's byte-order mark (Notepad, PowerShell) is no content
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable JSON config ({err})") from err
    return parse_config(text, path)


def parse_config(text: str, source: str | Path) -> dict:
    """A checkpoint config from its JSON text (config.json, or an ONNX export's metadata), checked."""
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError, as is a number of over 4300 digits
        raise CheckpointError(f"{source}: not a readable JSON config ({err})") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not an rbd checkpoint (no \"format\": \"{FORMAT}\")")
    version = config.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:  # true == 1 in Python: read as format 1
        raise CheckpointError(
            f"{source}: checkpoint format {'missing' if version is None else json.dumps(version)} (made by rbd {config.get('rbd_version', '?')}) "
            f"cannot be read by rbd {__version__}, which reads formats {', '.join(map(str, READABLE_VERSIONS))}"
        )
    for key in ("model", "calibration"):
        if not isinstance(config.get(key), dict):
            raise CheckpointError(f"{source}: the \"{key}\" section is missing")
    for key in ("training", "metrics"):  # summaries: optional, but what `rbd info` and the model card read as sections
        if not isinstance(config.get(key), (dict, type(None))):
            raise CheckpointError(f"{source}: the \"{key}\" section must be an object")
    return config


def _download(repo_id: str, revision: str | None) -> tuple[Path, Path]:
    """Config and weights from one commit of the repo (through the local cache), so a push that
    lands between two downloads can never pair one version's config with another's weights."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    revision = _checked_revision(revision)
    at = _repo_name(repo_id, revision)
    try:  # the not-found errors subclass HfHubHTTPError, and LocalEntryNotFoundError OSError: they are caught first
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]))
    except GatedRepoError as err:  # a subclass of RepositoryNotFoundError: the repo is there
        raise CheckpointError(f"{at}: the repo is gated: ask for access on https://huggingface.co/{repo_id}, then sign in "
                              "(HF_TOKEN or `hf auth login`)") from err
    except RepositoryNotFoundError as err:
        raise CheckpointError(f"{at}: no such model repo on the Hugging Face Hub (or it is private)") from err
    except RevisionNotFoundError as err:
        raise CheckpointError(f"{at}: no such revision") from err
    except LocalEntryNotFoundError as err:
        raise HubError(f"{at}: the Hub cannot be reached and the checkpoint is not in the local cache") from err
    except _hub_failures() as err:
        raise HubError(f"{at}: download failed ({_hub_failure(err)})") from err
    except ValueError as err:
        raise CheckpointError(f"{at}: {err}") from err
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing and constants.is_offline_mode():  # the cached snapshot, unchecked: a download of one file leaves part of it
        raise HubError(f"{at}: the Hub cannot be reached (offline mode) and the local cache holds no {' or '.join(missing)}")
    if missing:
        raise CheckpointError(f"{at}: the repo has no {' or '.join(missing)}: not an rbd checkpoint (or, where the Hub could "
                              "not be reached, the local cache holds only part of it)")
    return folder / CONFIG_FILE, folder / WEIGHTS_FILE


def _checked_revision(revision: str | None) -> str | None:
    """A branch, tag or commit as the Hub names them (None, or blank, for main). "." and ".." are none of
    those, and would name folders of the local cache."""
    revision = (revision or "").strip() or None
    if revision is not None and any(part in ("", ".", "..") for part in revision.split("/")):
        raise CheckpointError(f"{revision!r} is not a revision: name a branch, a tag or a commit")
    return revision


def push_to_hub(detector: Detector, repo_id: str, token: str | None = None, private: bool = False, metrics: dict | Evaluation | None = None,
                license: str = "other", datasets: list[str] | None = None) -> str:
    """Upload the checkpoint (with its model card) to a Hub model repo; returns the commit URL.

    `license` is a Hub licence id for the card (the trained weights are yours to license, "other"
    until you say); `datasets` are the Hub ids of the data it was trained and evaluated on, if any.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    token = token.strip() if token else None  # a token read from a file ends in a newline
    if token and any(ord(c) < 32 or ord(c) == 127 for c in token):
        raise CheckpointError("the Hub token holds a line break or another control character: paste it again")
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as tmp:
        # saved first: a detector that cannot be saved (an ONNX export, a NaN threshold) must not leave an empty repo
        folder = save(detector, Path(tmp) / "checkpoint", metrics)
        model_card(read_config(folder / CONFIG_FILE), repo_id, license, datasets).save(folder / CARD_FILE)
        try:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            commit = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model",
                                       commit_message=f"Upload rbd {__version__} checkpoint")
        except OfflineModeIsEnabled as err:
            raise HubError(f"cannot push to {repo_id}: the Hub is unreachable (offline mode)") from err
        except _hub_failures() as err:
            raise HubError(f"cannot push to {repo_id}: {_hub_failure(err)}") from err
        except ValueError as err:
            raise CheckpointError(f"cannot push to {repo_id}: {err}") from err
    return str(getattr(commit, "commit_url", commit))


def _hub_failures() -> tuple[type[Exception], ...]:
    """What a Hub call raises when the network or the server fails: huggingface_hub's HTTP error, the
    errors of the HTTP client it extends (a proxy or a dropped connection raise those unwrapped), OSError."""
    from huggingface_hub.errors import HfHubHTTPError

    return HfHubHTTPError.__bases__[0], OSError


def _hub_failure(err: Exception) -> str:
    """One line on a failed Hub call that never quotes a request, whose headers hold the token: the
    server's status line, a file's error, or the kind of connection failure."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(err, HfHubHTTPError):
        return str(err).splitlines()[0]
    if isinstance(err, OSError):  # its file name is a path on this machine, not for a browser to see
        return err.strerror if err.filename is not None and err.strerror else str(err)
    return f"the connection failed ({type(err).__name__})"


# (key in the metrics, Hub task type, metric type): image-level metrics judge the good/defective
# classification, pixel-level ones the defect segmentation.
_HUB_METRICS = [
    ("image_auroc", "image-classification", "roc_auc"),
    ("image_f1max", "image-classification", "f1"),
    ("pixel_auroc", "image-segmentation", "roc_auc"),
    ("aupro", "image-segmentation", "aupro"),
]


def model_card(config: dict, repo_id: str | None = None, license: str = "other", datasets: list[str] | None = None):
    """A Hub model card (`huggingface_hub.ModelCard`): metadata the Hub indexes (licence, library,
    tags, the teacher's repo as base model, evaluation results), then what the model is, how it
    was calibrated and how to use it."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    model, calibration, training = config["model"], Calibration.from_dict(config["calibration"]), config.get("training") or {}
    metrics = config.get("metrics") or {}
    name = repo_id.split("/")[-1] if repo_id else "rbd anomaly detector"
    dataset = datasets[0] if datasets else None
    results = [EvalResult(task_type=task, task_name="Visual anomaly detection", dataset_type=dataset or "local",
                          dataset_name=dataset or "local MVTec-layout test set", metric_type=kind, metric_name=SUMMARY_NAMES[key],
                          metric_value=float(metrics[key]))
               for key, task, kind in _HUB_METRICS if _is_number(metrics.get(key))]  # a hand-written one may be text
    data = ModelCardData(license=license, library_name="rbd", tags=["anomaly-detection", "industrial-inspection", "rbd"],
                         base_model=hub_repo(model["backbone"]), datasets=datasets, model_name=name,
                         eval_results=results or None)
    lines = [
        f"# {name}",
        "",
        "Reconstruction-based distillation (Zhao and Guo, Computers & Graphics 132, 2025), trained on normal images only.",
        "",
        f"- Teacher backbone: `{model['backbone']}` (frozen, ImageNet), layers {model['layers']}",
        f"- Input: short side {model['image_size']} px, aspect ratio kept; image score rule: `{model['score_rule']}` of "
        + {"both": "the anomaly map averaged with the same of the memory's own map (in the map's units)",
           "memory": "the memory's own map (in the anomaly map's units)"}.get(model.get("score_from"), "the anomaly map"),
        _threshold_line(config["threshold"], calibration),
        f"- Anomaly map: the student's per-scale distances{' and a memory of ' + str(model['memory_size']) + ' normal patches' if model.get('memory_size') else ''}, "
        "each standardised on normal images" + (", less the map's normal level by distance from the edge" if model.get("edge_bands") else ""),
    ]
    caught = calibration.caught(config["threshold"])
    if caught is not None:
        lines.append(f"- Synthetic defects caught at that threshold: {100 * caught:.0f}%")
    lines += [f"- ⚠️ {problem}" for problem in calibration.problems(config["threshold"])]  # as the app's model line warns
    if training:
        held = training.get("holdout_images") or 0  # beside the images trained on: "8 images" read as a miscount of 7
        lines.append(f"- Training: {training.get('train_images')} images{f' ({held} more held out for the threshold)' if held > 0 else ''}, "
                     f"{training.get('steps')} steps, "
                     f"{training.get('seconds')} s on {training.get('device')}, rbd {training.get('rbd_version')}"
                     + (f"; fine-tuned from {training['started_from']}" if training.get("started_from") else "")
                     + "".join(f"; {note}" for note in budget_notes(training, model.get("memory_size", 0))))
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {SUMMARY_NAMES.get(k, k)} | {metric_text(k, v)} |" for k, v in metrics.items() if v is not None]
    lines += ["", "## Use", "", "```python", "import rbd", "", f"detector = rbd.load(\"{repo_id or 'path/to/this/folder'}\")",
              "prediction = detector.predict(\"part.png\")", "print(prediction.score, prediction.verdict)", "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _threshold_line(threshold: float, calibration: Calibration) -> str:
    """The card's line on the threshold: how it was calibrated, or that it was set by hand (`Detector.threshold`)."""
    sources = "held-out ones, and training images scored by a memory blind to their own patches"
    if calibration.reviewed:  # a review's recalibration in the app
        sources = f"{calibration.reviewed} reviewed as good in the app, the others {sources.replace(', and', ' or')}"
    calibrated = (f"calibrated for a {100 * calibration.false_alarm_rate:g}% false-alarm rate on {len(calibration.normal_scores)} "
                  f"normal images: {sources}"
                  + (f"; 95% interval {calibration.interval[0]:.5f}-{calibration.interval[1]:.5f}" if calibration.interval else ""))
    if threshold == calibration.threshold:
        return f"- Threshold: {threshold:.5f} ({calibrated})"
    rate = calibration.expected_false_alarm_rate(threshold) if calibration.normal_scores else None
    expected = "" if rate is None else f"{percent(rate, 3)} false alarms expected at it; "
    return f"- Threshold: {threshold:.5f}, set by hand ({expected}the threshold {calibration.threshold:.5f} was {calibrated})"
