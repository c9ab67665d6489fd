"""Tests for rbd.losses: reconstruction, focal and consistency terms."""

import math

import numpy as np
import pytest
import torch

from rbd.losses import consistency_loss, focal_loss, reconstruction_loss


def features(seed, shapes=((8, 8, 8), (16, 4, 4))):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, h, w, generator=g) for c, h, w in shapes]


def test_reconstruction_zero_for_identical_features():
    teacher = features(0)
    loss = reconstruction_loss([t.clone() for t in teacher], teacher)
    assert loss.ndim == 0
    assert float(loss) == pytest.approx(0.0, abs=1e-5)


def test_reconstruction_positive_for_different_features():
    loss = reconstruction_loss(features(1), features(0))
    assert float(loss) > 0.5  # random directions: both cosine terms near 1 - 0


def test_reconstruction_maximal_for_opposite_features():
    teacher = features(0)
    loss = reconstruction_loss([-t for t in teacher], teacher)
    assert float(loss) == pytest.approx(4.0, abs=1e-5)  # (1 - (-1)) pixel + (1 - (-1)) global


def test_reconstruction_matches_hand_computation():
    teacher, student = features(0), features(1)
    total = 0.0
    for s, t in zip(student, teacher):
        s, t = s.numpy().astype(np.float64), t.numpy().astype(np.float64)
        pixel_cos = (s * t).sum(1) / (np.linalg.norm(s, axis=1) * np.linalg.norm(t, axis=1))
        sf, tf = s.reshape(len(s), -1), t.reshape(len(t), -1)
        global_cos = (sf * tf).sum(1) / (np.linalg.norm(sf, axis=1) * np.linalg.norm(tf, axis=1))
        total += (1 - pixel_cos.mean()) + (1 - global_cos.mean())
    expected = total / len(teacher)
    assert float(reconstruction_loss(student, teacher)) == pytest.approx(expected, abs=1e-5)


def test_reconstruction_invariant_to_positive_scaling():
    teacher, student = features(0), features(1)
    base = reconstruction_loss(student, teacher)
    scaled = reconstruction_loss([3.7 * s for s in student], teacher)
    assert float(scaled) == pytest.approx(float(base), abs=1e-5)


def test_reconstruction_per_pixel_term_invariant_to_per_pixel_scaling():
    """Scaling each student pixel by its own positive factor leaves the per-pixel cosine alone,
    so the loss changes only through the global term, and stays zero if teacher is scaled alike."""
    teacher = features(0)
    g = torch.Generator().manual_seed(9)
    factors = [torch.rand(t.shape[0], 1, *t.shape[2:], generator=g) + 0.1 for t in teacher]
    # identical directions per pixel, different magnitudes: pixel term 0, global term > 0
    loss = reconstruction_loss([t * f for t, f in zip(teacher, factors)], teacher)
    assert 0.0 < float(loss) < 0.5
    # scaling teacher and student by the same per-pixel factors keeps them identical
    both = [t * f for t, f in zip(teacher, factors)]
    assert float(reconstruction_loss([b.clone() for b in both], both)) == pytest.approx(0.0, abs=1e-5)


def test_reconstruction_has_gradients():
    teacher = features(0)
    student = [s.requires_grad_() for s in features(1)]
    reconstruction_loss(student, teacher).backward()
    for s in student:
        assert s.grad is not None
        assert torch.isfinite(s.grad).all()
        assert float(s.grad.abs().sum()) > 0


def test_reconstruction_accepts_half_precision():
    teacher = [t.half() for t in features(0)]
    loss = reconstruction_loss([t.clone() for t in teacher], teacher)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
def test_focal_loss_hand_computation(gamma):
    p = torch.tensor([0.9, 0.2, 0.6, 0.05])
    target = torch.tensor([1.0, 1.0, 0.0, 0.0])
    p_true = [0.9, 0.2, 0.4, 0.95]
    expected = np.mean([-((1 - q) ** gamma) * math.log(q) for q in p_true])
    assert float(focal_loss(p, target, gamma)) == pytest.approx(expected, rel=1e-5)


def test_focal_loss_with_gamma_zero_is_binary_cross_entropy():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(50, generator=g) * 0.98 + 0.01
    target = (torch.rand(50, generator=g) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy(p, target)
    assert float(focal_loss(p, target, gamma=0.0)) == pytest.approx(float(bce), rel=1e-5)


def test_focal_loss_finite_at_extremes():
    p = torch.tensor([0.0, 1.0, 0.0, 1.0])
    target = torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = focal_loss(p, target)
    assert torch.isfinite(loss)
    assert float(loss) > 1.0  # two confidently wrong pixels dominate


def test_focal_loss_down_weights_easy_pixels():
    easy = focal_loss(torch.tensor([0.9]), torch.tensor([1.0]))
    hard = focal_loss(torch.tensor([0.1]), torch.tensor([1.0]))
    ratio_focal = float(hard / easy)
    ratio_bce = math.log(0.1) / math.log(0.9)
    assert ratio_focal > ratio_bce  # focusing: hard/easy ratio larger than with plain BCE


def test_consistency_lower_for_matching_map():
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:9, 6:12] = 1.0
    matching = consistency_loss(mask.clone(), mask)
    inverted = consistency_loss(1 - mask, mask)
    assert float(matching) < 1e-4
    assert float(inverted) > 1.0
    assert float(matching) < float(inverted)


def test_consistency_clamps_map_to_probability():
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 0, 0] = 1.0
    wild = mask * 7.0 - (1 - mask) * 3.0  # above 1 on the defect, below 0 elsewhere
    assert float(consistency_loss(wild, mask)) == pytest.approx(float(consistency_loss(mask, mask)), abs=1e-6)


def test_consistency_hand_computation():
    p = torch.tensor([[0.3, 0.8], [0.1, 0.5]])
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    p_true = np.array([0.3, 0.8, 0.9, 0.5])
    focal = np.mean(-((1 - p_true) ** 2) * np.log(p_true))
    l1 = np.mean([0.7, 0.2, 0.1, 0.5])
    assert float(consistency_loss(p, mask)) == pytest.approx(focal + l1, rel=1e-5)


def test_consistency_has_gradients_inside_range():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:4, 2:4] = 1.0
    maps = torch.full((1, 1, 8, 8), 0.5, requires_grad=True)
    consistency_loss(maps, mask).backward()
    grad = maps.grad[0, 0]
    assert float(grad[2, 2]) < 0 < float(grad[0, 0])  # raise defect pixels, lower normal ones
