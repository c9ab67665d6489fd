"""`rbd export`: a detector as one ONNX file, for deployment where torch is not wanted.

The file holds the whole scoring network (network.py: teacher, student, patch memory, anomaly
map, image score, familiarity). Input `image`: (batch, 3, height, width) float32 RGB in [0, 1],
both sides multiples of `ModelConfig.input_multiple` (32 for the default layers), as
`ModelConfig.fit` makes every model input; other sides fail at a Reshape (network.py) rather than
give a wrong map. Outputs: `anomaly_map`
(batch, 1, height, width), `score` (batch) and, where the model has a patch memory,
`familiarity` (batch). Batch and sides are dynamic. The metadata entry `rbd` holds the
checkpoint's config.json (model settings, threshold, calibration, training summary), so
`rbd.load("x.onnx")` gives a complete detector (onnx_runtime.py).

The EfficientNet-Lite teachers use TensorFlow "same" padding, which timm works out from each
input's size at run time; traced with symbolic sizes, that arithmetic made torch.export take ten
minutes. For sides that divide by a convolution's stride (every model input's do) the padding is
a constant, so the exported copy of the network uses constants.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.layers.conv2d_same import Conv2dSame
from torch import nn

from .checkpoint import checkpoint_config
from .detector import Detector
from .errors import InvalidInputError, require_modules
from .files import atomic_write
from .network import ScoringNetwork
from .onnx_runtime import INPUT, METADATA_KEY, OUTPUTS


def check_installed() -> None:
    """torch.onnx needs onnx and onnxscript, an extra of `pip install .`."""
    require_modules(("onnx", "onnxscript"), "exporting to ONNX", "onnx")


def onnx_target(path: str | Path) -> Path:
    """`path`, checked before the minute an export takes to be a file an export may go to: a name ending in .onnx
    (`rbd.load` tells an export by it), not a folder, and no file but an earlier export of rbd's, which it replaces
    (as `rbd.save` replaces only a checkpoint: another tool's model was written over without a word)."""
    path = Path(path)
    if path.suffix.lower() != ".onnx" or path.is_dir():
        raise InvalidInputError(f"{path}: {'is a folder; name ' if path.is_dir() else ''}the ONNX file to write, a name ending in .onnx")
    if path.exists() and not _is_export(path):
        raise InvalidInputError(f"{path} is there, and is no ONNX export of rbd's: remove it or name another file")
    return path


def _is_export(path: Path) -> bool:
    """Whether `path` is an ONNX file with rbd's metadata entry."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - protobuf's and onnx's own types for a file that is no ONNX model
        return False
    return any(entry.key == METADATA_KEY for entry in model.metadata_props)


def export_onnx(detector: Detector, path: str | Path) -> Path:
    """Write `detector` (a torch one) to `path` (`onnx_target`) as ONNX; returns the path."""
    check_installed()
    from torch.export import Dim

    path = onnx_target(path)
    network = ScoringNetwork(_with_constant_padding(copy.deepcopy(detector.model).cpu().float())).eval()
    side, multiple = detector.config.image_size, detector.config.input_multiple
    example = torch.rand(2, 3, side, side + multiple)  # unequal sides and batch > 1: nothing gets fixed to the example
    blocks = {2: multiple * Dim("height_blocks", min=1), 3: multiple * Dim("width_blocks", min=1)}
    outputs = list(OUTPUTS if detector.model.memory is not None else OUTPUTS[:2])
    with torch.no_grad():
        program = torch.onnx.export(network, (example,), input_names=[INPUT], output_names=outputs, dynamo=True,
                                    dynamic_shapes={"images": {0: Dim("batch", min=1), **blocks}}, verbose=False)
    model = program.model_proto
    _name_dimensions(model.graph)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(checkpoint_config(detector)))
    model.doc_string = (f"rbd anomaly detector: image (batch, 3, height, width) in [0, 1] -> anomaly_map, score, familiarity. "
                        f"Sides as rbd resizes: short side {side}, long side at most {detector.config.max_aspect:g} times it, "
                        f"both multiples of {multiple} (other sides are refused)")
    with atomic_write(path) as f:
        f.write(model.SerializeToString())
    return path


class _ConstantSamePadding(nn.Module):
    """A timm `Conv2dSame` with its padding worked out once: exact for inputs whose sides divide by its stride."""

    def __init__(self, conv: Conv2dSame):
        super().__init__()
        self.conv = conv
        total = [max((k - 1) * d + 1 - s, 0) for k, s, d in zip(conv.kernel_size, conv.stride, conv.dilation)]
        self.padding = (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2)  # as timm's pad_same

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.Conv2d.forward(self.conv, F.pad(x, self.padding))  # Conv2dSame's own padding is 0


def _with_constant_padding(module: nn.Module) -> nn.Module:
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv2dSame):
                setattr(parent, name, _ConstantSamePadding(child))
    return module


def _name_dimensions(graph) -> None:
    """Call the exporter's symbolic sizes of the input `batch`, `height` and `width` wherever they appear."""
    image = graph.input[0].type.tensor_type.shape.dim
    names = {image[0].dim_param: "batch", image[2].dim_param: "height", image[3].dim_param: "width"}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]
