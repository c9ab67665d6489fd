"""Training: learn "normal" from good images, then calibrate the threshold on held-out ones.

The whole loop is in `train()`; read it top to bottom. Each step takes random square crops
of the (aspect-preserving) resized images, paints synthetic defects on some of them, and
optimises reconstruction + prediction consistency (see losses.py). Training stops after
`epochs` passes or `max_minutes`, whichever comes first; the learning rate follows a cosine
over whichever budget is closer to running out. Then the held-out images calibrate the
threshold (calibration.py) and a ready `Detector` comes back.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from . import __version__
from .calibration import calibrate
from .detector import Detector, score_images
from .errors import InvalidInputError, NoImagesError, TrainingCancelled
from .geometry import fit, to_input
from .images import read_image_folder
from .losses import consistency_loss, reconstruction_loss
from .model import RBD, ModelConfig
from .runtime import autocast, autocast_dtype, resolve_device
from .synthetic import add_defects, feature_dropout

MIN_IMAGES = 2  # one to train on, one to calibrate with; five or more is the sensible minimum


@dataclass
class TrainConfig:
    epochs: int = 200
    max_minutes: float | None = None
    batch_size: int = 8
    learning_rate: float = 5e-4  # 2e-3 over-generalised on ksdd (real cracks reconstructed): bench/sweep.py
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda; mixed precision where the hardware has it (rbd.runtime)
    holdout_fraction: float = 0.1  # of the images, kept out of training to calibrate on
    max_holdout: int = 50
    false_alarm_rate: float = 0.01
    defect_probability: float = 0.7  # share of training crops that get a synthetic defect
    feature_dropout: float = 0.1  # share of teacher-feature patches hidden from the student
    corruption: bool = True  # ablation switch: False trains on clean crops only
    consistency: bool = True  # ablation switch: False drops the prediction-consistency loss

    def __post_init__(self):
        checks = {
            "epochs must be at least 1": self.epochs >= 1,
            "max_minutes must be positive": self.max_minutes is None or self.max_minutes > 0,
            "batch_size must be at least 1": self.batch_size >= 1,
            "learning_rate must be positive": self.learning_rate > 0,
            "holdout_fraction must be in (0, 1)": 0 < self.holdout_fraction < 1,
            "max_holdout must be at least 1": self.max_holdout >= 1,
            "false_alarm_rate must be in [0, 1)": 0 <= self.false_alarm_rate < 1,
            "defect_probability must be in [0, 1]": 0 <= self.defect_probability <= 1,
            "feature_dropout must be in [0, 1)": 0 <= self.feature_dropout < 1,
        }
        broken = [rule for rule, ok in checks.items() if not ok]
        if broken:
            raise InvalidInputError("invalid training settings: " + "; ".join(broken))


@dataclass
class Progress:
    """What the progress callback receives after every optimisation step."""

    step: int
    epoch: float
    fraction: float  # of the budget used, 0..1
    loss: float
    elapsed_s: float


def _resized(images: Sequence[np.ndarray], config: ModelConfig) -> list[torch.Tensor]:
    """Each image at model resolution (short side = image_size), kept as compact uint8."""
    out = []
    for image in images:
        x = to_input(image, fit(image.shape[0], image.shape[1], config.image_size, config.max_aspect))
        out.append((x * 255).round().to(torch.uint8))
    return out


def _random_crops(images: list[torch.Tensor], size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 3, size, size) float crops of randomly chosen images, in [0, 1]."""
    crops = []
    for i in torch.randint(0, len(images), (count,), generator=generator).tolist():
        image = images[i]
        top = int(torch.randint(0, image.shape[1] - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, image.shape[2] - size + 1, (1,), generator=generator))
        crops.append(image[:, top : top + size, left : left + size])
    return torch.stack(crops).float() / 255


def split_holdout(count: int, config: TrainConfig) -> tuple[list[int], list[int]]:
    """Indices to train on and to calibrate on (a seeded random split)."""
    if count < MIN_IMAGES:
        raise NoImagesError(f"training needs at least {MIN_IMAGES} normal images (5 or more recommended), got {count}")
    n_holdout = min(config.max_holdout, max(1, round(count * config.holdout_fraction)))
    order = np.random.default_rng(config.seed).permutation(count).tolist()
    return sorted(order[n_holdout:]), sorted(order[:n_holdout])


