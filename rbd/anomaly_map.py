"""The anomaly map and the image score: one definition, used by training and inference alike.

Each teacher scale gives a distance map, the per-pixel cosine distance between teacher and
student features; the patch memory (memory.py) gives one more. Raw distances of different
scales are not on one footing: a scale whose features the student rebuilds less exactly has a
higher floor on every normal pixel and would drown out the others. So each distance map is
standardised by its mean and spread on normal images (set after training, train.py), the
student's scales are averaged, the memory's map is added, and the sum is upsampled to the
input size and smoothed with a Gaussian (sigma 4 at 256 px, as in the STFPM/RD4AD family).
Last, `RBD.combine` subtracts the map's normal level at each distance from the input's edge
(`edge_level`): a convolutional network's features near the edge (padding, half a
neighbourhood) are unlike the middle's, so on every normal image the map's level depends on
the distance from the edge (as it does for an object centred in every photo). Learned from
the normal maps like the standardisation, a profile of one value per band of distance holds
nothing of where on a product its defects lie, only what every normal image shows there.

A map's score is the mean of its hottest 1% (`image_score`, rule "top1"). The image score is the
anomaly map's, the memory's own map's, or by default the mean of the two (`RBD.score`).

The prediction-consistency loss trains the student's part of this map (`student_map`): the
mean over scales of the raw distances, which the standardisation only shifts and rescales
scale by scale.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SCORE_RULES = ("max", "top1")


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian weights spanning +-4 sigma (at least three taps)."""
    radius = max(1, int(4 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def smoothing_matrix(n: int, sigma: float) -> torch.Tensor:
    """(n, n) float64: entry (i, j) is the weight of sample i in smoothed sample j, with edge
    replication folded in (a tap that falls off an edge weighs the edge sample). Not cached: only
    `resampling_matrix`, which is, needs it, and at 1024 px it holds 8 MB."""
    kernel = gaussian_kernel(sigma).double()
    radius = kernel.numel() // 2
    sources = (torch.arange(n)[None, :] + torch.arange(-radius, radius + 1)[:, None]).clamp_(0, n - 1)
    targets = torch.arange(n).expand_as(sources)
    return torch.zeros(n, n, dtype=torch.float64).index_put_((sources, targets), kernel[:, None].expand_as(sources), accumulate=True)


@functools.lru_cache(maxsize=64)
def resampling_matrix(n_in: int, n_out: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n_out, n_in): bilinear upsampling of n_in samples to n_out (F.interpolate's, align_corners
    False) followed by Gaussian smoothing (`smoothing_matrix`), as one matrix. Made once per pair of sides."""
    with torch.inference_mode(False), torch.no_grad():  # a plain tensor: training's autograd may use it too
        identity = torch.eye(n_in, dtype=torch.float64)[None, None]
        upsampling = F.interpolate(identity, size=(n_out, n_in), mode="bilinear", align_corners=False)[0, 0]
        return (smoothing_matrix(n_out, sigma).T @ upsampling).to(device, dtype)


class UpsampleBlur(nn.Module):
    """Bilinear upsampling of maps to one size, their sum, and separable Gaussian smoothing with
    edge replication (weights: `gaussian_kernel`), the last step of every anomaly map.

    All three are linear, so a map of h x w becomes `resampling_matrix(h, H) @ map @
    resampling_matrix(w, W).T` at size H x W: equal to upsampling, then smoothing at full size but
    for float rounding, with a fraction of the multiply-adds (a quarter for a 256 x 256 map of three
    grids). An export traces `convolved` instead, which holds no matrix of one side length, so ONNX
    models keep dynamic sides.
    """

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma
        self.register_buffer("kernel", gaussian_kernel(sigma), persistent=False)
        self.radius = self.kernel.numel() // 2

    def forward(self, maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """(B, 1, h_i, w_i) maps, each on its own grid -> (B, 1, *size)."""
        if torch.compiler.is_exporting():
            return self.convolved(maps, size)
        height, width = size
        smoothed = []
        for m in maps:
            rows = resampling_matrix(m.shape[-2], height, self.sigma, m.dtype, m.device)
            columns = resampling_matrix(m.shape[-1], width, self.sigma, m.dtype, m.device)
            smoothed.append(rows @ m @ columns.T)
        return sum(smoothed)

    def convolved(self, maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """The same: each map upsampled by F.interpolate, the sum smoothed by two one-dimensional
        convolutions of its replicate-padded self."""
        total = sum(F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps)
        r, k = self.radius, self.kernel.to(total.dtype)
        x = F.pad(total, (r, r, 0, 0), mode="replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1))
        x = F.pad(x, (0, 0, r, r), mode="replicate")
        return F.conv2d(x, k.view(1, 1, -1, 1))


def distance_maps(teacher: list[torch.Tensor], student: list[torch.Tensor]) -> list[torch.Tensor]:
    """(B, 1, h_s, w_s) per scale: 1 - cos(teacher, student), in float32 also under bfloat16 autocast
    (its 8-bit mantissa would tie many scores)."""
    with torch.autocast(teacher[0].device.type, enabled=False):
        return [1 - F.cosine_similarity(t.float(), s.float(), dim=1, eps=1e-6).unsqueeze(1) for t, s in zip(teacher, student)]


def student_map(teacher: list[torch.Tensor], student: list[torch.Tensor], size: tuple[int, int], blur: UpsampleBlur) -> torch.Tensor:
    """(B, 1, *size): mean over scales of the raw distances, upsampled and blurred; what the
    prediction-consistency loss trains."""
    with torch.autocast(teacher[0].device.type, enabled=False):
        return blur([m / len(teacher) for m in distance_maps(teacher, student)], size)


def anomaly_map(scale_maps: list[torch.Tensor], memory_map: torch.Tensor | None, mean: torch.Tensor, std: torch.Tensor,
                size: tuple[int, int], blur: UpsampleBlur) -> torch.Tensor:
    """(B, 1, *size): the student's per-scale distance maps, each standardised by its normal `mean`
    and `std` (one per scale, then one for the memory), averaged; plus the memory's map, standardised
    the same way, if there is one; upsampled and blurred. With no scale maps, the memory's part alone.

    Bilinear upsampling is linear with weights that sum to one, so standardising and adding maps of
    one grid before upsampling gives the same map as after: the work at full size is one product
    with `UpsampleBlur`'s matrices per grid."""
    with torch.autocast((scale_maps[0] if scale_maps else memory_map).device.type, enabled=False):
        parts = [(m - mu) / (sd * len(scale_maps)) for m, mu, sd in zip(scale_maps, mean, std)]
        if memory_map is not None:
            parts.append((memory_map - mean[-1]) / std[-1])
        by_grid: dict[tuple[int, int], torch.Tensor] = {}
        for part in parts:
            grid = tuple(part.shape[-2:])
            by_grid[grid] = by_grid[grid] + part if grid in by_grid else part
        return blur(list(by_grid.values()), size)


def edge_bands(height: int, width: int, bands: int, device: torch.device) -> torch.Tensor:
    """(height, width) int32: each pixel's band of distance from the nearest edge of an input of that size, `bands`
    bands of equal width from the edge to the middle of the short side (the last also holds any farther pixel)."""
    y, x = torch.arange(height, device=device), torch.arange(width, device=device)
    distance = torch.minimum(torch.minimum(y, height - 1 - y)[:, None], torch.minimum(x, width - 1 - x)[None, :])
    return (distance * (2 * bands) // torch.sym_min(height, width)).clamp_(max=bands - 1).int()


@functools.lru_cache(maxsize=64)
def _cached_edge_bands(height: int, width: int, bands: int, device: torch.device) -> torch.Tensor:
    """`edge_bands`, made once per input size (1 MB for 256 x 1024), as the resampling matrices are."""
    with torch.inference_mode(False), torch.no_grad():  # a plain tensor: a profile with gradients may index with it too
        return edge_bands(height, width, bands, device)


def edge_level(profile: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(*size): the normal map's level at each pixel of an input of `size`, `profile` (one value per band) at its band."""
    bands = (edge_bands if torch.compiler.is_exporting() else _cached_edge_bands)(*size, profile.numel(), profile.device)
    return profile.index_select(0, bands.flatten()).view(bands.shape)  # a few times faster than profile[bands] on a CPU


def edge_profile(maps: Iterable[torch.Tensor], bands: int) -> torch.Tensor:
    """(bands,) float32: the mean of normal anomaly `maps` ((..., h, w) each, any sizes) over the pixels of each band
    of distance from the edge (`edge_bands`). A band no pixel fell in (more bands than half the short side has pixels)
    takes the value of the nearest band one did, so that an input of another short side, which reaches it, is not
    striped with zeros; with no maps, all are 0."""
    total, count = torch.zeros(bands, dtype=torch.float64), torch.zeros(bands, dtype=torch.float64)
    for m in maps:
        values = m.detach().reshape(-1, *m.shape[-2:]).double().cpu()
        band = _cached_edge_bands(*m.shape[-2:], bands, values.device).flatten()
        total.index_add_(0, band, values.sum(dim=0).flatten())
        count.index_add_(0, band, torch.full(band.shape, float(len(values)), dtype=torch.float64))
    seen = count.nonzero().flatten()
    if len(seen) == 0:
        return torch.zeros(bands)
    nearest = seen[(torch.arange(bands)[:, None] - seen[None, :]).abs().argmin(dim=1)]  # the lower of two as near
    return (total[nearest] / count[nearest]).float()


def image_score(maps: torch.Tensor, rule: str) -> torch.Tensor:
    """(B, ...) maps -> (B,) scores. `max`: the hottest pixel; `top1`: mean of the hottest 1%."""
    flat = maps.flatten(1)
    if rule == "max":
        return flat.amax(dim=1)
    if rule == "top1":
        return top_mean(flat, top_count(flat.shape[1]))
    raise ValueError(f"unknown score rule {rule!r}; choose one of {SCORE_RULES}")


def top_count(pixels: int) -> int:
    """How many of a map's `pixels` are its hottest 1 % (at least one): what the `top1` rule averages."""
    return max(1, math.ceil(pixels / 100))


def top_mean(rows: torch.Tensor, k: int) -> torch.Tensor:
    """(B, N) -> (B,): the mean of each row's k largest values. On a CPU numpy's selection finds
    them several times faster than torch.topk (the score stage of bench/stages.py); tensors on
    other devices, of other types, with gradients or being exported take topk."""
    plain_cpu_float = rows.device.type == "cpu" and rows.dtype == torch.float32 and not rows.requires_grad
    if plain_cpu_float and not torch.compiler.is_exporting():
        means = [largest(row, k).mean(dtype=np.float64) for row in rows.numpy()]
        return torch.from_numpy(np.array(means, dtype=np.float32))
    return rows.topk(k, dim=1).values.mean(dim=1)


SAMPLE_STRIDE = 8  # `largest` estimates its bound from every 8th value


def largest(values: np.ndarray, k: int) -> np.ndarray:
    """The k largest of a 1-D array, in no order. Selecting among all N values costs a few ns each,
    paid twice a prediction (most of bench/stages.py's score stage before), so a bound is first taken from a strided
    sample, set to let about 2k values through; if at least k pass, the k largest are among them
    (the k-th largest is at least the bound) and only those are selected from. Otherwise, and for
    rows too short to sample, all N are."""
    sampled = -(-2 * k // SAMPLE_STRIDE)  # about 2k of the row above the bound
    sample = values[::SAMPLE_STRIDE]
    if sampled < sample.size:
        passed = values[values >= np.partition(sample, -sampled)[-sampled]]
        if passed.size >= k:
            values = passed
    return np.partition(values, -k)[-k:]


_FLOAT16_MAX = float(np.finfo(np.float16).max)


def kept_map(amap: np.ndarray) -> np.ndarray:
    """An anomaly map as it is kept to be judged again at other thresholds (the app's Inspect, a review's files): float16,
    half the memory, each value rounded up rather than to the nearest, so a pixel at or above a threshold stays so and
    a mask cut from it keeps every pixel of `Prediction.mask` (nearest rounding dropped pixels within 0.05 % of the
    threshold, and a defective image whose peak was among them fell back to its hottest 1 %); it can gain only pixels
    within one float16 step below. float32 where float16 cannot hold the values (they became infinite)."""
    if not (np.isfinite(amap).all() and float(np.abs(amap).max(initial=0.0)) <= _FLOAT16_MAX):
        return amap.astype(np.float32)
    low = amap.astype(np.float16)
    return np.where(low < amap, np.nextafter(low, np.float16(np.inf)), low)


def judged_map(kept: np.ndarray, peak: float | None, threshold: float) -> np.ndarray:
    """A kept map (`kept_map`) as float32, to cut a mask from at `threshold`. Rounded up, a map whose own peak (`peak`,
    the unrounded map's maximum) stays below the threshold could reach it at a few pixels, and they made the mask of a
    defective verdict where `Prediction.mask` marks the map's hottest 1 %: here no pixel reaches it. `peak` None (not
    recorded): the map as kept."""
    amap = np.asarray(kept, dtype=np.float32)
    if peak is not None and peak < threshold:
        amap = np.minimum(amap, np.nextafter(np.float32(threshold), np.float32(-np.inf)))
    return amap
