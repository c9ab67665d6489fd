"""The whole model as one pure-torch module: frozen teacher, reconstructing student, patch memory, anomaly map.

No data loading, calibration or files here (those live in train.py, calibration.py and
checkpoint.py), so the module can be exported, scripted or wrapped by other tools.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from .anomaly_map import SCORE_RULES, UpsampleBlur, anomaly_map, distance_maps, edge_level, image_score, student_map
from .backbones import DEFAULT_LAYERS, Teacher
from .errors import InvalidInputError
from .geometry import Fit, fit
from .memory import MAX_CANDIDATES, PatchMemory
from .student import Student


SCORE_SOURCES = ("both", "memory", "map")
# the input's largest short side and long-to-short ratio: a 1024 x 4096 strip takes about 0.4 GB of teacher
# activations an image; larger ended in an allocation failure or the kernel's out-of-memory kill
MAX_IMAGE_SIZE, MAX_ASPECT = 1024, 16
# A checkpoint's config.json comes from anyone on the Hub: sizes past these were allocated as they stood (a bank of
# 10^9 patches asked for 608 GB) before a weight was read. 4096 channels is 16 times the original student's widest layer;
# feature levels 0-4 are every timm backbone's (strides 2-32).
MAX_WIDTH, MAX_LAYER = 4096, 4
MAX_EDGE_BANDS = MAX_IMAGE_SIZE // 2  # one pixel each at the largest input
# The settings that say how a trained student's distances become the map and the score. Training fits what they need
# (bank, standardisation, edge level, score affine) after the student has learned, so a fine-tune may change them.
MAP_SETTINGS = ("memory_size", "score_from", "edge_bands", "score_rule")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network; stored in the checkpoint's config.json."""

    backbone: str = "tf_efficientnet_lite0"
    layers: tuple[int, ...] = DEFAULT_LAYERS
    image_size: int = 256  # short side of the model input, in pixels
    max_aspect: float = 4.0  # long side is at most this many times the short side
    # The student's sizes: 0.13 G multiply-adds at 256x256, a third of the earlier embed_dim 256 and
    # decoder (128, 64, 32); within 0.006 of it in every metric on the development sets, with more
    # steps in the same minutes and half the student's time per prediction (BENCHMARKS.md)
    bottleneck_width: int = 64
    embed_dim: int = 128
    decoder_widths: tuple[int, ...] = (64, 32, 24)
    blur_sigma: float = 4.0  # at image_size 256; scaled with image_size
    score_rule: str = "top1"  # chosen by measurement: bench/score_rules.py
    # normal patch features kept (memory.py); 0: the student's map alone. 2048 rather than 1024: elpv_mono's
    # ranking +0.007 on each of three draws of the bank, the other sets level or a little better, for about
    # twice the memory's search time (BENCHMARKS.md)
    memory_size: int = 2048
    # What ranks images: "map", the top of the anomaly map; "memory", the top of the memory's own map
    # (PatchCore's ranking); "both", the mean of the two, the memory's put in the map's units. The map
    # localises best, but the memory ranks some products better (bench.ablation); "both" gained on three
    # development sets of four and cost the fourth less than the noise of one run
    score_from: str = "both"
    # The map's normal level is learned in this many bands of distance from the input's edge (anomaly_map.edge_level;
    # 64: 2 px each at 256 px) and subtracted; 0: none. AUPRO +0.010 to +0.023 and pixel AUROC +0.001 to +0.007 on the
    # three development sets with masks, image rankings level (BENCHMARKS.md)
    edge_bands: int = 64

    def __post_init__(self):
        wrong = [f"{f.name} must be {_kind_name(f.default)}, got {getattr(self, f.name)!r}"
                 for f in fields(self) if not _is_kind_of(getattr(self, f.name), f.default)]
        if wrong:  # before the checks below do arithmetic on them
            raise InvalidInputError("invalid model settings: " + "; ".join(wrong))
        if not all(0 <= layer <= MAX_LAYER for layer in self.layers) or list(self.layers) != sorted(set(self.layers)):
            raise InvalidInputError(f"layers must be increasing feature levels from 0 to {MAX_LAYER}, got {self.layers}")
        m = self.input_multiple
        if self.image_size < m or self.image_size % m:
            raise InvalidInputError(f"image_size must be a multiple of {m} (at least {m}) for layers {self.layers}, got {self.image_size}")
        if self.image_size > MAX_IMAGE_SIZE:
            raise InvalidInputError(f"image_size must be at most {MAX_IMAGE_SIZE} (16 times the default's pixels), got {self.image_size}")
        if not 0.1 <= self.blur_sigma <= 64:  # less is no smoothing (and from 1e-45 down a NaN map), more no map
            raise InvalidInputError(f"blur_sigma must be from 0.1 to 64 (the map's smoothing, in pixels at 256 px), got {self.blur_sigma}")
        if not 1 <= self.max_aspect <= MAX_ASPECT:
            raise InvalidInputError(f"max_aspect must be from 1 to {MAX_ASPECT}, got {self.max_aspect}")
        if not 0 <= self.memory_size <= MAX_CANDIDATES:
            raise InvalidInputError(f"memory_size must be from 0 (no memory) to {MAX_CANDIDATES} (the most patches it is chosen "
                                    f"from), got {self.memory_size}")
        widths = {"bottleneck_width": (self.bottleneck_width,), "embed_dim": (self.embed_dim,), "decoder_widths": self.decoder_widths}
        outside = [name for name, values in widths.items() if any(not 1 <= value <= MAX_WIDTH for value in values)]
        if outside:  # torch's own error came from deep in a layer's set-up, or a width past MAX_WIDTH was allocated
            raise InvalidInputError(f"{' and '.join(outside)} must be from 1 to {MAX_WIDTH} (a layer's channels), got "
                                    + ", ".join(f"{name} {getattr(self, name)}" for name in outside))
        if len(self.decoder_widths) != len(self.layers):
            raise InvalidInputError(f"decoder_widths needs one width per teacher layer ({len(self.layers)}), got {self.decoder_widths}")
        if not 0 <= self.edge_bands <= MAX_EDGE_BANDS:
            raise InvalidInputError(f"edge_bands must be from 0 (none) to {MAX_EDGE_BANDS}, got {self.edge_bands}")
        if self.score_rule not in SCORE_RULES:
            raise InvalidInputError(f"score_rule must be one of {', '.join(SCORE_RULES)}, got {self.score_rule!r}")
        if self.score_from not in SCORE_SOURCES:
            raise InvalidInputError(f"score_from must be one of {', '.join(SCORE_SOURCES)}, got {self.score_from!r}")
        if self.score_from != "map" and not self.memory_size:
            raise InvalidInputError(f'score_from "{self.score_from}" needs a memory (memory_size > 0); use score_from "map" without one')

    @property
    def input_multiple(self) -> int:
        """What the model input's sides must divide by: the student's embedding stride, twice the
        deepest teacher layer's. In every registered backbone feature_info layer i has stride
        2^(i+1); `RBD` checks that against the teacher it builds."""
        return 2 ** (max(self.layers) + 2)

    def fit(self, height: int, width: int) -> Fit:
        """The model input size for an image of `height` x `width` (geometry.py)."""
        return fit(height, width, self.image_size, self.max_aspect, self.input_multiple)

    def student_settings(self) -> dict:
        """The settings that shape the student and its training: all but MAP_SETTINGS."""
        return {name: value for name, value in asdict(self).items() if name not in MAP_SETTINGS}

    def with_default_map(self) -> "ModelConfig":
        """These student settings with today's default MAP_SETTINGS: a fine-tune in the app of a checkpoint made
        before a map setting existed (a format 3 checkpoint has no edge level, a format 1 one no memory) then gets
        the map the app trains today."""
        return replace(self, **{name: getattr(ModelConfig, name) for name in MAP_SETTINGS})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InvalidInputError(f"unknown model settings: {', '.join(sorted(unknown))}")
        tuples = {k: tuple(v) for k, v in values.items() if isinstance(v, list)}
        return cls(**{**values, **tuples})


