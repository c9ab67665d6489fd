"""Tests for rbd.anomaly_map: upsampling and Gaussian smoothing, the cosine-distance map, and image scores."""

import math

import numpy as np
import pytest
import torch

from rbd.anomaly_map import (SAMPLE_STRIDE, kept_map, SCORE_RULES, UpsampleBlur, anomaly_map, distance_maps, edge_bands, edge_level, edge_profile,
                             image_score, largest, student_map, top_mean)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5, 4.0])
def test_kernel_is_normalised_symmetric_gaussian(sigma):
    blur = UpsampleBlur(sigma)
    kernel = blur.kernel
    assert kernel.ndim == 1 and len(kernel) == 2 * blur.radius + 1
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(kernel, kernel.flip(0))
    assert int(kernel.argmax()) == blur.radius
    x = np.arange(-blur.radius, blur.radius + 1)
    expected = np.exp(-0.5 * (x / sigma) ** 2)
    np.testing.assert_allclose(kernel.numpy(), expected / expected.sum(), rtol=1e-5)


def test_kernel_spans_four_sigma():
    assert UpsampleBlur(4.0).radius == 16
    assert UpsampleBlur(0.1).radius >= 1


@pytest.mark.parametrize("shape", [(2, 1, 64, 64), (1, 1, 24, 90), (3, 1, 5, 7)])  # square, strip, smaller than the kernel
def test_blur_by_matrices_equals_the_convolution_that_exports_trace(shape):
    blur = UpsampleBlur(4.0)
    maps = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(blur([maps], maps.shape[-2:]), blur.convolved([maps], maps.shape[-2:]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(256, 256), (208, 512), (50, 70)])  # square, strip, sides no multiple of the grids'
