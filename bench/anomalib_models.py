"""anomalib 2.7.0's PatchCore and PaDiM on rbd's offline teacher, for bench/compare.py.

We drive anomalib's own torch models without its Engine: training is a forward pass in train
mode over the normal images (anomalib collects the features) followed by the Lightning
module's `fit()` (coreset sampling, or the Gaussian fit); scoring is a forward pass in eval
mode, whose `pred_score` and `anomaly_map` are the raw outputs, before any post-processor
normalisation or sigmoid could squash them into ties. Pre-processing is done here, as in
`../shared/peers.md`: squashed to 256x256, grey repeated to 3 channels, mean = std = 0.5.

The teacher is built by anomalib with `pre_trained=False` (no download can start) and then
gets rbd's `tf_efficientnet_lite0` ImageNet weights; after fitting, every tensor of anomalib's
feature extractor is checked to equal rbd's.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from rbd.backbones import load_classifier
from rbd.images import find_images, read_image

with warnings.catch_warnings():  # anomalib's import warns about its own deprecated modules we do not use
    warnings.simplefilter("ignore", FutureWarning)
    from anomalib.models import Padim, Patchcore

TEACHER = "tf_efficientnet_lite0"
INPUT_SIZE = [256, 256]
MEAN = STD = 0.5
BATCH_SIZE = 8
# timm module names of the teacher's stride-4, -8 and -16 stages
STAGES = {4: "blocks.1", 8: "blocks.2", 16: "blocks.4"}
ANOMALIB_OFF = dict(pre_processor=False, post_processor=False, evaluator=False, visualizer=False)


@functools.cache
def teacher() -> torch.nn.Module:
    """rbd's teacher: the full ImageNet classifier, loaded offline exactly as rbd loads it."""
    return load_classifier(TEACHER)


def preprocess(image: np.ndarray) -> torch.Tensor:
    """(1, 3, 256, 256) input from an rbd image array ((H, W, 3) RGB in [0, 1]; grey is already 3 equal channels)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    x = TF.resize(x, INPUT_SIZE, antialias=True)  # anomalib's Resize: bilinear, antialiased
    return (x - MEAN) / STD


class AnomalibModel:
    """One anomalib model (PatchCore or PaDiM) with rbd's teacher: `fit(folder)`, then `predict(image)`."""

    def __init__(self, name: str, module: Patchcore | Padim, settings: dict):
        self.name, self.module, self.settings = name, module, settings
        self.extractor = module.model.feature_extractor.feature_extractor  # the timm network
        self.teacher = teacher().state_dict()
        self.extractor.load_state_dict({key: self.teacher[key] for key in self.extractor.state_dict()}, strict=True)
        self.facts: dict = {}

    def fit(self, folder: Path) -> None:
        paths = find_images(folder)
        self.module.model.train()  # anomalib's extractor keeps itself in eval mode: BatchNorm stays ImageNet's
        for start in range(0, len(paths), BATCH_SIZE):
            self.module.model(torch.cat([preprocess(read_image(p)) for p in paths[start : start + BATCH_SIZE]]))
        self.module.fit()
        self.module.model.eval()
        self.facts = {"train_images": len(paths), "teacher_tensors_checked": self.check_teacher()}

    def predict(self, image: np.ndarray) -> tuple[float, np.ndarray]:
        """Raw image score and the 256x256 anomaly map, as anomalib's torch model returns them."""
        with torch.no_grad():
            out = self.module.model(preprocess(image))
        return float(out.pred_score[0]), out.anomaly_map[0, 0].numpy()

    def check_teacher(self) -> int:
        """Raise unless every tensor of anomalib's feature extractor equals rbd's teacher's; their count."""
        state = self.extractor.state_dict()
        differing = [key for key, value in state.items() if key not in self.teacher or not torch.equal(value, self.teacher[key])]
        if differing or not state:
            raise RuntimeError(f"{self.name}: feature extractor is not rbd's {TEACHER}: {len(differing)} tensors differ, e.g. {differing[:3]}")
        return len(state)


def patchcore(coreset: float, strides: tuple[int, ...] = (8, 16), neighbours: int = 9) -> AnomalibModel:
    layers = [STAGES[s] for s in strides]
    module = Patchcore(backbone=TEACHER, layers=layers, pre_trained=False, coreset_sampling_ratio=coreset,
                       num_neighbors=neighbours, **ANOMALIB_OFF)
    return AnomalibModel("patchcore", module, {"strides": list(strides), "layers": layers, "coreset": coreset, "neighbours": neighbours})


def padim(strides: tuple[int, ...]) -> AnomalibModel:
    """PaDiM on all channels of the `strides` stages (no random channel subset)."""
    layers = [STAGES[s] for s in strides]
    channels = sum(info["num_chs"] for info in teacher().feature_info if info["module"] in layers)
    module = Padim(backbone=TEACHER, layers=layers, pre_trained=False, n_features=channels, **ANOMALIB_OFF)
    return AnomalibModel("padim", module, {"strides": list(strides), "layers": layers, "channels": channels})
