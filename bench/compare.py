"""Side-by-side benchmark in one run: rbd beside anomalib's PatchCore and PaDiM, same teacher, same
images, every model scored by the same metric code (rbd.metrics) at the same resolution.

    python -m bench.compare                     # five sets, three models, rbd 10 minutes, 2 threads
    python -m bench.compare --models rbd --rbd-settings '{"embed_dim": 96}'   # rbd with other model settings
    nice -n 15 python -m bench.compare --sets weld --models rbd padim --minutes 1 --threads 1

Install: anomalib 2.7.0 goes into the main venv without changing torch, torchvision, timm or
numpy, but never into requirements.txt or requirements-dev.txt:

    .venv/bin/pip install -r requirements-dev.txt -r bench/requirements.txt

For each set (MVTec AD layout) and model:
- train on train/good; `train s` is the wall time of reading those images and fitting. rbd
  trains with its defaults (`rbd.TrainConfig(max_minutes=M)`: held-out images and up to 200
  training images, each scored blind to its own memory patches, calibrate its threshold); the
  peers fit on all of them (bench/anomalib_models.py: rbd's offline teacher, checked tensor by
  tensor, settings of ../shared/peers.md, whose per-set PatchCore coreset ratio and PaDiM stages
  are the defaults here);
- score every test image at batch 1; `ms/img` is the median wall time from the decoded image
  to the model's score and map as its library returns them (rbd's at the image's size,
  anomalib's at 256x256). Image scores are each model's own: rbd's `prediction.score`,
  anomalib's raw `pred_score`, never normalised;
- bring every map to its test image's own size (bilinear) and compute image AUROC and F1-max,
  pixel AUROC and AUPRO (FPR up to 0.3) with rbd.metrics; pixel metrics only where every
  defective image has a mask (bottle and elpv_mono have none).
Everything runs on the CPU. Each (set, model) is written to `--out/<set>-<model>.json` (with
every test image's score); one Markdown table is printed at the end.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm imports huggingface_hub: nothing here may download

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import rbd
from bench import options
from rbd import metrics
from rbd.datasets import TestImage, mvtec_test_set, read_truth_mask, training_folder
from rbd.images import read_image

MODELS = ("rbd", "patchcore", "padim")
COLUMNS = ("image_auroc", "pixel_auroc", "aupro", "image_f1max")
PEER_SETTINGS = {"coreset": 0.1, "padim_strides": (4, 8, 16)}
# peers.md: on these two sets coreset 0.1 costs about half an hour of sampling, and PaDiM kept the stride-8 and -16 stages
PEER_SETTINGS_BY_SET = {name: {"coreset": 0.01, "padim_strides": (8, 16)} for name in ("bsd_pitting", "elpv_mono")}


class RbdModel:
    """rbd with its default settings and a time budget; score and map from `detector.predict`.

    With `trained` (a folder of <set> checkpoints, e.g. the shipped ones) a checkpoint found there
    is used instead of training; every model used is saved to `keep/<set>` for the other benches
    (ablation, calibration) to evaluate the same models."""

    name = "rbd"

    def __init__(self, minutes: float, trained: Path | None, keep: Path, model_settings: dict | None = None, seed: int = 0):
        self.settings = {"max_minutes": minutes, "seed": seed, **({"model": model_settings} if model_settings else {})}
        self.trained, self.keep = trained, keep
        self.model_config = rbd.ModelConfig.from_dict({**rbd.ModelConfig().to_dict(), **(model_settings or {})})
        self.facts: dict = {}

    def fit(self, folder: Path) -> None:
        name = folder.parent.parent.name if folder.name == "good" else folder.name
        found = self.trained / name if self.trained else None
        if found is not None and found.is_dir():
            self.detector = rbd.load(found)
            self.settings = {"checkpoint": str(found), "max_minutes": self.detector.training["config"]["max_minutes"]}
        else:
            self.detector = rbd.train(folder, self.model_config, rbd.TrainConfig(max_minutes=self.settings["max_minutes"], seed=self.settings["seed"], device="cpu"))
        rbd.save(self.detector, self.keep / name)
        self.facts = {key: self.detector.training[key] for key in ("train_images", "steps", "epochs", "seconds")}

    def predict(self, image: np.ndarray) -> tuple[float, np.ndarray]:
        prediction = self.detector.predict(image)
        return prediction.score, prediction.anomaly_map


def build(model: str, set_name: str, args: argparse.Namespace):
    if model == "rbd":
        return RbdModel(args.minutes, args.rbd_models, args.out / "models", args.rbd_settings, args.seed)
    from bench import anomalib_models  # anomalib is needed for the peers only

    settings = {**PEER_SETTINGS, **PEER_SETTINGS_BY_SET.get(set_name, {})}
    if model == "patchcore":
        return anomalib_models.patchcore(args.coreset or settings["coreset"])
    return anomalib_models.padim(tuple(args.padim_strides or settings["padim_strides"]))


def at_size(anomaly_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The map resized (bilinear) to `shape`, as float32."""
    if anomaly_map.shape == tuple(shape):
        return anomaly_map.astype(np.float32, copy=False)
    x = torch.from_numpy(np.asarray(anomaly_map, np.float32))[None, None]
    return F.interpolate(x, size=tuple(shape), mode="bilinear", align_corners=False)[0, 0].numpy()


