"""Ablation of the anomaly map: the student alone, standardised, the memory alone, and both.

    python -m bench.ablation --models bench/results/models     # the models bench.compare trained
    python -m bench.ablation --sets bottle ksdd weld bsd_pitting elpv_mono --minutes 10
    python -m bench.ablation --sets weld --steps 1000        # a fixed number of steps instead
    python -m bench.ablation --models bench/results/models --bank-seeds 3   # each map over 3 draws of the memory
    python -m bench.ablation --models bench/results/models --bank-seeds 1 --memory-size 4096 --maps default   # a larger bank
    python -m bench.ablation --models bench/results/models --maps full default   # some of the maps
    python -m bench.ablation --models bench/results/models --bank-seeds 1 --centre student   # maps centred per image
    python -m bench.ablation --models bench/results/models --bank-seeds 1 --whiten 0.5   # the memory searched by Mahalanobis distance
    python -m bench.ablation --models bench/results/models --bank-seeds 1 --neighbours 3   # the mean distance to 3 nearest entries
    python -m bench.ablation --models bench/results/models --bank-seeds 1 --pool 1   # memory patches without their neighbourhood
    python -m bench.ablation --models bench/results/models --bank-seeds 1 --edge-bands 0   # no edge level in the map
    python -m bench.ablation --models bench/results/models --bank-seeds 1 --blur-sigma 2   # the map smoothed with sigma 2

Trains the default recipe once per set, then evaluates five maps of that one model, each also
ranking the images by its own top, so the rows differ only in how the map is made (anomaly_map.py):
`raw` the mean of the student's distances (rbd 0.1's map), `student` the same with each scale
standardised on normal images, `memory` the patch memory's map alone, `full` the anomaly map
(both), `half` both with the student's part at half weight; and `default`, the model as it
ships: the full map, its images ranked as `ModelConfig.score_from` says (today the map's score
averaged with the memory's own).
With --bank-seeds N the memory's bank is drawn again N times (other random patches, as training
draws them, with the standardisation and threshold set again) and every map is evaluated on each
draw: how far a figure moves with the bank's random draw alone, and whether a difference between
maps holds on every draw; with --memory-size the new banks hold that many patches instead of the
model's number. With --centre (needs --bank-seeds, which sets the standardisation again) every
distance map of an image has that image's own median subtracted first: `student` the student's
scales, `all` the memory's too; a lighting that raises an image's distances everywhere is taken
out while a defect, a small part of the image, stays. With --whiten (needs --bank-seeds) the memory is
searched in whitened coordinates (`WhitenedMemory`); with --neighbours K (needs --bank-seeds) a
patch's memory distance is the mean over its K nearest entries (`NeighbourMemory`); with --pool K (needs
--bank-seeds) the memory's patches average each scale over K x K cells instead of 3 x 3 (`rbd.memory.POOL`); with
--edge-bands N (needs --bank-seeds) the map's normal level by distance from the edge is learned in N bands (0: none;
`anomaly_map.edge_level`); with --blur-sigma S (needs --bank-seeds) every map is smoothed with sigma S at 256 px instead of
the model's (`ModelConfig.blur_sigma`). The maps but `full` and `default` are compared without the edge level. Results go to `--out/ablation-<set>.json`; the table prints at the end.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time
from pathlib import Path
from statistics import median

import torch

import rbd
from bench import options
from rbd import memory
from rbd.datasets import training_folder
from rbd.images import read_image_folder
from rbd.memory import MAX_CANDIDATES, PROJECTION_DIM, PatchMemory, flatten_patches, patch_features
from rbd.model import RBD, map_blur
from rbd.train import TeacherCache, distinct, fit_memory, model_pictures, split_holdout, standardise_and_calibrate

from .run import fmt

VARIANTS = ("raw", "student", "memory", "full", "half", "default")


def variant(detector: rbd.Detector, name: str) -> rbd.Detector:
    """A copy of `detector` whose map is made the `name` way, and ranks the images but for `default`
    (its threshold is meaningless)."""
    model = copy.deepcopy(detector.model)
    if name == "default":
        return rbd.Detector(model, detector.calibration, detector.training)
    # the edge level (anomaly_map.edge_level) is the full map's: the other maps are compared without one
    model.config = dataclasses.replace(model.config, score_from="map", edge_bands=model.config.edge_bands if name == "full" else 0)
    scales = len(model.teacher.strides)
    if name in ("raw", "student"):
        model.memory = None
    if name == "raw":
        model.normal_mean.zero_()
        model.normal_std.fill_(1.0)
    if name == "memory":  # an infinite spread weighs the student's scales to zero
        model.normal_std[:scales] = math.inf
    if name == "half":
        model.normal_std[:scales] *= 2
    return rbd.Detector(model, detector.calibration, detector.training)


def below_median(m: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) maps less each image's own median."""
    return m - m.flatten(1).median(dim=1).values.view(-1, 1, 1, 1)


