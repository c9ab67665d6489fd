"""Checkpoints: a folder with `model.safetensors` (student weights) and `config.json`.

The teacher is not stored: its name is in the config and its ImageNet weights come from
their own source (see backbones.py), which keeps checkpoints small. Nothing is pickled, so a
checkpoint from a stranger cannot run code. The same folder is a Hugging Face Hub model repo:
`load("owner/name")` downloads through `hf_hub_download`, `push_to_hub` uploads through
`upload_folder` with a generated model card.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .calibration import Calibration
from .detector import Detector
from .errors import CheckpointError
from .model import RBD, ModelConfig

FORMAT = "rbd-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_repo_id(text: str) -> bool:
    """Whether `text` looks like a Hub model repo id, `owner/name`."""
    return bool(_REPO_ID.match(text))


def checkpoint_config(detector: Detector, metrics: dict | None = None) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rbd_version": __version__,
        "model": detector.config.to_dict(),
        "threshold": detector.threshold,
        "calibration": detector.calibration.to_dict(),
        "training": detector.training,
        "metrics": metrics or detector.metrics,
    }


def save(detector: Detector, directory: str | Path, metrics: dict | None = None) -> Path:
    """Write the checkpoint folder; a half-written one never takes the place of a good one.

    Everything is written and synced in a staging folder next to the target, which is then
    renamed into place. Only an existing rbd checkpoint (or an empty folder) is replaced, so a
    mistyped --out never deletes someone's files.
    """
    directory = Path(directory).resolve()
    if directory.exists() and any(directory.iterdir()) and not _is_checkpoint(directory):
        raise CheckpointError(f"{directory} exists and is not an rbd checkpoint: choose another folder")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        config = checkpoint_config(detector, metrics)
        weights = {k: v.detach().cpu().contiguous() for k, v in detector.model.student.state_dict().items()}
        save_file(weights, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        (staging / CARD_FILE).write_text(model_card(config))
        for path in staging.iterdir():
            path.chmod(0o644)  # shareable like any model file, not private like a temp file
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        staging.chmod(0o755)
        retired = directory.with_name(f".{directory.name}.old-{uuid.uuid4().hex[:8]}")
        if directory.exists():
            directory.rename(retired)
        staging.rename(directory)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _is_checkpoint(folder: Path) -> bool:
    try:
        read_config(folder / CONFIG_FILE)
        return True
    except CheckpointError:
        return False


def load(path_or_repo_id: str | Path, revision: str | None = None, device: str | torch.device = "cpu") -> Detector:
    """A `Detector` from a local checkpoint folder or, if no such folder exists, a Hub model repo id."""
    folder = Path(path_or_repo_id)
    if folder.is_dir():
        if not (folder / CONFIG_FILE).is_file():
            raise CheckpointError(f"{folder} has no {CONFIG_FILE}: not an rbd checkpoint")
        return _from_files(folder / CONFIG_FILE, folder / WEIGHTS_FILE, device)
    if isinstance(path_or_repo_id, str) and is_repo_id(path_or_repo_id) and not folder.exists():
        return load_from_hub(path_or_repo_id, revision, device)
    raise CheckpointError(f"{path_or_repo_id}: no such checkpoint folder, and not a Hub repo id (owner/name)")


def load_from_hub(repo_id: str, revision: str | None = None, device: str | torch.device = "cpu") -> Detector:
    """A `Detector` from a Hub model repo (through the local Hugging Face cache), never a local folder."""
    if not is_repo_id(repo_id):
        raise CheckpointError(f"{repo_id!r} is not a Hub repo id (owner/name)")
    return _from_files(*_download(repo_id, revision), device)


def _from_files(config_path: Path, weights_path: Path, device: str | torch.device) -> Detector:
    config = read_config(config_path)
    try:
        model = RBD(ModelConfig.from_dict(config["model"]))
        calibration = Calibration.from_dict(config["calibration"])
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"{config_path}: invalid model settings or calibration ({err})") from err
    try:
        weights = load_file(str(weights_path))
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{weights_path}: unreadable weights ({err})") from err
    try:
        model.student.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{weights_path}: weights do not match the model in {CONFIG_FILE}") from err
    detector = Detector(model, calibration, config.get("training"), config.get("metrics"))
    detector.threshold = float(config.get("threshold", calibration.threshold))
    return detector.to(device)


def read_config(path: Path) -> dict:
    """The parsed config.json, checked to be an rbd checkpoint this version can read."""
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable JSON config ({err})") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an rbd checkpoint (no \"format\": \"{FORMAT}\")")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} (made by rbd {config.get('rbd_version', '?')}) "
            f"cannot be read by rbd {__version__}, which reads format {FORMAT_VERSION}"
        )
    for key in ("model", "calibration"):
        if not isinstance(config.get(key), dict):
            raise CheckpointError(f"{path}: the \"{key}\" section is missing")
    return config


def _download(repo_id: str, revision: str | None) -> tuple[Path, Path]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    at = f"{repo_id}@{revision}" if revision else repo_id
    try:  # LocalEntryNotFoundError subclasses EntryNotFoundError, so it is caught first
        return tuple(Path(hf_hub_download(repo_id, name, revision=revision)) for name in (CONFIG_FILE, WEIGHTS_FILE))
    except RepositoryNotFoundError as err:
        raise CheckpointError(f"{at}: no such model repo on the Hugging Face Hub (or it is private)") from err
    except RevisionNotFoundError as err:
        raise CheckpointError(f"{at}: no such revision") from err
    except LocalEntryNotFoundError as err:
        raise CheckpointError(f"{at}: the Hub cannot be reached and the checkpoint is not in the local cache") from err
    except EntryNotFoundError as err:
        raise CheckpointError(f"{at}: the repo has no {CONFIG_FILE} or {WEIGHTS_FILE}: not an rbd checkpoint") from err
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{at}: download failed ({err})") from err


def push_to_hub(detector: Detector, repo_id: str, token: str | None = None, private: bool = False, metrics: dict | None = None) -> str:
    """Upload the checkpoint (with its model card) to a Hub model repo; returns the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            folder = save(detector, Path(tmp) / "checkpoint", metrics)
            commit = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model",
                                       commit_message=f"Upload rbd {__version__} checkpoint")
    except OfflineModeIsEnabled as err:
        raise CheckpointError(f"cannot push to {repo_id}: the Hub is unreachable (offline mode)") from err
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise CheckpointError(f"cannot push to {repo_id}: {err}") from err
    return str(getattr(commit, "commit_url", commit))