def train(
    images: Sequence[np.ndarray] | str | Path,
    model_config: ModelConfig = ModelConfig(),
    config: TrainConfig = TrainConfig(),
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    start_from: Detector | None = None,
) -> Detector:
    """Train on normal images (arrays from `rbd.images`, or a folder searched recursively).

    `start_from` fine-tunes: the student starts from that detector's weights (and its model
    config is used), which converges in far fewer steps than training from scratch.
    """
    if isinstance(images, (str, Path)):
        images, _ = read_image_folder(images)
    train_ids, holdout_ids = split_holdout(len(images), config)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    if start_from is not None:
        model_config = start_from.config
    model = RBD(model_config).to(device)
    if start_from is not None:
        model.student.load_state_dict(start_from.model.student.state_dict())
    resized = _resized([images[i] for i in train_ids], model_config)
    optimizer = torch.optim.AdamW(model.student.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(resized) / config.batch_size))
    total_steps = config.epochs * steps_per_epoch
    budget_s = None if config.max_minutes is None else 60.0 * config.max_minutes

    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype(device) is torch.float16)  # float16 gradients underflow
    model.student.train()
    start, step, fraction, losses = time.monotonic(), 0, 0.0, []
    while fraction < 1.0:
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"training cancelled after {step} steps")
        for group in optimizer.param_groups:  # cosine decay over the budget used so far
            group["lr"] = config.learning_rate * 0.5 * (1 + math.cos(math.pi * fraction))

        clean = _random_crops(resized, model_config.image_size, config.batch_size, generator)
        corrupted, masks = add_defects(clean, generator, config.defect_probability) if config.corruption else (clean, torch.zeros_like(clean[:, :1]))
        clean, corrupted, masks = clean.to(device), corrupted.to(device), masks.to(device)
        with autocast(device):
            with torch.no_grad():
                target = model.features(clean)
                seen = model.features(corrupted) if config.corruption else target
            student_in = [feature_dropout(f, generator, config.feature_dropout) for f in seen] if config.feature_dropout else seen
            reconstruction = model.student(student_in)
            loss = reconstruction_loss(reconstruction, target)
            if config.consistency:
                loss = loss + consistency_loss(model.map_from_features(seen, reconstruction, clean.shape[-2:]), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

        step += 1
        losses.append(loss.item())
        elapsed = time.monotonic() - start
        fraction = min(1.0, max(step / total_steps, elapsed / budget_s if budget_s else 0.0))
        if progress is not None:
            progress(Progress(step, step / steps_per_epoch, fraction, losses[-1], elapsed))

    model.eval()
    held_out = [images[i] for i in holdout_ids]
    normal_scores = [score for score, _ in score_images(model, held_out, maps=False)]
    calibration = calibrate(normal_scores, _synthetic_scores(model, held_out, config.seed), config.false_alarm_rate)
    return Detector(model, calibration, training={
        "rbd_version": __version__,
        "images": len(images),
        "train_images": len(train_ids),
        "holdout_images": len(holdout_ids),
        "steps": step,
        "epochs": round(step / steps_per_epoch, 2),
        "seconds": round(time.monotonic() - start, 1),
        "final_loss": float(np.mean(losses[-steps_per_epoch:])),
        "loss_curve": _downsample(losses, 200),
        "device": device.type,
        "config": asdict(config),
    })


class BackgroundTraining:
    """`train()` in a worker thread, so a UI can stream its progress and cancel it.

        job = BackgroundTraining(images, config=TrainConfig(epochs=30))
        for progress in job.updates(): ...      # closing this loop early cancels training
        detector = job.result()
    """

    def __init__(self, images, model_config: ModelConfig = ModelConfig(), config: TrainConfig = TrainConfig(),
                 start_from: Detector | None = None):
        self._updates: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._outcome: dict = {}
        self._thread = threading.Thread(target=self._run, args=(images, model_config, config, start_from), daemon=True)
        self._thread.start()

    def _run(self, images, model_config, config, start_from) -> None:
        try:
            self._outcome["detector"] = train(images, model_config, config, self._updates.put, self._stop.is_set, start_from)
        except BaseException as err:  # handed to the caller by result()
            self._outcome["error"] = err
        finally:
            self._updates.put(None)

    def updates(self) -> Iterator[Progress]:
        """Progress reports as they come; leaving the loop before the end cancels training."""
        try:
            while (update := self._updates.get()) is not None:
                yield update
        finally:
            if self._thread.is_alive():
                self.cancel()

    def cancel(self) -> None:
        """Stop at the next step and wait for the worker to finish."""
        self._stop.set()
        self._thread.join()

    def result(self) -> Detector:
        """The trained detector (waits for it); re-raises what training raised, TrainingCancelled included."""
        self._thread.join()
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["detector"]


def _synthetic_scores(model: RBD, images: Sequence[np.ndarray], seed: int) -> list[float]:
    """Scores of held-out images with a synthetic defect painted on each (fixed seed)."""
    generator = torch.Generator().manual_seed(seed + 1)
    corrupted = []
    for x in _resized(images, model.config):
        defective, _ = add_defects(x[None].float() / 255, generator, probability=1.0)
        corrupted.append(defective[0].permute(1, 2, 0).numpy())
    return [score for score, _ in score_images(model, corrupted, maps=False)]


def _downsample(values: list[float], count: int) -> list[float]:
    """At most `count` points of a curve (means of equal chunks), for storing in JSON."""
    if len(values) <= count:
        return [round(v, 5) for v in values]
    chunks = np.array_split(np.asarray(values), count)
    return [round(float(c.mean()), 5) for c in chunks]