class CentredStudent(RBD):
    """The model with each of the student's distance maps centred on its image's median."""

    def distances_from_features(self, teacher, exclude=None):
        scale_maps, memory_map = super().distances_from_features(teacher, exclude)
        return [below_median(m) for m in scale_maps], memory_map


class CentredAll(CentredStudent):
    """The same, and the memory's map too."""

    def distances_from_features(self, teacher, exclude=None):
        scale_maps, memory_map = super().distances_from_features(teacher, exclude)
        return scale_maps, below_median(memory_map) if memory_map is not None else None


CENTRED = {"student": CentredStudent, "all": CentredAll}


class NeighbourMemory(PatchMemory):
    """The patch memory with each patch's distance the mean over its `neighbours` nearest bank
    entries (1: the plain search). The greedy selection keeps the farthest training patches first,
    so a bank holds isolated, rare ones; a patch that only one of them resembles stays far from the
    next few, while a common normal patch has several entries about as near. Searched whole (torch.cdist)."""

    def __init__(self, dim: int, size: int, neighbours: int = 1):
        super().__init__(dim, size)
        self.neighbours = neighbours

    def transform(self, flat):
        return flat

    def forward(self, features, exclude=None):
        patches = patch_features(features)
        b, _, h, w = patches.shape
        bank = self.bank if exclude is None else self.bank[~exclude]
        distances = torch.cdist(self.transform(flatten_patches(patches)), bank)
        return distances.topk(self.neighbours, dim=1, largest=False).values.mean(dim=1).view(b, 1, h, w)


class WhitenedMemory(NeighbourMemory):
    """The patch memory searched in whitened coordinates: the nearest normal patch by Mahalanobis
    distance under the training patches' covariance, shrunk towards a multiple of the identity by
    `shrinkage` (1: the plain Euclidean search, up to scale; 0: full whitening). PaDiM, which
    outranks rbd on textures, measures this kind of distance (one Gaussian per position there): every
    direction weighed by its normal spread, where the Euclidean search lets the widest directions decide.
    Whitening mixes the two grids' dimensions, so the whitened patches are searched whole."""

    def __init__(self, dim: int, size: int, shrinkage: float, neighbours: int = 1):
        super().__init__(dim, size, neighbours)
        self.shrinkage = shrinkage
        self.register_buffer("centre", torch.zeros(dim))
        self.register_buffer("whitening", torch.eye(dim))

    def fit(self, candidates, generator, should_stop=lambda: False, time_up=lambda: False):
        x = candidates.double()
        mean = x.mean(dim=0)
        covariance = torch.cov((x - mean).T)
        dim = covariance.shape[0]
        covariance = (1 - self.shrinkage) * covariance + self.shrinkage * covariance.trace() / dim * torch.eye(dim, dtype=x.dtype)
        values, vectors = torch.linalg.eigh(covariance)
        self.centre.copy_(mean.float())
        self.whitening.copy_((vectors * values.rsqrt()) @ vectors.T)
        return super().fit(self.transform(flat=candidates), generator, should_stop, time_up)

    def transform(self, flat):
        return (flat.float() - self.centre) @ self.whitening


def isolation(points: torch.Tensor, sources: torch.Tensor, generator: torch.Generator, block: int = 1024) -> torch.Tensor:
    """(N,) each patch's distance to the nearest patch of another training image (random projections,
    as the greedy selection compares them): a normal pattern recurs across images, a defect or a
    speck of dirt in one training image does not."""
    projection = torch.randn(points.shape[1], PROJECTION_DIM, generator=generator) / math.sqrt(PROJECTION_DIM)
    z = points.float() @ projection
    squared = (z * z).sum(dim=1)
    nearest = torch.empty(len(z))
    for start in range(0, len(z), block):
        rows = slice(start, start + block)
        d = squared[rows, None] - 2 * z[rows] @ z.T + squared[None]
        d[sources[rows, None] == sources[None]] = float("inf")
        nearest[rows] = d.amin(dim=1)
    return nearest.clamp_min(0).sqrt()


