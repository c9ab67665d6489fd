"""The scoring network: images in, anomaly map, image score and familiarity out.

This is the one definition of what a detector computes before calibration: `Detector` runs it
in torch, `rbd.export` writes this same module to ONNX, and the ONNX runner (onnx_runtime.py)
returns the same three outputs, so everything after the network (sizing maps back to the image,
calibration, `Prediction`) is shared by both.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import nn

from .model import RBD, ModelConfig


class Outputs(NamedTuple):
    anomaly_map: torch.Tensor  # (B, 1, H, W), the input's size
    score: torch.Tensor  # (B,)
    familiarity: torch.Tensor | None  # (B,) share of familiar patches; None without a patch memory


class Network(Protocol):
    """What `Detector` needs from a network: its settings, its device, `to(device)` and `__call__(images) -> Outputs`."""

    @property
    def config(self) -> ModelConfig: ...

    @property
    def device(self) -> torch.device: ...

    def to(self, device: str | torch.device): ...

    def __call__(self, images: torch.Tensor) -> Outputs: ...


class ScoringNetwork(nn.Module):
    """`RBD` plus the image score and familiarity. The config is read from the model at each call,
    so a caller that swaps the model's score rule (bench/score_rules.py) is followed."""

    def __init__(self, model: RBD):
        super().__init__()
        self.model = model

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.student.parameters()).device

    def forward(self, images: torch.Tensor) -> Outputs:
        """(B, 3, H, W) in [0, 1] -> Outputs."""
        if torch.compiler.is_exporting():
            images = _sides_checked(images, self.config.input_multiple)
        scale_maps, memory_map = self.model.distances(images)
        maps, scores = self.model.scored(scale_maps, memory_map, images.shape[-2:])
        familiarity = self.model.memory.familiarity(memory_map) if memory_map is not None else None
        return Outputs(maps, scores, familiarity)


def _sides_checked(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """`images` unchanged, by way of blocks of `multiple` pixels a side: in an ONNX export this is a Reshape
    that onnxruntime refuses for sides that are not multiples, for which the exported padding and grids
    would give a wrong map without any error (rbd's own callers always resize to multiples: ModelConfig.fit)."""
    b, c, h, w = images.shape
    return images.reshape(b, c, h // multiple, multiple, w // multiple, multiple).reshape(b, c, h, w)
