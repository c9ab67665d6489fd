"""A memory of normal patch features: has any normal image a patch like this one?

The student answers "does this look like what I learned to rebuild?". It generalises, which is
its strength on thin cracks, but it can also rebuild a defect that resembles normal texture.
The memory answers a plainer question (PatchCore, Roth et al. 2022): how far is each patch's
teacher feature from the nearest patch feature seen in the training images? It needs no
training, only one teacher pass over the images, and it keeps rare normal patterns that a
student trained for a few minutes has not learned yet. The two maps are standardised on normal
images and added (anomaly_map.py), so each covers what the other misses.

A patch feature is the last two teacher scales, each averaged over its 3x3 neighbourhood (a
little context, some robustness to misalignment), brought to the finer scale's grid. The bank
keeps a fixed number of them, chosen by greedy k-centre selection so that every training patch
lies near a kept one; its size bounds the cost of a prediction whatever the set's size.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import TrainingCancelled

PROJECTION_DIM = 128  # the greedy selection compares random projections: distances are kept roughly, cheaper
MAX_CANDIDATES = 50_000  # patches the selection chooses from (training samples each image evenly to this)
STOP_CHECK_EVERY = 128  # bank entries chosen between two looks at a Cancel (a few hundredths of a second)
POOL = 3  # each scale's features averaged over this many cells a side: a patch's context (PatchCore's 3)


def pooled_scales(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The memory's two grids from teacher feature maps (finest first): the last two scales, each
    averaged over its POOL x POOL neighbourhood, each at its own resolution."""
    finer, coarser = (F.avg_pool2d(f.float(), POOL, stride=1, padding=POOL // 2) for f in features[-2:])
    return finer, coarser


def upsampled(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def patch_features(features: list[torch.Tensor]) -> torch.Tensor:
    """(B, D, h, w) patch features from teacher feature maps (finest first): `pooled_scales`, the
    coarser brought to the finer grid."""
    finer, coarser = pooled_scales(features)
    return torch.cat([finer, upsampled(coarser, finer.shape[-2:])], dim=1)


def flatten_patches(patches: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B * h * w, D)."""
    return patches.permute(0, 2, 3, 1).reshape(-1, patches.shape[1])


def greedy_coreset(points: torch.Tensor, size: int, generator: torch.Generator,
                   should_stop: Callable[[], bool] = lambda: False, time_up: Callable[[], bool] = lambda: False) -> torch.Tensor:
    """Indices of up to `size` rows of `points` (N, D) such that every row lies near a chosen one:
    each step adds the row farthest from all rows chosen so far (k-centre greedy). Fewer once every
    row is at distance 0 from a chosen one (copies of one image), where more would only repeat them,
    or once `time_up()` (a short time budget's share): those chosen first cover the rows best. Both it and
    `should_stop` are asked every STOP_CHECK_EVERY steps (seconds on a large pool); a True from `should_stop`
    raises TrainingCancelled."""
    n = points.shape[0]
    if n <= size:
        return torch.arange(n)
    projection = torch.randn(points.shape[1], PROJECTION_DIM, generator=generator) / math.sqrt(PROJECTION_DIM)
    z = points.float() @ projection
    squared = (z * z).sum(dim=1)
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(0, n, (1,), generator=generator))
    nearest = squared - 2 * z @ z[chosen[0]] + squared[chosen[0]]
    covered = 1e-6 * float(squared.max())  # a squared distance this small is float rounding of 0
    for k in range(1, size):
        if k % STOP_CHECK_EVERY == 0:
            if should_stop():
                raise TrainingCancelled("training cancelled while the patch memory was built, after 0 steps")
            if time_up():
                return chosen[:k]
        farthest = nearest.argmax()
        if nearest[farthest] <= covered:
            return chosen[:k]
        chosen[k] = farthest
        nearest = torch.minimum(nearest, squared - 2 * z @ z[chosen[k]] + squared[chosen[k]])
    return chosen


class PatchMemory(nn.Module):
    """A bank of normal patch features; `forward(patches) -> (B, 1, h, w)` distance to the nearest."""

    def __init__(self, dim: int, size: int):
        super().__init__()
        self.register_buffer("bank", torch.zeros(size, dim))
        # the distance that 99% of normal patches stay within (set by training): farther patches are unfamiliar
        self.register_buffer("familiar_distance", torch.tensor(float("inf")))

    @property
    def size(self) -> int:
        return self.bank.shape[0]

    def fit(self, candidates: torch.Tensor, generator: torch.Generator, should_stop: Callable[[], bool] = lambda: False,
            time_up: Callable[[], bool] = lambda: False) -> torch.Tensor:
        """Fill the bank from (N, D) candidate patches; returns the indices of the kept candidates (`greedy_coreset`)."""
        if candidates.shape[0] > MAX_CANDIDATES:
            sample = torch.randperm(candidates.shape[0], generator=generator)[:MAX_CANDIDATES]
        else:
            sample = torch.arange(candidates.shape[0])
        kept = sample[greedy_coreset(candidates[sample], self.size, generator, should_stop, time_up)]
        if kept.numel() < self.size:  # fewer candidates than slots: repeat some (duplicates change no distance)
            kept = kept[torch.arange(self.size) % kept.numel()]
        self.bank.copy_(candidates[kept].to(self.bank))
        return kept

    def familiarity(self, distances: torch.Tensor) -> torch.Tensor:
        """(B,) share of each image's patches within the familiar distance: near 1 for the product
        the memory was built from, near 0 for an image of something else."""
        return (distances <= self.familiar_distance).flatten(1).float().mean(dim=1)

    def forward(self, features: list[torch.Tensor], exclude: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, h, w): each patch's (`patch_features` of the teacher's `features`) Euclidean distance
        to its nearest bank entry, in float32 (|q|^2 + |b|^2 - 2 q.b cancels badly in low precision).
        `exclude` (bank-size bool) leaves entries out, for scoring a training image without the
        patches it gave."""
        finer, coarser = pooled_scales(features)
        with torch.autocast(finer.device.type, enabled=False):
            return self.search(finer, coarser, exclude)

    def search(self, finer: torch.Tensor, coarser: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """The distances of the patches `cat([finer, upsampled(coarser)])` without making them.

        Upsampling is linear, so the coarser part's dot products with the bank can be taken on the
        coarser grid, a quarter of the patches, and upsampled instead: the same distances (to float
        rounding) for about half the multiply-adds of the search, most of the memory's time. Images
        are searched one at a time (a batch's whole (patches, bank) matrix, 32 MB for eight 256x256
        images, took twice as long to fill and reduce on a 2-core CPU; BENCHMARKS.md); an export
        takes the whole batch at once, so ONNX models keep a dynamic batch."""
        h, w = finer.shape[-2:]
        bank = self.bank.float() if exclude is None else self.bank.float()[~exclude]
        fine_bank, coarse_bank = bank[:, : finer.shape[1]], bank[:, finer.shape[1] :]
        norms = (bank * bank).sum(dim=1)
        if torch.compiler.is_exporting():
            nearest = _nearest(finer, coarser, fine_bank, coarse_bank, norms)
        else:
            nearest = torch.cat([_nearest(f[None], c[None], fine_bank, coarse_bank, norms) for f, c in zip(finer, coarser)])
        # |q|^2 is the same for every entry, so it is added after the minimum
        squared = nearest + (finer * finer).sum(dim=1) + (upsampled(coarser, (h, w)) ** 2).sum(dim=1)
        return squared.clamp_min_(0).sqrt_().unsqueeze(1)


def _nearest(finer: torch.Tensor, coarser: torch.Tensor, fine_bank: torch.Tensor, coarse_bank: torch.Tensor,
             norms: torch.Tensor) -> torch.Tensor:
    """(B, h, w): the minimum over bank entries b of |b|^2 - 2 q.b for every patch q of `search`."""
    batch, _, h, w = finer.shape
    distances = torch.addmm(norms, finer.permute(0, 2, 3, 1).flatten(0, 2), fine_bank.T, alpha=-2).view(batch, h, w, -1)
    dots = (coarser.permute(0, 2, 3, 1).flatten(0, 2) @ coarse_bank.T).view(batch, *coarser.shape[-2:], -1)
    dots = upsampled(dots.permute(0, 3, 1, 2), (h, w))  # channels-last, as `distances`
    return distances.add_(dots.permute(0, 2, 3, 1), alpha=-2).amin(dim=-1)
