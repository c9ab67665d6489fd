"""The anomaly map and the image score: one definition, used by training and inference alike.

Map = mean over scales of the per-pixel cosine distance between teacher and student features,
upsampled to the input size and smoothed with a Gaussian (sigma 4 at 256 px, as in the
STFPM/RD4AD family). The prediction-consistency loss trains on exactly this function, so
what training optimises is what inference reports.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SCORE_RULES = ("max", "top1")


class GaussianBlur(nn.Module):
    """Separable Gaussian smoothing with edge replication; the kernel spans +-4 sigma."""

    def __init__(self, sigma: float):
        super().__init__()
        radius = max(1, int(4 * sigma + 0.5))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (x / sigma) ** 2)
        self.register_buffer("kernel", kernel / kernel.sum(), persistent=False)
        self.radius = radius

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, 1, H, W)."""
        r, k = self.radius, self.kernel.to(maps.dtype)
        x = F.pad(maps, (r, r, 0, 0), mode="replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1))
        x = F.pad(x, (0, 0, r, r), mode="replicate")
        return F.conv2d(x, k.view(1, 1, -1, 1))


def anomaly_map(teacher: list[torch.Tensor], student: list[torch.Tensor], size: tuple[int, int], blur: GaussianBlur) -> torch.Tensor:
    """(B, 1, *size) map: mean over scales of 1 - cos(teacher, student), upsampled and blurred.

    Always float32, also under bfloat16 autocast: its 8-bit mantissa would tie many scores.
    """
    with torch.autocast(teacher[0].device.type, enabled=False):
        total = 0.0
        for t, s in zip(teacher, student):
            distance = 1 - F.cosine_similarity(t.float(), s.float(), dim=1, eps=1e-6).unsqueeze(1)
            total = total + F.interpolate(distance, size=size, mode="bilinear", align_corners=False)
        return blur(total / len(teacher))


def image_score(maps: torch.Tensor, rule: str) -> torch.Tensor:
    """(B, ...) maps -> (B,) scores. `max`: the hottest pixel; `top1`: mean of the hottest 1%."""
    flat = maps.flatten(1)
    if rule == "max":
        return flat.amax(dim=1)
    if rule == "top1":
        k = max(1, math.ceil(flat.shape[1] / 100))
        return flat.topk(k, dim=1).values.mean(dim=1)
    raise ValueError(f"unknown score rule {rule!r}; choose one of {SCORE_RULES}")