def model_card(config: dict) -> str:
    """A Hub model card that states what the model is, how it was calibrated and how it scores."""
    model, calibration, training = config["model"], config["calibration"], config.get("training") or {}
    lines = [
        "---",
        "library_name: rbd",
        "tags:",
        "- anomaly-detection",
        "- industrial-inspection",
        "- rbd",
        "---",
        "",
        "# rbd anomaly detector",
        "",
        "Reconstruction-based distillation (Zhao and Guo, Computers & Graphics 132, 2025), trained on normal images only.",
        "",
        f"- Teacher backbone: `{model['backbone']}` (frozen, ImageNet), layers {model['layers']}",
        f"- Input: short side {model['image_size']} px, aspect ratio kept; image score rule: `{model['score_rule']}`",
        f"- Threshold: {config['threshold']:.5f} (calibrated for a {100 * calibration['false_alarm_rate']:g}% false-alarm rate "
        f"on {len(calibration['normal_scores'])} held-out normal images)",
    ]
    if calibration.get("synthetic_catch_rate") is not None:
        lines.append(f"- Synthetic defects caught at that threshold: {100 * calibration['synthetic_catch_rate']:.0f}%")
    if training:
        lines.append(f"- Training: {training.get('train_images')} images, {training.get('steps')} steps, "
                     f"{training.get('seconds')} s on {training.get('device')}, rbd {training.get('rbd_version')}")
    if config.get("metrics"):
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in config["metrics"].items() if v is not None]
    lines += ["", "## Use", "", "```python", "import rbd", "", "detector = rbd.load(\"OWNER/NAME\")",
              "prediction = detector.predict(\"part.png\")", "print(prediction.score, prediction.verdict)", "```", ""]
    return "\n".join(lines)
