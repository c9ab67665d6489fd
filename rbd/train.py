"""Training: learn "normal" from good images, then standardise the maps and calibrate the threshold.

The whole procedure is `train()`; read it top to bottom:

1. Every training image, resized (short side = image_size), goes through the frozen teacher
   once (`TeacherCache`; a random sample of them where the budget is too short to read all).
   Those features are the clean targets of every training crop, so a step runs the teacher
   only on crops it has painted a defect on, and they are the candidates the patch memory
   keeps its bank from.
2. Each step takes random square crops, paints synthetic defects on some of them, and optimises
   reconstruction + prediction consistency (losses.py). Training stops after `epochs` passes or
   `max_minutes`, whichever comes first (the minutes include every phase); the learning rate
   follows a cosine over whichever budget is closer to running out.
3. Normal images then give normal statistics: the held-out ones, and training ones (up to
   MAX_CALIBRATION_IMAGES in all) with the memory blind to their own patches. They set each
   distance map's mean and spread (anomaly_map.py) and the threshold (calibration.py), and a
   ready `Detector` comes back.

Under torchrun the processes share step 2 (distributed.py): each draws its own crops, gradients
are averaged, rank 0's clock ends the loop for all, and rank 0 alone does step 3.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import queue
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from . import __version__, distributed
from .anomaly_map import edge_profile, image_score
from .calibration import RATE_ABOVE_0, calibrate
from .detector import Detector, _is_folder
from .errors import InvalidInputError, NoImagesError, RBDError, TrainingCancelled
from .geometry import to_input
from .datasets import training_images
from .images import ImageLike, each_image, file_shape, given_image, image_batches, is_path, scored_input, several
from .losses import consistency_loss, reconstruction_loss
from .memory import MAX_CANDIDATES, flatten_patches, patch_features
from .model import MAP_SETTINGS, RBD, ModelConfig
from .notices import collect, notify
from .runtime import autocast, autocast_dtype, resolve_device, scoring_autocast
from .synthetic import add_defects, feature_dropout

MIN_IMAGES = 5  # the fewest normal images training accepts (everywhere: API, CLI, app)
CONTEXT = 32  # pixels of real image around a painted crop, so its features match the cached ones
PICTURES_LIMIT_BYTES = 4 * 1024**3  # training images kept at model size (float32); a larger set trains on a sample
CACHE_LIMIT_BYTES = 2 * 1024**3  # teacher features kept in memory; beyond, clean crops are computed each step
MAX_CALIBRATION_IMAGES = 200  # normal images scored for the statistics and the threshold
MAX_SYNTHETIC_IMAGES = 30  # of those, painted with a synthetic defect to estimate the catch rate
TEACHER_SHARE = 0.4  # of a time budget, what the teacher's first pass over the training images may take at most
PROBE_IMAGES = 8  # images timed to tell how many the teacher can read within its share
MEMORY_SHARE = 0.2  # of a time budget, what choosing the memory's patches may take at most (4 s of 10 minutes, idle)
# fewer student steps than this, ended by the clock, are said: on a busy 2-core machine a 1-minute budget of a set of
# large images trained 1 step, the teacher's reading and the threshold's calibration taking the rest, and nothing said so
FEW_STEPS = 25

DIVERGED_STEPS = 10  # steps in a row whose loss is NaN or infinite: training stops, for nothing more will be learnt


@dataclass
class TrainConfig:
    """How to train. By default, for 10 minutes whatever the set's size: the learning rate follows the
    budget (a cosine over it), so a short budget gets a complete schedule, not a cut-off one."""

    epochs: int | None = None  # passes over the training images; None: no limit but the minutes
    max_minutes: float | None = 10.0  # the whole of training: teacher pass, steps and calibration
    batch_size: int = 8  # crops per step and process (under torchrun a step takes batch_size x processes)
    learning_rate: float = 5e-4  # 2e-3 over-generalised on ksdd (real cracks reconstructed): bench/sweep.py
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N; mixed precision where the hardware has it (rbd.runtime)
    holdout_fraction: float = 0.1  # of the images, kept out of training: normal images no part of the model saw
    max_holdout: int = 50
    false_alarm_rate: float = 0.01
    defect_probability: float = 0.7  # share of training crops that get a synthetic defect
    feature_dropout: float = 0.1  # share of teacher-feature patches hidden from the student
    corruption: bool = True  # ablation switch: False trains on clean crops only
    consistency: bool = True  # ablation switch: False drops the prediction-consistency loss

    def __post_init__(self):
        whole = lambda value: isinstance(value, numbers.Integral) and not isinstance(value, bool)  # noqa: E731
        real = lambda value: isinstance(value, numbers.Real) and not isinstance(value, bool)  # noqa: E731
        kinds = {"epochs must be a whole number": self.epochs is None or whole(self.epochs),
                 "max_minutes must be a number": self.max_minutes is None or real(self.max_minutes),
                 "batch_size must be a whole number": whole(self.batch_size),
                 "max_holdout must be a whole number": whole(self.max_holdout),
                 **{f"{name} must be a number": real(getattr(self, name))
                    for name in ("learning_rate", "weight_decay", "holdout_fraction", "false_alarm_rate", "defect_probability",
                                 "feature_dropout")}}
        wrong = [rule for rule, ok in kinds.items() if not ok]
        if wrong:  # before the checks below compare them with numbers
            raise InvalidInputError("invalid training settings: " + "; ".join(wrong))
        checks = {
            "epochs must be at least 1": self.epochs is None or self.epochs >= 1,
            "max_minutes must be positive": self.max_minutes is None or self.max_minutes > 0,
            "epochs or a finite max_minutes must be set (a budget)": self.epochs is not None or self.budget_s is not None,
            "batch_size must be from 1 to 4096": 1 <= self.batch_size <= 4096,
            # a rate of 10 or more (inf too) sent every weight to NaN, found only by the calibration at the budget's end
            "learning_rate must be from above 0 to below 10": 0 < self.learning_rate < 10,
            "weight_decay must be from 0 to below 1": 0 <= self.weight_decay < 1,  # NaN or less than 0: torch's error, late
            "holdout_fraction must be in (0, 1)": 0 < self.holdout_fraction < 1,
            "max_holdout must be at least 1": self.max_holdout >= 1,
            "false_alarm_rate must be above 0 and below 1" + (f" ({RATE_ABOVE_0})" if self.false_alarm_rate == 0 else ""):
                0 < self.false_alarm_rate < 1,
            "defect_probability must be in [0, 1]": 0 <= self.defect_probability <= 1,
            "feature_dropout must be in [0, 1)": 0 <= self.feature_dropout < 1,
            "seed must be a whole number from 0 to 2**63 - 1": (isinstance(self.seed, numbers.Integral) and not isinstance(self.seed, bool)
                                                                and 0 <= self.seed < 2**63),
        }
        broken = [rule for rule, ok in checks.items() if not ok]
        if broken:
            raise InvalidInputError("invalid training settings: " + "; ".join(broken))
        # numpy numbers too, as Python's: the checkpoint records the config as JSON
        self.seed, self.batch_size, self.max_holdout = int(self.seed), int(self.batch_size), int(self.max_holdout)
        self.epochs = None if self.epochs is None else int(self.epochs)
        self.max_minutes = None if self.max_minutes is None else float(self.max_minutes)

    @property
    def budget_s(self) -> float | None:
        """The time budget in seconds; None for none (max_minutes None, or past any clock: the epochs end training)."""
        seconds = None if self.max_minutes is None else 60.0 * self.max_minutes
        return seconds if seconds is not None and math.isfinite(seconds) else None


@dataclass
class Progress:
    """What the progress callback receives after every optimisation step."""

    step: int
    epoch: float
    fraction: float  # of the budget used, 0..1
    loss: float
    elapsed_s: float


def split_holdout(count: int, config: TrainConfig) -> tuple[list[int], list[int]]:
    """Indices to train on and to hold out (a seeded random split)."""
    if count < MIN_IMAGES:
        raise NoImagesError(f"training needs at least {MIN_IMAGES} normal images, got {count}")
    n_holdout = min(config.max_holdout, max(1, round(count * config.holdout_fraction)), count - 2)  # two or more to train on
    order = np.random.default_rng(config.seed).permutation(count).tolist()
    return sorted(order[n_holdout:]), sorted(order[:n_holdout])


def resized(image: np.ndarray, config: ModelConfig) -> torch.Tensor:
    """(3, h, w) float32: the image at model resolution (short side = image_size), exactly the input a
    prediction makes of it, so calibration scores normal images as predictions will. (Kept as uint8
    before: its rounding moved weld's scores by up to 1.1 against a threshold of 7.9, and cut 16-bit
    images to 8 bits; BENCHMARKS.md.)"""
    return to_input(image, config.fit(image.shape[0], image.shape[1]))


def model_pictures(images: Sequence[ImageLike] | str | Path, config: ModelConfig, seed: int = 0) -> list[torch.Tensor]:
    """Every image `resized` from what a prediction decodes of it. Files (a folder, searched recursively,
    or a list of paths) are decoded one at a time as `predict_files` decodes them (unreadable ones
    skipped with a notice, those over MAX_SIDE downscaled), so memory holds one full-size photo, never
    the whole set (a 16-megapixel photo is 190 MB as float32); arrays and PIL images are converted one by one.
    A set whose pictures would take more than PICTURES_LIMIT_BYTES is a random sample of it (`within_memory`)."""
    images = training_images(images) if is_path(images) else several(images, "training", " (or a folder of them)")
    # a folder among them stands for its training images, as a folder given alone does (predict_files takes folders too)
    images = [found for image in images for found in (training_images(image) if is_path(image) and _is_folder(image) else [image])]
    if images and all(is_path(image) for image in images):
        images = within_memory(images, config, seed, file_shape)
        return [resized(image, config) for _, batch in image_batches(images, 1) for _, image in batch]
    images = within_memory(images, config, seed, lambda image: file_shape(image) if is_path(image) else given_image(image).shape[:2])
    # a file among arrays as a prediction reads it (it was read whole); an unreadable one is named by its place
    return each_image(images, lambda image: resized(scored_input(image), config))


def within_memory(images: list, config: ModelConfig, seed: int, shape: Callable[[object], tuple[int, int]]) -> list:
    """`images`, or where their pictures at model size (float32, the input a prediction makes: `resized`) would take
    more than PICTURES_LIMIT_BYTES, a random sample of them that fits (a notice says so). 10,000 strips asked for 31 GB
    before the time budget chose how many the teacher reads (TEACHER_SHARE); a sample of thousands teaches as much.
    `shape(image)` gives its (height, width) without decoding it (an unreadable file: its error is said when decoded)."""
    if len(images) <= _fits_surely(config):
        return images
    sizes = []
    for image in images:
        try:
            sizes.append(3 * 4 * math.prod(config.fit(*shape(image)).input))
        except (RBDError, OSError, ValueError):
            sizes.append(0)
    total = sum(sizes)
    if total <= PICTURES_LIMIT_BYTES:
        return images
    order, kept, used = np.random.default_rng(seed).permutation(len(images)), [], 0
    for i in order:
        if used + sizes[i] <= PICTURES_LIMIT_BYTES:
            kept.append(int(i))
            used += sizes[i]
    notify(f"the {len(images)} training images would take {_in_units(total)} at the model's size, more than the "
           f"{_in_units(PICTURES_LIMIT_BYTES)} training keeps: trained on a random sample of {len(kept)} of them")
    return [images[i] for i in sorted(kept)]


def _in_units(size: int) -> str:
    return f"{size / 1024**3:.1f} GB" if size >= 1024**3 else f"{size / 1024**2:.1f} MB"


def _fits_surely(config: ModelConfig) -> int:
    """How many pictures fit in PICTURES_LIMIT_BYTES however long their images: up to it, no image's shape is looked at."""
    widest = 3 * 4 * config.image_size * math.ceil(config.image_size * config.max_aspect)
    return PICTURES_LIMIT_BYTES // widest


