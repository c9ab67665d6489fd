"""rbd: visual anomaly detection by reconstruction-based distillation, learned from good images only.

    import rbd
    detector = rbd.train("parts/good")            # or rbd.load("checkpoints/bottle")
    prediction = detector.predict("part.png")
    prediction.score, prediction.verdict, prediction.anomaly_map, prediction.mask
"""

__version__ = "0.1.0"

from .allocator import keep_freed_memory

keep_freed_memory()  # every forward pass reuses the last one's memory (allocator.py)

from .calibration import Calibration, calibrate
from .checkpoint import load, push_to_hub, save
from .detector import Detector, Prediction, Region, predict_files
from .errors import (BackboneError, CheckpointError, DatasetLayoutError, EngineError, HubError, ImageReadError, InvalidInputError, NoImagesError,
                     RBDError, TrainingCancelled, UploadError)
from .evaluate import Evaluation, evaluate, evaluation_picture
from .model import RBD, ModelConfig
from .train import Progress, TrainConfig, train
from . import images, thresholds  # rbd.images.file_shape, rbd.thresholds.describe: named in the README

__all__ = [
    "BackboneError", "Calibration", "CheckpointError", "DatasetLayoutError", "Detector", "EngineError", "Evaluation", "HubError", "ImageReadError",
    "InvalidInputError", "ModelConfig", "NoImagesError", "Prediction", "Progress", "RBD", "RBDError", "Region", "TrainConfig",
    "TrainingCancelled", "UploadError", "calibrate", "evaluate", "evaluation_picture", "load", "predict_files", "push_to_hub", "save", "train",
]
