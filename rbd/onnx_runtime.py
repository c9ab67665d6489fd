"""An ONNX export (export.py) run by onnxruntime, as the network a `Detector` holds.

No torch model is built and no teacher weights are needed: the file holds the whole scoring
network, and its metadata entry `rbd` the checkpoint's config (model settings, calibration,
threshold, training summary). Everything after the network (sizing maps back to the image,
calibration, `Prediction`) is the Detector's, the same as for a torch checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import assemble, parse_config, settings
from .detector import Detector
from .errors import CheckpointError, InvalidInputError
from .model import ModelConfig
from .network import Outputs
from .runtime import resolve_device

METADATA_KEY = "rbd"  # the metadata entry holding the checkpoint config
INPUT = "image"
OUTPUTS = ("anomaly_map", "score", "familiarity")  # familiarity only where the model has a patch memory


def load_onnx(path: str | Path, device: str | torch.device = "cpu") -> Detector:
    """A `Detector` running the ONNX export at `path`."""
    network = OnnxNetwork(path, device=device)
    config = parse_config(network.metadata, path)
    model_config, calibration = settings(config, path)
    network.config = model_config
    return assemble(network, calibration, config)


class OnnxNetwork:
    """An onnxruntime session with the `Network` interface (network.py). It uses as many threads as
    torch does (`torch.set_num_threads`), so a process's thread budget holds for both."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        self.path = Path(path)
        self.config: ModelConfig | None = None  # set by `load_onnx` from the file's metadata
        self.to(device)

    @property
    def metadata(self) -> str:
        """The checkpoint config (JSON text) stored in the file."""
        text = self._session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if text is None:
            raise CheckpointError(f"{self.path}: an ONNX file without rbd's metadata: not exported by rbd")
        return text

    def to(self, device: str | torch.device) -> "OnnxNetwork":
        """A session on `device`: CPU, or CUDA where onnxruntime was built with it (onnxruntime-gpu). "auto" takes CUDA
        only where this onnxruntime has it: the one rbd installs is the CPU build, which a GPU machine would refuse."""
        try:
            import onnxruntime
        except ImportError as err:
            raise CheckpointError(f"{self.path}: running .onnx files needs onnxruntime (pip install onnxruntime)") from err
        has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        self.device = resolve_device("cpu" if device == "auto" and not has_cuda else device)
        if self.device.type == "cuda" and not has_cuda:
            raise InvalidInputError(f"this onnxruntime cannot run on {self.device.type}: install onnxruntime-gpu")
        provider = session_provider(self.device)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(str(self.path), options, providers=[provider])
        except Exception as err:  # onnxruntime raises its own types (InvalidProtobuf, Fail, NoSuchFile) per problem
            raise CheckpointError(f"{self.path}: not a readable ONNX model ({type(err).__name__}: {err})") from err
        names = [output.name for output in self._session.get_outputs()]
        if names not in (list(OUTPUTS), list(OUTPUTS[:2])):
            raise CheckpointError(f"{self.path}: outputs {names}, not those of an rbd export {list(OUTPUTS)}")
        self._outputs = names
        return self

    def __call__(self, images: torch.Tensor) -> Outputs:
        values = self._session.run(self._outputs, {INPUT: images.detach().float().cpu().numpy()})
        tensors = [torch.from_numpy(value).to(self.device) for value in values]
        return Outputs(tensors[0], tensors[1], tensors[2] if len(tensors) == 3 else None)


def session_provider(device: torch.device) -> tuple[str, dict]:
    """onnxruntime's provider for `device` and its options: the CUDA one is given the GPU's index (without it,
    `cuda:1` ran on GPU 0)."""
    if device.type != "cuda":
        return "CPUExecutionProvider", {}
    return "CUDAExecutionProvider", {"device_id": device.index if device.index is not None else torch.cuda.current_device()}