def test_upsampling_folded_into_the_matrices_equals_upsampling_then_smoothing(size):
    """The anomaly map's last step: maps on the grids of strides 4, 8 and 16 (standardised values,
    a few units) upsampled to the input size, added and smoothed, as F.interpolate and the
    convolution do it (the map before the two were folded together, and what an export traces)."""
    generator = torch.Generator().manual_seed(1)
    maps = [3 * torch.randn(2, 1, -(-size[0] // s), -(-size[1] // s), generator=generator) for s in (4, 8, 16)]
    blur = UpsampleBlur(4.0 * min(size) / 256)
    torch.testing.assert_close(blur(maps, size), blur.convolved(maps, size), rtol=1e-5, atol=1e-5)  # float rounding; issue 10 allows 1e-3


def test_blur_passes_gradients_also_after_being_used_for_inference():
    blur, maps = UpsampleBlur(2.0), torch.rand(1, 1, 8, 12)
    with torch.inference_mode():
        blur([maps], (32, 48))  # the cached matrices are made here
    weights = torch.rand(1, 1, 32, 48)
    by_matrices, by_convolution = maps.clone().requires_grad_(), maps.clone().requires_grad_()
    (blur([by_matrices], (32, 48)) * weights).sum().backward()  # training's consistency loss backpropagates through the blur
    (blur.convolved([by_convolution], (32, 48)) * weights).sum().backward()
    torch.testing.assert_close(by_matrices.grad, by_convolution.grad, rtol=1e-5, atol=1e-6)


def test_blur_preserves_constant_map():
    maps = torch.full((2, 1, 20, 33), 0.37)
    out = UpsampleBlur(3.0)([maps], maps.shape[-2:])
    assert out.shape == maps.shape
    torch.testing.assert_close(out, maps)


def test_blur_keeps_mass_and_peak_of_interior_impulse():
    maps = torch.zeros(1, 1, 64, 64)
    maps[0, 0, 30, 40] = 1.0
    out = UpsampleBlur(2.0)([maps], maps.shape[-2:])  # radius 8: the impulse is well inside
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(int(out.argmax()), (64, 64)) == (30, 40)
    # separable: the result is the outer product of the 1-D kernel with itself
    k = UpsampleBlur(2.0).kernel
    torch.testing.assert_close(out[0, 0, 22:39, 32:49], torch.outer(k, k))
    assert float(out.max()) < 1.0


def test_blur_of_off_centre_impulse_near_edge_peaks_at_impulse():
    maps = torch.zeros(1, 1, 24, 24)
    maps[0, 0, 1, 22] = 5.0
    out = UpsampleBlur(1.5)([maps], maps.shape[-2:])
    assert np.unravel_index(int(out.argmax()), (24, 24)) == (1, 22)
    assert float(out.min()) >= 0.0


def test_blur_handles_batches_independently():
    maps = torch.zeros(2, 1, 32, 32)
    maps[1, 0, 16, 16] = 1.0
    out = UpsampleBlur(2.0)([maps], maps.shape[-2:])
    assert float(out[0].abs().max()) == 0.0
    assert float(out[1].max()) > 0.0


def features(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, h, w, generator=g) for c, h, w in shapes]


SHAPES = [(8, 16, 24), (12, 8, 12), (16, 4, 6)]


def test_map_is_zero_when_features_agree():
    teacher = features(SHAPES)
    maps = student_map(teacher, [t.clone() for t in teacher], (64, 96), UpsampleBlur(2.0))
    assert maps.shape == (2, 1, 64, 96)
    assert float(maps.abs().max()) < 1e-5


def test_map_is_scale_invariant_in_the_student():
    teacher = features(SHAPES)
    student = features(SHAPES, seed=1)
    blur = UpsampleBlur(1.0)
    a = student_map(teacher, student, (32, 48), blur)
    b = student_map(teacher, [3.0 * s for s in student], (32, 48), blur)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [(64, 96), (50, 70), (16, 16)])
def test_map_has_requested_size(size):
    teacher = features(SHAPES)
    maps = student_map(teacher, features(SHAPES, seed=1), size, UpsampleBlur(1.0))
    assert maps.shape == (2, 1, *size)
    assert maps.dtype == torch.float32


def test_map_matches_cosine_distance_without_blur_effect():
    """Single scale at full resolution with a tiny blur: the map is 1 - cos per pixel."""
    teacher = features([(5, 12, 12)])
    student = features([(5, 12, 12)], seed=3)
    maps = student_map(teacher, student, (12, 12), UpsampleBlur(1e-3))
    t, s = teacher[0].numpy(), student[0].numpy()
    cos = (t * s).sum(1) / (np.linalg.norm(t, axis=1) * np.linalg.norm(s, axis=1))
    np.testing.assert_allclose(maps[:, 0].numpy(), 1 - cos, atol=1e-5)


def test_map_averages_scales():
    """Two scales, one identical and one opposite: mean of distances 0 and 2 is 1."""
    t = features([(4, 8, 8), (4, 8, 8)])
    maps = student_map(t, [t[0].clone(), -t[1]], (8, 8), UpsampleBlur(1e-3))
    torch.testing.assert_close(maps, torch.ones_like(maps))


def test_map_peaks_where_features_differ():
    teacher = features(SHAPES)
    student = [t.clone() for t in teacher]
    # the same image region (rows 1/4..1/2, cols 1/2..3/4 of the map) differs at every scale
    g = torch.Generator().manual_seed(5)
    for s in student:
        h, w = s.shape[-2:]
        s[1, :, h // 4 : h // 2, w // 2 : 3 * w // 4] = torch.randn(s.shape[1], h // 4, w // 4, generator=g)
    maps = student_map(teacher, student, (64, 96), UpsampleBlur(2.0))
    assert float(maps[0].abs().max()) < 1e-5  # image 0 untouched
    row, col = np.unravel_index(int(maps[1, 0].argmax()), (64, 96))
    assert 16 <= row < 32 and 48 <= col < 72
    inside = maps[1, 0, 18:30, 50:70].mean()
    outside = maps[1, 0, 45:, :30].mean()
    assert float(inside) > 0.3 and float(outside) < 0.01


@pytest.mark.parametrize("shape", [(3, 1, 10, 10), (2, 1, 7, 13), (4, 250)])
def test_max_score(shape):
    maps = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    expected = maps.numpy().reshape(shape[0], -1).max(axis=1)
    np.testing.assert_allclose(image_score(maps, "max").numpy(), expected)


@pytest.mark.parametrize("shape", [(3, 1, 10, 10), (2, 1, 7, 13), (2, 1, 50, 60), (4, 50)])
def test_top1_score(shape):
    maps = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    flat = maps.numpy().reshape(shape[0], -1)
    k = math.ceil(flat.shape[1] * 0.01)
    expected = np.sort(flat, axis=1)[:, ::-1][:, :k].mean(axis=1)
    scores = image_score(maps, "top1")
    assert scores.shape == (shape[0],)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-6)


def test_top1_ignores_a_single_hot_pixel_more_than_max():
    maps = torch.zeros(1, 1, 20, 20)  # 400 px -> top 1% = 4 px
    maps[0, 0, 3, 3] = 1.0
    assert float(image_score(maps, "max")) == 1.0
    assert float(image_score(maps, "top1")) == pytest.approx(0.25)


def test_score_rules_listed():
    maps = torch.rand(2, 1, 4, 4)
    for rule in SCORE_RULES:
        assert image_score(maps, rule).shape == (2,)


def test_unknown_rule():
    with pytest.raises(ValueError, match="median"):
        image_score(torch.rand(1, 1, 4, 4), "median")


def test_unit_statistics_give_the_students_raw_map():
    """Mean 0 and spread 1 (an untrained model, a format-1 checkpoint): the map is the plain mean of the distances."""
    teacher, student = features(SHAPES), features(SHAPES, seed=1)
    blur = UpsampleBlur(1.0)
    combined = anomaly_map(distance_maps(teacher, student), None, torch.zeros(4), torch.ones(4), (32, 48), blur)
    torch.testing.assert_close(combined, student_map(teacher, student, (32, 48), blur))


def test_each_scale_is_standardised_before_the_scales_are_averaged():
    """A scale with a high floor of distance on every pixel must not drown out the others."""
    scale_maps = [torch.full((1, 1, 4, 4), 0.5), torch.full((1, 1, 4, 4), 0.1)]
    scale_maps[1][0, 0, 1, 1] = 0.3  # one unusual pixel on the low-floor scale
    mean, std = torch.tensor([0.5, 0.1, 0.0]), torch.tensor([0.05, 0.05, 1.0])
    combined = anomaly_map(scale_maps, None, mean, std, (4, 4), UpsampleBlur(1e-3))
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 1, 1] = (0.3 - 0.1) / 0.05 / 2  # (0 + 4) / 2 scales
    torch.testing.assert_close(combined, expected)