def distinct(pictures: list[torch.Tensor]) -> list[torch.Tensor]:
    """The pictures less exact copies of ones before them. The memory's bank keeps each normal patch
    once, from one copy, and that copy, scored blind to its own patches for the threshold, then looks unlike every
    other image and lifts the threshold (six copies of one photo: 4.1 against 1.2, and a painted defect judged good)."""
    seen: set[str] = set()
    kept = []
    for picture in pictures:
        digest = hashlib.sha1(picture.contiguous().numpy().tobytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            kept.append(picture)
    copies = len(pictures) - len(kept)
    if copies and len(kept) < MIN_IMAGES:
        raise NoImagesError(f"training needs at least {MIN_IMAGES} distinct normal images: {copies_of(copies, len(pictures), '')}")
    return kept


def copies_of(copies: int, total: int, what: str) -> str:
    """The words for `copies` of `total` images (`what`: "training images", or "" where that is said) being copies."""
    return f"{copies} of the {total} {what}{' ' if what else ''}" + ("is an exact copy of another" if copies == 1 else
                                                                      "are exact copies of others")


class TeacherCache:
    """The teacher's features of every training image at model resolution, computed once.

    A crop that starts on the model's input grid (`ModelConfig.input_multiple`, the student's
    stride) has as clean features a slice of its image's features, so no step runs the teacher on
    clean crops. Features are kept as float16 while they fit in
    CACHE_LIMIT_BYTES; a larger set keeps none and computes each clean crop in context instead.
    `patches` are a random sample of every image's memory patch features, for the memory's bank.
    """

    def __init__(self, model: RBD, images: list[torch.Tensor], device: torch.device, generator: torch.Generator,
                 max_patches: int, should_stop: Callable[[], bool] = lambda: False,
                 readable: Callable[[float], int] = lambda per_image_s: 1 << 62):
        """`should_stop` is asked before each image: a large set's teacher pass takes long enough to cancel.
        `readable` tells from the seconds an image takes (timed on the first PROBE_IMAGES) how many images the
        teacher may read within the time budget: a larger set keeps a random sample of that many (`images`
        becomes those, `left_out` counts the others), so that its first pass cannot take the whole budget."""
        self.model, self.device = model, device
        self.features: list[list[torch.Tensor]] | None = []
        patches, sources, used = [], [], 0
        per_image = max(1, math.ceil(max_patches / len(images)))
        kept, wanted, started = [], None, time.monotonic()  # indices of the images read; those to read, once limited
        for index, image in enumerate(images):
            if index == PROBE_IMAGES:
                allowed = max(PROBE_IMAGES, readable((time.monotonic() - started) / PROBE_IMAGES))
                if allowed < len(images):
                    rest = torch.randperm(len(images) - PROBE_IMAGES, generator=generator)[: allowed - PROBE_IMAGES]
                    wanted = set((rest + PROBE_IMAGES).tolist())
                    per_image = max(1, math.ceil(max_patches / allowed))  # the bank's candidates come from fewer images
            if wanted is not None and index not in wanted:
                continue
            if should_stop():
                raise TrainingCancelled("training cancelled while the teacher read the images, after 0 steps")
            with torch.no_grad():
                features = model.features(image[None].to(device))
            if model.memory is not None:
                flat = flatten_patches(patch_features(features)).cpu()
                patches.append(flat[torch.randperm(flat.shape[0], generator=generator)[:per_image]])
                sources.append(torch.full((patches[-1].shape[0],), len(kept)))
            kept.append(index)
            used += sum(f.numel() * 2 for f in features)
            if self.features is not None:
                self.features.append([f.to(torch.float16) for f in features])
                if used > CACHE_LIMIT_BYTES:
                    self.features = None  # too large a set: compute clean crops in context (slower, same result)
        self.images = images if len(kept) == len(images) else [images[i] for i in kept]
        self.left_out = len(images) - len(kept)
        self.patches = torch.cat(patches) if patches else None
        self.patch_sources = torch.cat(sources) if sources else None

    def crops(self, picks: list[tuple[int, int, int]], size: int, pixels: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Features of the crops `picks` = (image, top, left) of side `size`: sliced from the cache,
        or, for `pixels` (painted crops) or without a cache, computed with CONTEXT pixels around."""
        if pixels is None and self.features is not None:
            strides = self.model.teacher.strides
            return [torch.stack([self.features[i][s][0, :, t // st : (t + size) // st, l // st : (l + size) // st]
                                 for i, t, l in picks]).to(self.device, torch.float32)
                    for s, st in enumerate(strides)]
        if pixels is None:
            pixels = torch.stack([self.images[i][:, t : t + size, l : l + size] for i, t, l in picks])
        return self._in_context(picks, size, pixels)

    def _in_context(self, picks, size, pixels) -> list[torch.Tensor]:
        """Teacher features of crop pixels pasted into their image with CONTEXT pixels around (fewer at
        the image's edges, as in the cached features), sliced back to the crop. Windows of one shape
        share a teacher pass."""
        windows: dict[tuple[int, int], list[int]] = {}
        placed = []
        for k, (i, t, l) in enumerate(picks):
            h, w = self.images[i].shape[1:]
            top, left = max(0, t - CONTEXT), max(0, l - CONTEXT)
            bottom, right = min(h, t + size + CONTEXT), min(w, l + size + CONTEXT)
            window = self.images[i][:, top:bottom, left:right].clone()
            window[:, t - top : t - top + size, l - left : l - left + size] = pixels[k]
            placed.append((window, t - top, l - left))
            windows.setdefault(tuple(window.shape[1:]), []).append(k)
        out = [torch.empty(0)] * len(self.model.teacher.strides)
        result: list[list[torch.Tensor | None]] = [[None] * len(picks) for _ in out]
        for members in windows.values():
            with torch.no_grad():
                features = self.model.features(torch.stack([placed[k][0] for k in members]).to(self.device))
            for s, (f, st) in enumerate(zip(features, self.model.teacher.strides)):
                for row, k in enumerate(members):
                    _, dt, dl = placed[k]
                    result[s][k] = f[row, :, dt // st : (dt + size) // st, dl // st : (dl + size) // st]
        return [torch.stack(scale) for scale in result]


def _random_picks(images: list[torch.Tensor], size: int, count: int, grid: int,
                  generator: torch.Generator) -> list[tuple[int, int, int]]:
    """`count` random (image, top, left) square crops of side `size`, starting on a `grid`-pixel grid."""
    picks = []
    for i in torch.randint(0, len(images), (count,), generator=generator).tolist():
        h, w = images[i].shape[1:]
        top = grid * int(torch.randint(0, (h - size) // grid + 1, (1,), generator=generator))
        left = grid * int(torch.randint(0, (w - size) // grid + 1, (1,), generator=generator))
        picks.append((i, top, left))
    return picks


def train(
    images: Sequence[ImageLike] | str | Path,
    model_config: ModelConfig | None = None,
    config: TrainConfig | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    start_from: Detector | None = None,
) -> Detector | None:
    """Train on normal images (arrays, PIL images or paths, or a folder searched recursively).

    `start_from` fine-tunes: the student starts from that detector's weights, which converges in far
    fewer steps than training from scratch. Its model config is used, or `model_config` where that
    differs from it in MAP_SETTINGS alone (`ModelConfig.with_default_map`). In a process
    group (torchrun, distributed.py) every process trains and rank 0 returns the detector; the
    others return None.
    """
    for given, kind, name in ((config, TrainConfig, "config"), (model_config, ModelConfig, "model_config")):
        if given is not None and not isinstance(given, kind):  # a dict of settings failed deep in training, as an AttributeError
            raise InvalidInputError(f"{name} must be an rbd.{kind.__name__} (rbd.{kind.__name__}(**settings) for a dict), "
                                    f"got {type(given).__name__}")
    config = config or TrainConfig()
    if start_from is not None and model_config is not None and model_config.student_settings() != start_from.config.student_settings():
        raise InvalidInputError(f"a fine-tune keeps the model settings of the detector it starts from but {', '.join(MAP_SETTINGS)}: "
                                "leave model_config out, or train a new model without start_from")
    model_config = model_config or (start_from.config if start_from is not None else ModelConfig())
    processes = distributed.current()
    # the device and the teacher's weights first: a missing GPU or weights are said before the images are decoded
    # (22 s for bottle's 209, minutes for a large set)
    device = resolve_device(config.device)
    built = time.monotonic()
    torch.manual_seed(config.seed)  # the student's first weights
    model = RBD(model_config).to(device)
    if start_from is not None:
        model.student.load_state_dict(start_from.model.student.state_dict())
    build_s = time.monotonic() - built
    with contextlib.nullcontext() if processes.is_main else collect():  # every process reads the files: one says what it skipped
        pictures = model_pictures(images, model_config, config.seed)
    read, pictures = len(pictures), distinct(pictures)
    if read > len(pictures) and processes.is_main:
        notify(f"{copies_of(read - len(pictures), read, 'training images')}: trained on the {len(pictures)} distinct ones")
    train_ids, holdout_ids = split_holdout(len(pictures), config)
    pictures, held_out = [pictures[i] for i in train_ids], [pictures[i] for i in holdout_ids]
    start = time.monotonic() - build_s  # the budget counts the model's building, not the decoding
    budget_s = config.budget_s
    generator = torch.Generator().manual_seed(config.seed)
    stop_asked = lambda: processes.from_main(should_stop is not None and should_stop())  # noqa: E731 - every process stops together
    def readable(per_image_s: float) -> int:  # a set too large for its budget trains on a random sample (TeacherCache)
        allowed = len(pictures) if budget_s is None else int(TEACHER_SHARE * budget_s / max(per_image_s, 1e-9))
        return int(processes.from_main(min(allowed, len(pictures))))  # every process samples alike

    cached_from = time.monotonic()  # after building the model: its loading is no per-image cost
    cache = TeacherCache(model, pictures, device, generator, max_patches=MAX_CANDIDATES, should_stop=stop_asked, readable=readable)
    pictures = cache.images
    per_image_s = (time.monotonic() - cached_from) / len(pictures)
    if cache.left_out and processes.is_main:
        notify(teacher_sample(len(pictures), cache.left_out))
    memory_until = math.inf if budget_s is None else time.monotonic() + MEMORY_SHARE * budget_s
    memory_time_up = lambda: processes.from_main(time.monotonic() > memory_until)  # noqa: E731 - one bank in every process
    bank_sources, bank_left_out = fit_memory(model, cache, generator, stop_asked, memory_time_up)
    if bank_left_out and processes.is_main:
        notify(memory_cut_short(bank_left_out, model.memory.size))
    prepared_s = time.monotonic() - start
    if processes.size > 1:  # every process has the same memory, split and cache, and draws its own crops from here on
        generator.manual_seed(processes.seed(config.seed))
    loop_budget_s = None if budget_s is None else max(1e-3, budget_s - prepared_s - finish_s(per_image_s, len(holdout_ids), len(pictures)))

    optimizer = torch.optim.AdamW(model.student.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(pictures) / (config.batch_size * processes.size)))
    total_steps = math.inf if config.epochs is None else config.epochs * steps_per_epoch
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype(device) is torch.float16)  # float16 gradients underflow
    size = model_config.image_size
    student = processes.wrap(model.student)  # averages gradients over the processes
    student.train()
    loop_start, step, fraction, losses = time.monotonic(), 0, 0.0, []
    while fraction < 1.0:
        if stop_asked():
            raise TrainingCancelled(f"training cancelled after {step} steps")
        for group in optimizer.param_groups:  # cosine decay over the budget used so far
            group["lr"] = config.learning_rate * 0.5 * (1 + math.cos(math.pi * fraction))

        picks = _random_picks(pictures, size, config.batch_size, model.config.input_multiple, generator)
        target = cache.crops(picks, size)
        seen, masks = target, torch.zeros(len(picks), 1, size, size)
        if config.corruption:
            clean = torch.stack([pictures[i][:, t : t + size, l : l + size] for i, t, l in picks])
            corrupted, masks = add_defects(clean, generator, config.defect_probability)
            painted = masks.flatten(1).amax(dim=1) > 0
            if painted.any():
                rows = painted.nonzero()[:, 0].tolist()
                repainted = cache.crops([picks[k] for k in rows], size, corrupted[painted])
                seen = [t.clone() for t in target]
                for s, r in zip(seen, repainted):
                    s[painted.to(device)] = r
        masks = masks.to(device)
        with autocast(device):
            student_in = [feature_dropout(f, generator, config.feature_dropout) for f in seen] if config.feature_dropout else seen
            reconstruction = student(student_in)
            loss = reconstruction_loss(reconstruction, target)
            if config.consistency:
                loss = loss + consistency_loss(model.student_map(seen, reconstruction, (size, size)), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

        step += 1
        losses.append(loss.item())
        # in a row: mixed precision's scaler skips a step or two of inf alone
        if len(losses) >= DIVERGED_STEPS and not np.isfinite(losses[-DIVERGED_STEPS:]).any():
            raise InvalidInputError(f"training diverged: the loss was not a number for {DIVERGED_STEPS} steps in a row, up to "
                                    f"step {step}: lower learning_rate ({config.learning_rate:g})")
        elapsed = time.monotonic() - loop_start
        fraction = processes.from_main(min(1.0, max(step / total_steps, elapsed / loop_budget_s if loop_budget_s else 0.0)))
        if progress is not None:
            progress(Progress(step, step / steps_per_epoch, fraction, losses[-1], time.monotonic() - start))

    model.eval()
    loop_s = time.monotonic() - loop_start
    if not processes.is_main:
        return None
    if step < min(FEW_STEPS, total_steps):
        notify(few_steps(step))
    calibration = standardise_and_calibrate(model, cache, bank_sources, held_out, config)
    return Detector(model, calibration, training={
        "rbd_version": __version__,
        "images": len(train_ids) + len(holdout_ids),
        "train_images": len(pictures),
        "train_images_left_out": cache.left_out,  # by a budget too short for the set
        "memory_patches_left_out": bank_left_out,  # by a budget too short for the memory's choice (`fit_memory`)
        "copies_left_out": read - len(train_ids) - len(holdout_ids),  # exact copies of other images (`distinct`)
        "holdout_images": len(holdout_ids),
        "steps": step,
        "epochs": round(step / steps_per_epoch, 2),
        "seconds": round(time.monotonic() - start, 1),
        "seconds_by_phase": {"teacher_cache_and_memory": round(prepared_s, 1), "steps": round(loop_s, 1),
                             "calibration": round(time.monotonic() - start - prepared_s - loop_s, 1)},
        "final_loss": float(np.mean(losses[-steps_per_epoch:])),
        "loss_curve": _downsample(losses, 200),
        "device": device.type,
        "processes": processes.size,
        "config": {**asdict(config), "max_minutes": None if config.budget_s is None else config.max_minutes},  # JSON has no inf
    })


def fit_memory(model: RBD, cache: TeacherCache, generator: torch.Generator, should_stop: Callable[[], bool] = lambda: False,
               time_up: Callable[[], bool] = lambda: False) -> tuple[torch.Tensor | None, int]:
    """Fill the memory's bank from the cached patches: which training image each kept patch came from
    (for scoring that image blind to them), or None without a memory; and how many patches it lacks
    because `time_up()` (a short budget's share) stopped the choice, those chosen by then filling it."""
    if model.memory is None:
        return None, 0
    stopped_on_time = False

    def timed_out() -> bool:  # the choice ends at once when it is told so: the last answer says why it ended
        nonlocal stopped_on_time
        stopped_on_time = bool(time_up())
        return stopped_on_time

    kept = model.memory.fit(cache.patches, generator, should_stop, timed_out)
    return cache.patch_sources[kept], model.memory.size - kept.unique().numel() if stopped_on_time else 0


def budget_notes(training: dict, memory_size: int) -> list[str]:
    """What a training's time budget left out, from its record (`Detector.training`): what training said as it went
    (`teacher_sample`, `memory_cut_short`, `few_steps`), as the app's fine-tune status and the model card say it."""
    notes = []
    if training.get("train_images_left_out"):
        notes.append(teacher_sample(training["train_images"], training["train_images_left_out"]))
    if training.get("memory_patches_left_out"):
        notes.append(memory_cut_short(training["memory_patches_left_out"], memory_size))
    asked = (training.get("config") or {}).get("epochs")
    if isinstance(training.get("steps"), int) and training["steps"] < FEW_STEPS and (asked is None or training.get("epochs", 0) < asked):
        notes.append(few_steps(training["steps"]))
    return notes


def teacher_sample(read: int, left_out: int) -> str:
    """What to tell of a set the time budget let the teacher read a sample of (`TeacherCache`; `train_images_left_out`)."""
    return (f"the time budget (at most {TEACHER_SHARE:.0%} of it) let the teacher read {read} of the {read + left_out} training "
            "images: trained on those, a random sample; give more minutes to use all")


def few_steps(steps: int) -> str:
    """What to tell of a student the time budget let train fewer than FEW_STEPS steps."""
    return (f"the time budget let the student train only {steps} step{'' if steps == 1 else 's'} (the teacher's reading and the "
            "threshold's calibration took the rest): its maps are coarse and the patch memory carries the score; give more "
            "minutes to sharpen them")


def memory_cut_short(left_out: int, size: int) -> str:
    """What to tell of a bank a time budget cut short (`fit_memory`; recorded as `memory_patches_left_out`)."""
    return (f"the time budget (at most {MEMORY_SHARE:.0%} of it) let the patch memory choose {size - left_out} of its {size} "
            "patches, the most distinct ones: give more minutes for all")


@torch.inference_mode()
def standardise_and_calibrate(model: RBD, cache: TeacherCache, bank_sources: torch.Tensor | None,
                              held_out: Sequence[torch.Tensor], config: TrainConfig):
    """Set each distance map's normal mean and spread and the map's normal level by distance from the edge, then
    calibrate the threshold, from every
    normal image: the held-out ones and (up to MAX_CALIBRATION_IMAGES in all) training ones, each
    scored with the memory blind to the patches it gave, so no image is judged by its own copy.
    `held_out` are pictures `resized` as the training ones."""
    device = next(model.student.parameters()).device
    n_train = min(len(cache.images), max(0, MAX_CALIBRATION_IMAGES - len(held_out)))
    rows = sorted(np.random.default_rng(config.seed).permutation(len(cache.images))[:n_train].tolist())
    if bank_sources is not None:  # an image that gave every bank entry (copies of one image) cannot be scored blind to them
        rows = [row for row in rows if (bank_sources != row).any()]
    inputs = [(picture, None) for picture in held_out]
    inputs += [(cache.images[row], bank_sources == row if bank_sources is not None else None) for row in rows]

    def distances(picture: torch.Tensor, exclude, row=None):
        with scoring_autocast(device):
            if row is not None and cache.features is not None:
                teacher = [f.to(device, torch.float32) for f in cache.features[row]]
                return model.distances_from_features(teacher, exclude)
            return model.distances(picture[None].to(device), exclude)

    components = [distances(picture, exclude, None if k < len(held_out) else rows[k - len(held_out)])
                  for k, (picture, exclude) in enumerate(inputs)]
    per_map = [torch.cat([scale_maps[c].flatten() for scale_maps, _ in components]) for c in range(len(model.teacher.strides))]
    if model.memory is not None:
        per_map.append(torch.cat([memory_map.flatten() for _, memory_map in components]))
        model.memory.familiar_distance.fill_(torch.quantile(per_map[-1][:: max(1, per_map[-1].numel() // 1_000_000)], 0.99))
    for c, values in enumerate(per_map):
        model.normal_mean[c], model.normal_std[c] = values.mean(), values.std().clamp_min(1e-6)
    sizes = [tuple(picture.shape[-2:]) for picture, _ in inputs]
    # the map's level by distance from the edge, of maps without one (a trained model holds one); the maps are made
    # again for the scores below rather than kept: 200 maps of long strips would hold about 200 MB
    if model.config.edge_bands:
        model.edge_profile.zero_()
        model.edge_profile.copy_(edge_profile((model.combine(*maps, size) for maps, size in zip(components, sizes)), model.config.edge_bands))
    map_scores = torch.cat([image_score(model.combine(*maps, size), model.config.score_rule) for maps, size in zip(components, sizes)])
    if model.config.score_from == "map":
        normal_scores = map_scores.tolist()
    else:
        memory_scores = torch.cat([model.memory_score(memory_map, size) for (_, memory_map), size in zip(components, sizes)])
        _fit_score_affine(model, map_scores, memory_scores)
        normal_scores = model.blended_score(map_scores, memory_scores).tolist()

    generator = torch.Generator().manual_seed(config.seed + 1)
    synthetic_scores = []
    for picture, exclude in inputs[:MAX_SYNTHETIC_IMAGES]:
        painted, _ = add_defects(picture[None], generator, probability=1.0)
        with scoring_autocast(device):
            maps = model.distances(painted.to(device), exclude)
        synthetic_scores.append(_score(model, maps, picture.shape[-2:]))
    return calibrate(normal_scores, synthetic_scores, config.false_alarm_rate)


def finish_s(per_image_s: float, holdout: int, trained: int) -> float:
    """The time to keep for calibration at the end of a budget: a whole network pass (about two teacher passes) for
    each held-out and synthetic-defect image, student and memory alone (cached teacher features) for each training
    image scored; as `standardise_and_calibrate` makes them (synthetic defects on at most MAX_SYNTHETIC_IMAGES of its images:
    a set of 5 has 5, and keeping time for 30 left most of a short budget unused)."""
    scored = min(trained, max(0, MAX_CALIBRATION_IMAGES - holdout))
    return per_image_s * (2 * (holdout + min(MAX_SYNTHETIC_IMAGES, holdout + scored)) + 0.75 * scored)


def _fit_score_affine(model: RBD, map_scores: torch.Tensor, memory_scores: torch.Tensor) -> None:
    """Put the memory's own score in the anomaly map's units: the affine map under which the memory's
    scores of the normal images have the mean and spread of their map scores. One threshold then
    judges the image (by a score the memory ranks) and its pixels (by the map)."""
    scale = map_scores.std() / memory_scores.std().clamp_min(1e-6) if len(map_scores) > 1 else torch.tensor(1.0)
    model.score_affine.copy_(torch.stack([scale, map_scores.mean() - scale * memory_scores.mean()]))


def _score(model: RBD, maps, size) -> float:
    return float(model.scored(*maps, tuple(size))[1][0])


class BackgroundTraining:
    """`train()` in a worker thread, so a UI can stream its progress and cancel it.

        job = BackgroundTraining(images, config=TrainConfig(epochs=30))
        for progress in job.updates(): ...      # closing this loop early cancels training
        detector = job.result()
    """

    def __init__(self, images, model_config: ModelConfig | None = None, config: TrainConfig | None = None,
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


def _downsample(values: list[float], count: int) -> list[float]:
    """At most `count` points of a curve (means of equal chunks), for storing in JSON."""
    if len(values) <= count:
        return [round(v, 5) for v in values]
    chunks = np.array_split(np.asarray(values), count)
    return [round(float(c.mean()), 5) for c in chunks]
