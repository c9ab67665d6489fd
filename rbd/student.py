"""The student: it reconstructs the teacher's features instead of imitating the teacher.

A classic student network sees the image and imitates the teacher; on a defect it may imitate
the defect too. Here the student never sees the image. A bottleneck squeezes the teacher's
multi-scale features into one compact, coarse embedding (the only way through), and a
decoder rebuilds every teacher scale from it. Trained on corrupted inputs to rebuild the
features of the clean image, the student learns what normal features look like; where the
input is not normal, its reconstruction disagrees with the teacher and the map lights up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Bottleneck(nn.Module):
    """Fuse teacher scales (strides s_0 < ... < s_k) into one embedding at stride 2 * s_k."""

    def __init__(self, channels: list[int], strides: list[int], width: int, embed_dim: int):
        super().__init__()
        coarsest = strides[-1]
        self.align = nn.ModuleList()
        for c, s in zip(channels, strides):
            steps, layers, c_in = (coarsest // s).bit_length() - 1, [], c
            for _ in range(steps):  # stride-2 convs down to the coarsest scale
                layers.append(conv_bn_relu(c_in, width, stride=2))
                c_in = width
            if not steps:
                layers.append(nn.Sequential(nn.Conv2d(c, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)))
            self.align.append(nn.Sequential(*layers))
        self.fuse = nn.Sequential(conv_bn_relu(width * len(channels), embed_dim, stride=2), conv_bn_relu(embed_dim, embed_dim))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.fuse(torch.cat([align(f) for align, f in zip(self.align, features)], dim=1))


class Decoder(nn.Module):
    """Upsample the embedding stage by stage to each teacher scale's size and reconstruct it, coarsest first."""

    def __init__(self, channels: list[int], embed_dim: int, widths: list[int]):
        super().__init__()
        ins = [embed_dim] + widths[:-1]
        self.stages = nn.ModuleList(conv_bn_relu(c_in, c_out) for c_in, c_out in zip(ins, widths))
        self.heads = nn.ModuleList(nn.Conv2d(w, c, 1) for w, c in zip(widths, reversed(channels)))

    def forward(self, embedding: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        x, outputs = embedding, []
        for stage, head, size in zip(self.stages, self.heads, sizes):
            if x.shape[-2:] != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            x = stage(x)
            outputs.append(head(x))
        return outputs[::-1]  # finest first, like the teacher's


class Student(nn.Module):
    """Bottleneck + decoder. `forward(teacher_features) -> reconstructed teacher_features`.
    Its sizes are `ModelConfig`'s (model.py), which says why they are what they are."""

    def __init__(self, channels: list[int], strides: list[int], width: int, embed_dim: int, decoder_widths: tuple[int, ...]):
        super().__init__()
        if len(decoder_widths) != len(channels):
            raise ValueError(f"need one decoder width per teacher scale ({len(channels)}), got {decoder_widths}")
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"teacher scales must be successive powers of two, got strides {strides}")
        self.bottleneck = Bottleneck(channels, strides, width, embed_dim)
        self.decoder = Decoder(channels, embed_dim, list(decoder_widths))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.decoder(self.bottleneck(features), [f.shape[-2:] for f in reversed(features)])