def test_the_memory_map_is_standardised_and_added():
    scale_maps = [torch.zeros(2, 1, 4, 4)]
    memory_map = torch.arange(32, dtype=torch.float32).view(2, 1, 4, 4)
    mean, std = torch.tensor([0.0, 10.0]), torch.tensor([1.0, 4.0])
    combined = anomaly_map(scale_maps, memory_map, mean, std, (4, 4), UpsampleBlur(1e-3))
    torch.testing.assert_close(combined, (memory_map - 10.0) / 4.0)


def test_maps_of_one_grid_are_combined_before_upsampling_with_the_same_result():
    """The map is defined at full size (each map upsampled, standardised, averaged, the memory added,
    blurred); it is computed with maps of one grid added first. Both must agree."""
    generator = torch.Generator().manual_seed(0)
    grids = [(16, 24), (8, 12), (4, 6)]  # strides 4, 8, 16 of a 64 x 96 input
    scale_maps = [torch.rand(2, 1, *g, generator=generator) for g in grids]
    memory_map = 3 * torch.rand(2, 1, *grids[1], generator=generator)  # the memory's grid is the stride-8 scale's
    mean, std = torch.tensor([0.2, 0.3, 0.4, 1.5]), torch.tensor([0.05, 0.1, 0.2, 0.7])
    size, blur = (64, 96), UpsampleBlur(1.0)

    def upsampled(m):
        return torch.nn.functional.interpolate(m, size=size, mode="bilinear", align_corners=False)

    definition = sum((upsampled(m) - mu) / sd for m, mu, sd in zip(scale_maps, mean, std)) / 3
    definition = blur.convolved([definition + (upsampled(memory_map) - mean[-1]) / std[-1]], size)
    torch.testing.assert_close(anomaly_map(scale_maps, memory_map, mean, std, size, blur), definition, rtol=0, atol=1e-5)


@pytest.mark.parametrize("k", [1, 7, 656])
def test_top_mean_by_numpy_selection_equals_torch_topk(k):
    """The CPU's fast path (numpy's partition) and topk (other devices, gradients, exports) agree,
    also where values tie across the k-th place."""
    generator = torch.Generator().manual_seed(k)
    rows = torch.randn(3, 65536, generator=generator)
    rows[1] = torch.randint(0, 5, (65536,), generator=generator).float()  # many ties
    expected = rows.topk(k, dim=1).values.mean(dim=1)
    torch.testing.assert_close(top_mean(rows, k), expected, rtol=1e-6, atol=1e-6)
    with_gradients = rows.clone().requires_grad_()
    top_mean(with_gradients, k).sum().backward()
    assert int((with_gradients.grad > 0).sum()) == 3 * k  # topk's path: each of the k largest gets 1/k