def with_new_bank(detector: rbd.Detector, data: Path, seed: int, memory_size: int | None = None,
                  centre: str | None = None, whiten: float | None = None, neighbours: int = 1,
                  drop_isolated: float = 0.0, edge_bands: int | None = None, blur_sigma: float | None = None) -> rbd.Detector:
    """A copy of `detector` whose memory bank is drawn again (with `seed`, and `memory_size` patches
    if given) from its training images, and whose standardisation, score and threshold are set again
    as training does today (with today's `score_from` and `edge_bands`, also for a model saved before they
    existed, or `edge_bands` if given), its maps smoothed with `blur_sigma` if given;
    `centre` ("student" or "all") makes it a model whose distance maps are centred (CENTRED);
    `whiten` and `neighbours` search its memory otherwise (WhitenedMemory, NeighbourMemory)."""
    model = copy.deepcopy(detector.model)
    if centre is not None:
        model.__class__ = CENTRED[centre]
    edge_bands = rbd.ModelConfig.edge_bands if edge_bands is None else edge_bands
    model.config = dataclasses.replace(model.config, score_from=rbd.ModelConfig.score_from, edge_bands=edge_bands)
    if model.edge_profile.numel() != edge_bands:  # one of the same size is learned again over the model's own
        model.edge_profile = model.edge_profile.new_zeros(edge_bands)
    if blur_sigma is not None:
        model.config = dataclasses.replace(model.config, blur_sigma=blur_sigma)
        model.blur = map_blur(model.config)
    if memory_size is not None:
        model.config = dataclasses.replace(model.config, memory_size=memory_size)
        model.memory = PatchMemory(model.memory.bank.shape[1], memory_size)
    if whiten is not None:
        model.memory = WhitenedMemory(*model.memory.bank.shape[::-1], whiten, neighbours)
    elif neighbours != 1:
        model.memory = NeighbourMemory(*model.memory.bank.shape[::-1], neighbours)
    pictures = distinct(model_pictures(training_folder(data), model.config))  # as training reads them
    config = rbd.TrainConfig(**detector.training["config"])  # the hold-out split and false-alarm rate of training
    train_ids, holdout_ids = split_holdout(len(pictures), config)
    generator = torch.Generator().manual_seed(seed)
    cache = TeacherCache(model, [pictures[i] for i in train_ids], torch.device("cpu"), generator, MAX_CANDIDATES)
    if drop_isolated:
        keep = isolation(cache.patches, cache.patch_sources, torch.Generator().manual_seed(seed))  # the bank's draws untouched
        keep = keep <= torch.quantile(keep, 1 - drop_isolated)
        cache.patches, cache.patch_sources = cache.patches[keep], cache.patch_sources[keep]
    sources, _ = fit_memory(model, cache, generator)
    calibration = standardise_and_calibrate(model, cache, sources, [pictures[i] for i in holdout_ids], config)
    return rbd.Detector(model, calibration, detector.training)


