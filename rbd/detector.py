"""Inference: a trained model plus its calibration, turning images into decisions.

`Detector.predict(image)` gives the anomaly score, the normalised score, the verdict, the
anomaly map at the image's own size, the defect mask and the defect regions. The threshold is
a plain attribute: moving it changes verdicts and masks without running the network again
(`Detector.rethreshold`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .allocator import MMAP_THRESHOLD
from .anomaly_map import largest, top_count
from .calibration import Calibration, checked_threshold, is_defective
from .geometry import to_image_size, to_input
from .images import (IMAGE_EXTENSIONS, MAX_SIDE, ImageLike, checked_batch_size, each_image, find_images, image_batches, is_path,
                     nearest_sources, scored_input, several)
from .errors import InvalidInputError, NoImagesError
from .model import RBD, ModelConfig
from .network import Network, ScoringNetwork
from .regions import connected_regions
from .runtime import PRECISIONS, resolve_device, scoring_autocast


def verdict(score: float, threshold: float) -> str:
    return "defective" if is_defective(score, threshold) else "good"


def defect_mask(anomaly_map: np.ndarray, score: float, threshold: float) -> np.ndarray:
    """Pixels at or above the threshold, the verdict's rule pixel by pixel; empty for a good
    image (its score, a mean over the top pixels, can stay below a threshold that single pixels
    cross), so a mask never marks a good image. Where the memory's part of the score made a
    defective verdict that no pixel of the map reaches, the mask marks the map's hottest 1 %
    (the pixels the map's share of the default score averages), so a defective image always shows where it looks wrong."""
    if not is_defective(score, threshold):
        return np.zeros(anomaly_map.shape, dtype=bool)
    mask = is_defective(anomaly_map, threshold)
    if mask.any():
        return mask
    k = top_count(anomaly_map.size)
    return anomaly_map >= largest(anomaly_map.ravel(), k).min()


@dataclass(frozen=True)
class Region:
    """One connected defect region of a mask; `box` is (x0, y0, x1, y1), x1/y1 exclusive."""

    area: int
    max_score: float
    box: tuple[int, int, int, int]


# An image with less than this share of familiar patches is out of the model's domain. On the development
# sets normal test images had 0.85-0.97, images with large defects down to 0.4 (elpv_mono's most cracked cells
# 0.10-0.21), other products 0-0.05.
FAMILIAR_MIN = 0.25
# what an image out of domain may be, said wherever one is (a large defect is one, and its verdict holds)
OUT_OF_DOMAIN_MEANS = ("another product, view, camera or lighting than the model learned, whose verdict says little, or a "
                       "defect over much of the part: look at it")


def is_out_of_domain(familiarity: float | None) -> bool:
    """Most of the image is unlike every training image (OUT_OF_DOMAIN_MEANS). Never for a model without memory (None)."""
    return familiarity is not None and familiarity < FAMILIAR_MIN


@dataclass(frozen=True, eq=False)  # compared and hashed as objects: a field-wise == on the map raised (numpy's "ambiguous")
class Prediction:
    score: float
    normalized_score: float  # 0.5 at the threshold
    threshold: float
    anomaly_map: np.ndarray  # (H, W) float32, the input image's size
    familiarity: float | None = None  # share of patches like the training images' (None: the model has no memory)

    @property
    def out_of_domain(self) -> bool:
        return is_out_of_domain(self.familiarity)

    @property
    def is_anomalous(self) -> bool:
        return is_defective(self.score, self.threshold)

    @property
    def verdict(self) -> str:
        return verdict(self.score, self.threshold)

    @property
    def mask(self) -> np.ndarray:
        return defect_mask(self.anomaly_map, self.score, self.threshold)

    @property
    def peak(self) -> float:
        """The map's maximum, kept beside a map kept rounded up (`rbd.anomaly_map.judged_map`)."""
        return float(self.anomaly_map.max())

    def regions(self, size: tuple[int, int] | None = None) -> list[Region]:
        """Connected regions of the mask (8-connectivity), largest first. `size`: the (height, width)
        of the image file, where it was scored on a downscaled copy (`rbd.images.file_shape`); areas
        and boxes are then those of the mask `mask_at_size` lays on the file, in the file's pixels,
        and the order stays that of the scored size, so region k is the same region at either size."""
        if size is not None and not (len(size) == 2 and all(isinstance(side, numbers.Integral) for side in size)):
            raise InvalidInputError(f"regions(size=...) takes the image file's (height, width) in whole pixels (rbd.images.file_shape), "
                                    f"got {size!r}")  # an image's shape (h, w, 3), or floats, failed deep in numpy
        height, width = self.anomaly_map.shape if size is None else size
        if height < self.anomaly_map.shape[0] or width < self.anomaly_map.shape[1]:  # a shrunk mask loses or cuts regions
            raise InvalidInputError(f"regions(size=...) takes the image file's (height, width), which a prediction's map "
                                    f"({self.anomaly_map.shape[0]}, {self.anomaly_map.shape[1]}) never exceeds; got {tuple(size)}")
        rows, columns = nearest_sources(self.anomaly_map.shape[0], height), nearest_sources(self.anomaly_map.shape[1], width)
        row_weight, column_weight = (np.bincount(s, minlength=n) for s, n in zip((rows, columns), self.anomaly_map.shape))
        regions = []
        for (ys, xs), inside in connected_regions(self.mask):
            box = [int(np.searchsorted(sources, edge)) for sources, edge in
                   ((columns, xs.start), (rows, ys.start), (columns, xs.stop), (rows, ys.stop))]
            region = Region(int(row_weight[ys] @ inside @ column_weight[xs]), float(self.anomaly_map[ys, xs][inside].max()), tuple(box))
            regions.append((-int(inside.sum()), len(regions), region))
        return [region for *_, region in sorted(regions)]


# A CPU forward pass takes at most this many input pixels. The teacher's widest activation holds about
# 100 bytes per input pixel (96 channels at stride 2, TF-padded), so every block of a pass stays under
# glibc's largest mmap threshold, where allocator.py makes it reuse freed memory (five 256x256 inputs, two
# 256x640 strips); larger blocks are faulted in afresh on every pass, and batches of eight strips cost
# 1.1-1.35x more per image than one strip at a time (bench.files, BENCHMARKS.md).
MAX_CPU_BATCH_PIXELS = MMAP_THRESHOLD // 100


def pass_size(input_shape: tuple[int, int], batch_size: int, device: torch.device) -> int:
    """How many inputs of `input_shape` one forward pass of `score_images` takes: `batch_size`, fewer
    on a CPU where they are large (MAX_CPU_BATCH_PIXELS)."""
    if device.type != "cpu":
        return batch_size
    return max(1, min(batch_size, MAX_CPU_BATCH_PIXELS // (input_shape[0] * input_shape[1])))


@torch.inference_mode()
def score_images(network: Network, images: Sequence[np.ndarray], batch_size: int = 8,
                 precision: str = "auto") -> list[tuple[float, np.ndarray, float | None]]:
    """(score, map at image size, familiarity or None) per image; equal-shaped inputs are batched together,
    `batch_size` at a time (on a CPU fewer where they are large: MAX_CPU_BATCH_PIXELS). `network` is a torch
    model's `ScoringNetwork` or an ONNX session (onnx_runtime.py): the rest is the same."""
    checked_batch_size(batch_size)
    config, device = network.config, network.device
    fits = [config.fit(im.shape[0], im.shape[1]) for im in images]
    results: list = [None] * len(images)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, f in enumerate(fits):
        by_shape.setdefault(f.input, []).append(i)
    for shape, indices in by_shape.items():
        step = pass_size(shape, batch_size, device)
        for start in range(0, len(indices), step):
            chunk = indices[start : start + step]
            batch = torch.stack([to_input(images[i], fits[i]) for i in chunk]).to(device)
            with scoring_autocast(device, precision):
                out = network(batch)
            scores = out.score.tolist()
            familiar = out.familiarity.tolist() if out.familiarity is not None else [None] * len(chunk)
            for row, i in enumerate(chunk):
                results[i] = (scores[row], to_image_size(out.anomaly_map[row, 0], fits[i]).cpu().numpy(), familiar[row])
    return results


class Detector:
    """A trained network, its calibration, its training summary and (optionally) test metrics.

    The network is a torch `RBD` (trained or loaded from a checkpoint) or an ONNX export run by
    onnxruntime (`rbd.load("model.onnx")`); both give the same outputs (network.py). `precision`
    ("auto" or "float32", rbd.runtime) says whether predictions on a GPU may use mixed precision;
    on a CPU they are float32 either way.
    """

    def __init__(self, model: RBD | Network, calibration: Calibration, training: dict | None = None, metrics: dict | None = None):
        self.network: Network = ScoringNetwork(model.eval()) if isinstance(model, RBD) else model
        self.calibration = calibration
        self.threshold = calibration.threshold
        self.training = training or {}
        self.metrics = metrics or {}
        self.precision = "auto"

    @property
    def threshold(self) -> float:
        """The raw score at and above which an image is judged defective (the calibrated one until set)."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = checked_threshold(value)

    @property
    def precision(self) -> str:
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        """Checked when set, on any device: a value a CPU ignores would fail only on the GPU it was deployed to."""
        if value not in PRECISIONS:
            raise InvalidInputError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
        self._precision = value

    @property
    def model(self) -> RBD:
        """The torch model, which saving, fine-tuning and the benches need; an ONNX export has none."""
        if not isinstance(self.network, ScoringNetwork):
            raise InvalidInputError("this detector runs an ONNX export, which has no torch model: "
                                    "use the checkpoint it was exported from")
        return self.network.model

    @property
    def config(self) -> ModelConfig:
        return self.network.config

    def to(self, device: str | torch.device) -> "Detector":
        """The detector on `device` ("auto", "cpu", "cuda", "cuda:N" or a torch.device). An ONNX session resolves "auto"
        itself (`OnnxNetwork.to`: CUDA only where its onnxruntime has it)."""
        self.network.to(resolve_device(device) if isinstance(self.network, torch.nn.Module) else device)
        return self

    def judging_by(self, calibration: Calibration, threshold: float) -> "Detector":
        """This detector's network (shared, not copied) calibrated by `calibration` and judging at `threshold`: a model as
        a review's recalibration and a threshold set in the app judge by it, to save or push so."""
        judged = Detector(self.network, calibration, self.training, self.metrics)
        judged.threshold, judged.precision = threshold, self.precision
        return judged

    def predict(self, image: ImageLike) -> Prediction:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[ImageLike], batch_size: int = 8) -> list[Prediction]:
        """Predictions of several images, in their order (a 4-D array: one image per first index)."""
        arrays = each_image(several(images, "predict_batch", ": use predict for one"), scored_input)
        return [self._prediction(score, amap, familiar) for score, amap, familiar in score_images(self.network, arrays, batch_size, precision=self.precision)]

    def rethreshold(self, prediction: Prediction, threshold: float | None = None) -> Prediction:
        """The same prediction judged at another threshold (default: the detector's current one)."""
        return self._prediction(prediction.score, prediction.anomaly_map, prediction.familiarity, threshold)

    def _prediction(self, score: float, anomaly_map: np.ndarray, familiarity: float | None,
                    threshold: float | None = None) -> Prediction:
        t = self.threshold if threshold is None else checked_threshold(threshold)
        return Prediction(score, self.calibration.normalize(score, t), t, anomaly_map, familiarity)


def _is_folder(path) -> bool:
    """Whether `path` is a folder; a name the system refuses to look up (too long, no permission) is a file, which
    reading then skips with its reason."""
    try:
        return Path(path).is_dir()
    except OSError:
        return False


def predict_files(detector: Detector, paths: Iterable[str | Path], batch_size: int = 8, max_side: int | None = MAX_SIDE,
                  progress: Callable[[int, int], None] | None = None, names: Mapping[Path, str] | None = None
                  ) -> Iterator[tuple[Path, np.ndarray, Prediction]]:
    """Score image files batch by batch, streaming (path, image, prediction): decode a batch,
    score it, hand it on, forget it, so a folder of any size fits in memory. Skipped and
    downscaled files are reported as `rbd.images.image_batches` does (naming files by `names`); `progress(files done, total)`
    runs after each batch is scored. `paths` may also be one file or folder, and a folder, alone or among files, gives
    every image under it (`find_images`), as on the command line."""
    named = [paths] if is_path(paths) else several(paths, "predict_files")
    for path in named:
        if not is_path(path):  # said "expected str, bytes or os.PathLike object"
            raise InvalidInputError(f"predict_files takes image files and folders, got {type(path).__name__} (arrays and PIL "
                                    "images: Detector.predict_batch)")
    paths = [found for path in named for found in (find_images(path) if _is_folder(path) else [path])]
    if not paths:  # said "no usable image among 0 file(s)", naming no folder
        raise NoImagesError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(map(str, named))}" if named
                            else "predict_files was given no files")
    for done, batch in image_batches(paths, batch_size, max_side, names):
        predictions = detector.predict_batch([image for _, image in batch], batch_size) if batch else []
        if progress is not None:
            progress(done, len(paths))
        for (path, image), prediction in zip(batch, predictions):
            yield path, image, prediction