@pytest.mark.parametrize("layout", ["hot where sampled", "hot where not sampled", "ties", "short", "k is all"])
def test_largest_equals_a_full_selection_wherever_the_hot_values_lie(layout):
    """`largest` selects from values above a bound set on a strided sample; the k largest must be the
    same as a selection from every value, also where the sample sees only the hottest values (fewer
    than k pass its bound, so it falls back to all) or none of them."""
    rng = np.random.default_rng(0)
    n, k = 65536, 656
    values = rng.random(n, dtype=np.float32)
    sampled = np.arange(n) % SAMPLE_STRIDE == 0
    if layout == "hot where sampled":
        values[sampled] += 10
    elif layout == "hot where not sampled":
        values[~sampled] += 10
    elif layout == "ties":
        values = rng.integers(0, 3, n).astype(np.float32)
    elif layout == "short":
        n, k = 5, 2
        values = values[:n]
    else:
        k = n
    expected = np.sort(values)[-k:]
    np.testing.assert_array_equal(np.sort(largest(values, k)), expected)


def test_edge_bands_count_the_distance_from_the_nearest_edge_in_equal_bands_to_the_short_sides_middle():
    bands = edge_bands(8, 12, 2, torch.device("cpu"))  # 2 bands of 2 pixels from each edge to the middle of the 8 rows
    expected = torch.ones(8, 12, dtype=torch.int32)
    expected[:2], expected[-2:], expected[:, :2], expected[:, -2:] = 0, 0, 0, 0
    torch.testing.assert_close(bands, expected)
    strip = edge_bands(256, 640, 64, torch.device("cpu"))
    assert strip[:, 320].tolist() == [d // 2 for d in range(128)] + [d // 2 for d in reversed(range(128))]  # 2 px a band
    assert strip[128, :].max() == 63 and strip[128, 200:440].eq(63).all()  # the long side's middle: the last band


def test_the_edge_profile_is_the_mean_of_normal_maps_in_each_band_over_maps_of_any_size():
    bands = 4
    maps = []
    for height, width in [(8, 8), (8, 20), (16, 8)]:
        band = edge_bands(height, width, bands, torch.device("cpu")).float()
        maps.append(torch.stack([band * 10 + 1, band * 10 - 1])[:, None])  # two images: the band's value +-1
    torch.testing.assert_close(edge_profile(maps, bands), torch.tensor([0.0, 10.0, 20.0, 30.0]))
    level = edge_level(edge_profile(maps, bands), (8, 20))
    torch.testing.assert_close(level, edge_bands(8, 20, bands, torch.device("cpu")).float() * 10)
    assert edge_profile([], 3).tolist() == [0.0, 0.0, 0.0]


def test_a_band_no_normal_pixel_fell_in_takes_the_nearest_bands_level_so_another_input_size_is_not_striped():
    """64 bands learned at a 64 px short side leave every other band empty; a 96 px one reaches them."""
    maps = [edge_bands(64, 64, 64, torch.device("cpu")).float()[None, None] + 10]  # each band's own level: 10 + band
    profile = edge_profile(maps, 64)
    assert profile[:6].tolist() == [10.0, 10.0, 12.0, 12.0, 14.0, 14.0]  # 1, 3, 5 empty: the nearer lower one's
    level = edge_level(profile, (96, 160))
    assert level.min() >= 10 and (level[:, 80].diff()[:48] >= 0).all()  # rising to the middle, no zeros between


def test_a_kept_map_loses_no_pixel_at_or_above_any_threshold_and_holds_any_value():
    """Rounded to the nearest float16, a peak a hair above the threshold fell under it; a value past float16's range
    became infinite."""
    amap = np.linspace(0.2, 0.49, 60_000, dtype=np.float32).reshape(200, 300)
    amap[100, 150] = 0.5002
    kept = kept_map(amap)
    assert kept.dtype == np.float16 and float(amap.astype(np.float16)[100, 150]) < 0.5001 <= float(kept[100, 150])
    assert (kept >= amap).all() and (kept.astype(np.float32) - amap).max() <= 0.0005  # up by less than one step
    for wide in (np.array([[1.0, 70_000.0]], np.float32), np.array([[1.0, np.inf]], np.float32)):
        np.testing.assert_array_equal(kept_map(wide), wide)
        assert kept_map(wide).dtype == np.float32