def score_outputs(labels, scores, masks: list[np.ndarray] | None = None, maps: list[np.ndarray] | None = None) -> dict:
    """rbd.metrics.summarize, every map first brought to its mask's (the image's) size: one metric code
    and one resolution for every model, whatever size its maps come in."""
    if masks is not None:
        maps = [at_size(amap, mask.shape) for amap, mask in zip(maps, masks, strict=True)]
    return metrics.summarize(np.asarray(labels), np.asarray(scores, np.float64), masks, maps)


def read_mask(item: TestImage, shape: tuple[int, int]) -> np.ndarray:
    """The ground truth at the image's size; all normal for a good image, whatever mask lies beside it (as `rbd evaluate`
    takes it: a marked mask of a good image gave other pixel metrics here than there)."""
    if item.mask_path is None or not item.is_anomalous:
        return np.zeros(shape, bool)
    mask = read_truth_mask(item.mask_path)
    if mask.shape != shape:
        raise ValueError(f"{item.mask_path}: mask is {mask.shape}, its image {shape}")
    return mask


def run(model, category: Path) -> dict:
    """Train `model` on the category's normal images, score its test set, return the result record."""
    torch.manual_seed(0)  # PaDiM's channel order, PatchCore's first coreset point and projection
    start = time.perf_counter()
    model.fit(training_folder(category))
    train_s = time.perf_counter() - start
    items = mvtec_test_set(category)
    with_masks = all(item.mask_path for item in items if item.is_anomalous)
    scores, maps, masks, times = [], [], [], []
    for item in items:
        image = read_image(item.path)
        start = time.perf_counter()
        score, anomaly_map = model.predict(image)
        times.append(time.perf_counter() - start)
        scores.append(score)
        if with_masks:
            maps.append(anomaly_map)
            masks.append(read_mask(item, image.shape[:2]))
    labels = [int(item.is_anomalous) for item in items]
    return {
        "set": category.name, "model": model.name, "settings": model.settings,
        **score_outputs(labels, scores, masks if with_masks else None, maps if with_masks else None),
        "train_s": round(model.facts.get("seconds", train_s), 1),  # a loaded rbd checkpoint: its own training time
        "ms_per_image": round(1000 * statistics.median(times), 1), "n_test": len(items),
        **model.facts,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads",
        "versions": {name: _version(name) for name in ("torch", "timm", "anomalib")} | {"rbd": rbd.__version__},
        "date": time.strftime("%Y-%m-%d"),
        "rows": [{"file": str(item.path.relative_to(category)), "label": label, "score": score}
                 for item, label, score in zip(items, labels, scores)],
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe(result: dict) -> str:
    """The settings column: what distinguishes this run from the model's defaults."""
    settings = result["settings"]
    if result["model"] == "rbd":
        return f"{settings['max_minutes']:g} min, {result['steps']} steps"
    strides = "/".join(str(stride) for stride in settings["strides"])
    return (f"coreset {settings['coreset']:g}, " if result["model"] == "patchcore" else "") + f"stride {strides}"


def table(results: list[dict]) -> str:
    fmt = lambda value: "–" if value is None else f"{value:.3f}"  # noqa: E731
    lines = ["| set | model | settings | image AUROC | pixel AUROC | AUPRO | image F1-max | train s | ms/img |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['set']} | {r['model']} | {describe(r)} | " + " | ".join(fmt(r[c]) for c in COLUMNS)
                     + f" | {r['train_s']:.0f} | {r['ms_per_image']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--minutes", type=float, default=10.0, help="rbd's training budget (default 10)")
    parser.add_argument("--coreset", type=float, help="PatchCore coreset ratio for every set (default: peers.md's, 0.1; 0.01 on bsd_pitting, elpv_mono)")
    parser.add_argument("--padim-strides", type=int, nargs="+", choices=(4, 8, 16),
                        help="PaDiM's teacher stages for every set (default: peers.md's, 4 8 16; 8 16 on bsd_pitting, elpv_mono)")
    parser.add_argument("--rbd-models", type=Path, default=None,
                        help="use the rbd checkpoint <set> of this folder where there is one, instead of training")
    parser.add_argument("--seed", type=int, default=0, help="rbd's training seed (default 0)")
    parser.add_argument("--rbd-settings", type=json.loads, default=None,
                        help='rbd trains with these ModelConfig settings instead of the defaults, as JSON: \'{"embed_dim": 96}\'')
    args = options.parse(parser)
    if set(args.models) - {"rbd"} and importlib.util.find_spec("anomalib") is None:  # before rbd's minutes of training
        parser.error("the peers need anomalib: pip install -r bench/requirements.txt (or --models rbd)")
    results = []
    for set_name in args.sets:
        for model in args.models:
            results.append(run(build(model, set_name, args), args.data / set_name))
            (args.out / f"{set_name}-{model}.json").write_text(json.dumps(results[-1], indent=2))
            print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
