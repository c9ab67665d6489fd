"""The training objective: reconstruct clean features, and make the anomaly map find the defects.

1. Reconstruction (`reconstruction_loss`). The student sees the teacher's features of a
   *corrupted* image and must output the teacher's features of the *clean* image. Two cosine
   terms per scale: a per-pixel one (every location must point the right way) and a global one
   over the whole flattened map (the ReContrast/RD++ "global cosine", which keeps the student
   from settling for locally plausible but globally drifting features).
2. Prediction consistency (`consistency_loss`). The student's part of the anomaly map of the
   corrupted image (`anomaly_map.student_map`: the mean of its raw distances, which inference
   standardises scale by scale and adds the memory's map to) is supervised with the synthetic defect mask: a focal
   term (hard, rare defect pixels dominate) plus an L1 term (normal pixels are pushed to a
   distance of 0 and defect pixels to 1). Without it, the student only learns to reconstruct;
   with it, it also learns to disagree with the teacher where, and only where, something is wrong.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """Mean over scales of (1 - per-pixel cosine) + (1 - global cosine of the flattened maps)."""
    total = 0.0
    for s, t in zip(student, teacher):
        s, t = s.float(), t.float()
        pixel = 1 - F.cosine_similarity(s, t, dim=1, eps=1e-6).mean()
        global_ = 1 - F.cosine_similarity(s.flatten(1), t.flatten(1), dim=1, eps=1e-6).mean()
        total = total + pixel + global_
    return total / len(student)


def focal_loss(probability: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Binary focal loss (Lin et al. 2017) on probabilities; easy pixels count for little."""
    p = probability.clamp(1e-6, 1 - 1e-6)
    p_true = torch.where(target > 0.5, p, 1 - p)
    return (-(1 - p_true) ** gamma * torch.log(p_true)).mean()


def consistency_loss(anomaly_map: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Focal + L1 between the student's map (read as a probability) and the mask."""
    p = anomaly_map.clamp(0, 1)
    return focal_loss(p, mask) + (p - mask).abs().mean()