def _is_kind_of(value, default) -> bool:
    """Whether a setting has the kind of its default: an int, a number (an int or a float), a string, or a
    non-empty tuple of such. A checkpoint's config.json is edited by hand at times, and a string or a
    fraction where a count belongs would otherwise fail deep inside the network's construction."""
    if isinstance(value, bool):
        return False
    if isinstance(default, tuple):
        return isinstance(value, tuple) and len(value) > 0 and all(_is_kind_of(v, default[0]) for v in value)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _kind_name(default) -> str:
    if isinstance(default, tuple):
        return "a list of " + {int: "whole numbers", float: "numbers", str: "strings"}[type(default[0])]
    return {int: "a whole number", float: "a number", str: "a string"}[type(default)]


def map_blur(config: ModelConfig) -> UpsampleBlur:
    """The map's smoothing: `blur_sigma`, given at 256 px, scaled with the input's size."""
    return UpsampleBlur(config.blur_sigma * config.image_size / 256)


class RBD(nn.Module):
    """Reconstruction-based distillation. `forward(images in [0, 1]) -> (B, 1, H, W) anomaly map`.

    Besides the student's weights, a trained model holds the memory's bank, each distance map's
    mean and spread on normal images (`normal_mean`, `normal_std`: one per teacher scale, then the
    memory's), the map's normal level by distance from the edge (`edge_profile`) and the affine
    map that puts the memory's own score in the anomaly map's units (`score_affine`: scale,
    shift), so that one threshold judges both the image and its pixels.
    Training sets them after the student has learned; until then the map is the plain mean of the
    student's distances and the memory's score is unscaled.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.teacher = Teacher(config.backbone, config.layers)
        if 2 * self.teacher.strides[-1] != config.input_multiple:
            raise InvalidInputError(f"backbone {config.backbone!r} layer {max(config.layers)} has stride {self.teacher.strides[-1]}, "
                                    f"not the {config.input_multiple // 2} that ModelConfig.input_multiple assumes")
        self.student = Student(self.teacher.channels, self.teacher.strides, config.bottleneck_width, config.embed_dim,
                               config.decoder_widths)
        self.memory = PatchMemory(sum(self.teacher.channels[-2:]), config.memory_size) if config.memory_size else None
        self.register_buffer("normal_mean", torch.zeros(len(self.teacher.channels) + 1))
        self.register_buffer("normal_std", torch.ones(len(self.teacher.channels) + 1))
        self.register_buffer("score_affine", torch.tensor([1.0, 0.0]))
        self.register_buffer("edge_profile", torch.zeros(config.edge_bands))
        self.blur = map_blur(config)
        self.register_buffer("mean", torch.tensor(self.teacher.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.teacher.std).view(1, 3, 1, 1), persistent=False)
        self.to(memory_format=torch.channels_last)  # faster convolutions on CPU and GPU

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Teacher features of (B, 3, H, W) images in [0, 1], always in float32, also under autocast:
        the maps are standardised by the spread of normal distances, which is small, and bfloat16
        features moved weld's standardised maps by up to 2.2 and its scores by up to 0.7 against
        its threshold of 7.9 (BENCHMARKS.md), so a checkpoint would judge differently on CPUs with
        and without native bfloat16."""
        with torch.autocast(images.device.type, enabled=False):
            return self.teacher(self.teacher_input(images))

    def teacher_input(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] as the teacher takes them: float32, its normalisation, channels-last."""
        return ((images.float() - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def student_map(self, teacher: list[torch.Tensor], student: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """The student's raw map, which the prediction-consistency loss trains (anomaly_map.py)."""
        return student_map(teacher, student, size, self.blur)

    def distances(self, images: torch.Tensor, exclude: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """The raw distance maps at feature resolution: one per teacher scale, and the memory's (or None).
        `exclude` leaves bank entries out of the memory (see PatchMemory.forward)."""
        return self.distances_from_features(self.features(images), exclude)

    def distances_from_features(self, teacher: list[torch.Tensor], exclude: torch.Tensor | None = None):
        scale_maps = distance_maps(teacher, self.student(teacher))
        memory_map = self.memory(teacher, exclude) if self.memory is not None else None
        return scale_maps, memory_map

    def combine(self, scale_maps: list[torch.Tensor], memory_map: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        """The anomaly map (B, 1, *size): the distance maps standardised, added, upsampled and blurred, less their
        normal level at each distance from the edge (anomaly_map.py)."""
        maps = anomaly_map(scale_maps, memory_map, self.normal_mean, self.normal_std, size, self.blur)
        return maps - edge_level(self.edge_profile, size) if self.config.edge_bands else maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.combine(*self.distances(images), images.shape[-2:])

    def scored(self, scale_maps: list[torch.Tensor], memory_map: torch.Tensor | None,
               size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The anomaly map (B, 1, *size) and the image score (B,)."""
        maps = self.combine(scale_maps, memory_map, size)
        return maps, self.score(maps, memory_map, size)

    def score(self, maps: torch.Tensor, memory_map: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        """(B,) image scores in the map's units, from the anomaly map `maps`, the memory's own map or both (`score_from`)."""
        map_score = image_score(maps, self.config.score_rule)
        if self.config.score_from == "map":
            return map_score
        return self.blended_score(map_score, self.memory_score(memory_map, size))

    def blended_score(self, map_score: torch.Tensor, memory_score: torch.Tensor) -> torch.Tensor:
        """The image score from the map's score and the memory's own (before `score_affine`), as `score_from` says."""
        scale, shift = self.score_affine
        memory_score = memory_score * scale + shift
        return memory_score if self.config.score_from == "memory" else (map_score + memory_score) / 2

    def memory_score(self, memory_map: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B,) the score of the memory's own map (standardised, upsampled and blurred as in the
        anomaly map), before `score_affine`."""
        return image_score(anomaly_map([], memory_map, self.normal_mean, self.normal_std, size, self.blur), self.config.score_rule)

    def trained_state(self) -> dict[str, torch.Tensor]:
        """Everything training made (student, memory bank, normal statistics, edge profile, score affine): what a
        checkpoint stores."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("teacher.")}

    def load_trained_state(self, state: dict[str, torch.Tensor]) -> None:
        """The inverse of `trained_state`; every key must match (RuntimeError otherwise)."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("teacher.")]
        if missing or unexpected:
            raise RuntimeError(f"missing {missing[:5]}, unexpected {unexpected[:5]}")