def train(data: Path, args: argparse.Namespace) -> rbd.Detector:
    """The default recipe on the set, for --minutes or (about) --steps steps; saved beside the results."""
    images, _ = read_image_folder(training_folder(data))
    config = rbd.TrainConfig(max_minutes=args.minutes)
    if args.steps:
        config = rbd.TrainConfig(epochs=options.epochs_for(args.steps, len(images)), max_minutes=None)
    detector = rbd.train(images, config=config)
    rbd.save(detector, args.out / f"ablation-{data.name}")
    return detector


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None, help="train this many steps (about) instead of --minutes")
    parser.add_argument("--models", type=Path, default=None, help="evaluate the checkpoint <set> of this folder instead of training")
    parser.add_argument("--bank-seeds", type=int, default=0, help="evaluate the maps with the memory on this many new draws of its bank")
    parser.add_argument("--memory-size", type=int, default=None, help="with --bank-seeds: patches in each new bank (default: the model's)")
    parser.add_argument("--centre", choices=sorted(CENTRED), default=None,
                        help="with --bank-seeds: centre each image's distance maps on their median (the student's, or all)")
    parser.add_argument("--whiten", type=float, default=None,
                        help="with --bank-seeds: search the memory by Mahalanobis distance, covariance shrunk by this share (WhitenedMemory)")
    parser.add_argument("--neighbours", type=int, default=1,
                        help="with --bank-seeds: a patch's memory distance is the mean over this many nearest entries (NeighbourMemory)")
    parser.add_argument("--drop-isolated", type=float, default=0.0,
                        help="with --bank-seeds: leave out of the bank's candidates this share of patches farthest from any patch of another image")
    parser.add_argument("--pool", type=int, default=memory.POOL,
                        help="with --bank-seeds: the memory averages each scale over this many cells a side (odd; default %(default)s)")
    parser.add_argument("--edge-bands", type=int, default=None,
                        help="with --bank-seeds: the map's normal level by distance from the edge in this many bands, 0 for none "
                             "(default: today's ModelConfig.edge_bands)")
    parser.add_argument("--blur-sigma", type=float, default=None,
                        help="with --bank-seeds: smooth every map with this sigma at 256 px (default: the model's)")
    parser.add_argument("--maps", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="the maps to evaluate (default: all)")
    args = options.parse(parser)
    if args.centre and not args.bank_seeds:
        parser.error("--centre needs --bank-seeds (the standardisation is set again on the centred maps)")
    if args.whiten is not None and not args.bank_seeds:
        parser.error("--whiten needs --bank-seeds (the bank is drawn again in whitened coordinates)")
    if args.neighbours != 1 and not args.bank_seeds:
        parser.error("--neighbours needs --bank-seeds (the standardisation is set again on the new distances)")
    if args.edge_bands is not None and not args.bank_seeds:
        parser.error("--edge-bands needs --bank-seeds (the level is learned again with the standardisation)")
    if args.blur_sigma is not None and not args.bank_seeds:
        parser.error("--blur-sigma needs --bank-seeds (the standardisation is set again on the new maps)")
    if args.pool != parser.get_default("pool") and not (args.bank_seeds and args.pool % 2):
        parser.error("--pool needs --bank-seeds (the bank is drawn again from patches pooled so) and an odd size")
    memory.POOL = args.pool  # for the new banks and every search of them
    rows = []
    for name in args.sets:
        data = args.data / name
        detector = rbd.load(args.models / name) if args.models is not None else train(data, args)
        result = {"set": name, "steps": detector.training["steps"], "train_s": detector.training["seconds"],
                  "date": time.strftime("%Y-%m-%d"), "variants": {}}
        draws = [with_new_bank(detector, data, seed, args.memory_size, args.centre, args.whiten, args.neighbours, args.drop_isolated, args.edge_bands,
                               args.blur_sigma) for seed in range(args.bank_seeds)] or [detector]
        for v in args.maps:
            if v in ("memory", "full", "half", "default") and detector.model.memory is None or args.bank_seeds and v in ("raw", "student"):
                continue  # the student's maps do not depend on the bank
            runs = [rbd.evaluate(variant(d, v), data).summary() for d in draws]
            result["variants"][v] = {k: median([r[k] for r in runs]) if runs[0][k] is not None else None for k in runs[0]}
            result["variants"][v]["draws"] = runs
            print(name, v, json.dumps(runs), flush=True)
        suffix = (f"-banks-{args.memory_size}" if args.memory_size else "-banks") if args.bank_seeds else ""
        suffix += f"-centred-{args.centre}" if args.centre else ""
        suffix += f"-whitened-{args.whiten}" if args.whiten is not None else ""
        suffix += f"-neighbours-{args.neighbours}" if args.neighbours != 1 else ""
        suffix += f"-isolated-{args.drop_isolated}" if args.drop_isolated else ""
        suffix += f"-edge-{args.edge_bands}" if args.edge_bands is not None else ""
        suffix += f"-sigma-{args.blur_sigma:g}" if args.blur_sigma is not None else ""
        suffix += f"-pool-{args.pool}" if args.pool != parser.get_default("pool") else ""
        (args.out / f"ablation-{name}{suffix}.json").write_text(json.dumps(result, indent=2))
        rows.append(result)
    print("| set | map | image AUROC | pixel AUROC | AUPRO | steps |\n|---|---|---|---|---|---|")
    for r in rows:
        for v, m in r["variants"].items():
            cells = [spread([d[k] for d in m["draws"]]) for k in ("image_auroc", "pixel_auroc", "aupro")]
            print(f"| {r['set']} | {v} | {' | '.join(cells)} | {r['steps']} |")


def spread(values: list[float | None]) -> str:
    """One figure, or the median and range of several draws."""
    if len(values) == 1 or values[0] is None:
        return fmt(values[0])
    return f"{fmt(median(values))} ({fmt(min(values))}-{fmt(max(values))})"


if __name__ == "__main__":
    main()
