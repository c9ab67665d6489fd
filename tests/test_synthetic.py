"""Tests for rbd.synthetic: Perlin noise, defect masks, and painting defects onto batches."""

import pytest
import torch

from rbd.synthetic import add_defects, blob_mask, feature_dropout, perlin_noise, scratch_mask


def gen(seed):
    return torch.Generator().manual_seed(seed)


def smooth_batch(batch=4, height=48, width=64, seed=0):
    """Colourful but smooth images: defects from foreign content stand out against them."""
    g = gen(seed)
    coarse = torch.rand(batch, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


# --- Perlin noise ----------------------------------------------------------------------------


@pytest.mark.parametrize("cells", [(2, 2), (4, 8), (16, 16)])
def test_perlin_noise_shape_and_range(cells):
    noise = perlin_noise(3, 40, 56, cells, gen(0))
    assert noise.shape == (3, 40, 56)
    assert noise.dtype == torch.float32
    assert torch.isfinite(noise).all()
    assert float(noise.abs().max()) <= 1.5
    assert float(noise.std()) > 0.05  # not degenerate


def test_perlin_noise_is_zero_on_lattice_points():
    """Gradient noise vanishes at the lattice corners: rows/cols at multiples of height/cells."""
    noise = perlin_noise(2, 32, 32, (4, 4), gen(1))
    lattice = noise[:, ::8, ::8]
    assert float(lattice.abs().max()) < 1e-5
    assert float(noise.abs().max()) > 0.1


def test_perlin_noise_is_smooth():
    noise = perlin_noise(1, 64, 64, (2, 2), gen(2))[0]
    step = max(float((noise[1:] - noise[:-1]).abs().max()), float((noise[:, 1:] - noise[:, :-1]).abs().max()))
    assert step < 0.2 * float(noise.max() - noise.min())


def test_perlin_noise_deterministic_per_seed():
    a = perlin_noise(2, 32, 32, (4, 4), gen(7))
    b = perlin_noise(2, 32, 32, (4, 4), gen(7))
    c = perlin_noise(2, 32, 32, (4, 4), gen(8))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


def test_perlin_noise_batch_items_differ():
    noise = perlin_noise(2, 32, 32, (4, 4), gen(3))
    assert not torch.allclose(noise[0], noise[1])


# --- masks -----------------------------------------------------------------------------------


def assert_binary_nonempty(mask, height, width):
    assert mask.shape == (height, width)
    assert mask.dtype == torch.float32
    assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}
    assert mask.sum() > 0


@pytest.mark.parametrize("seed", range(6))
def test_blob_mask_binary_and_nonempty(seed):
    mask = blob_mask(48, 64, gen(seed))
    assert_binary_nonempty(mask, 48, 64)
    assert mask.mean() < 0.9  # a region, not the whole image


@pytest.mark.parametrize("seed", range(6))
def test_scratch_mask_binary_and_nonempty(seed):
    mask = scratch_mask(48, 64, gen(seed))
    assert_binary_nonempty(mask, 48, 64)
    assert mask.mean() < 0.5  # thin strokes


def test_masks_deterministic_per_seed():
    torch.testing.assert_close(blob_mask(32, 32, gen(5)), blob_mask(32, 32, gen(5)))
    torch.testing.assert_close(scratch_mask(32, 32, gen(5)), scratch_mask(32, 32, gen(5)))
    assert not torch.equal(scratch_mask(32, 32, gen(5)), scratch_mask(32, 32, gen(6)))


# --- add_defects -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_add_defects_probability_one(seed):
    images = smooth_batch(seed=seed)
    original = images.clone()
    corrupted, masks = add_defects(images, gen(seed), probability=1.0)
    torch.testing.assert_close(images, original, rtol=0, atol=0)  # input not modified in place
    assert corrupted.shape == images.shape
    assert masks.shape == (images.shape[0], 1, *images.shape[2:])
    assert set(torch.unique(masks).tolist()) <= {0.0, 1.0}
    assert (masks.flatten(1).sum(dim=1) > 0).all()
    assert float(corrupted.min()) >= 0.0 and float(corrupted.max()) <= 1.0
    outside = (masks == 0).expand_as(images)
    torch.testing.assert_close(corrupted[outside], images[outside], rtol=0, atol=0)
    changed = (corrupted - images).abs().amax(dim=1, keepdim=True) > 1e-4
    for i in range(images.shape[0]):
        assert (changed[i] & (masks[i] > 0)).any(), f"image {i}: nothing changed inside the mask"


def test_add_defects_probability_zero():
    images = smooth_batch()
    corrupted, masks = add_defects(images, gen(0), probability=0.0)
    torch.testing.assert_close(corrupted, images, rtol=0, atol=0)
    assert float(masks.abs().max()) == 0.0


def test_add_defects_deterministic_per_seed():
    images = smooth_batch()
    a, ma = add_defects(images, gen(11), probability=0.7)
    b, mb = add_defects(images, gen(11), probability=0.7)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(ma, mb, rtol=0, atol=0)


def test_add_defects_fraction_follows_probability():
    images = smooth_batch(batch=40, height=32, width=32)
    _, masks = add_defects(images, gen(4), probability=0.5)
    touched = int((masks.flatten(1).sum(dim=1) > 0).sum())
    assert 8 <= touched <= 32


@pytest.mark.parametrize("seed", range(3))
def test_grey_images_stay_grey(seed):
    grey = smooth_batch(seed=seed)[:, :1].expand(-1, 3, -1, -1).contiguous()
    corrupted, masks = add_defects(grey, gen(seed), probability=1.0)
    assert (masks.flatten(1).sum(dim=1) > 0).all()
    spread = (corrupted.amax(dim=1) - corrupted.amin(dim=1)).max()
    assert float(spread) < 1e-5
    assert not torch.equal(corrupted, grey)


# --- feature dropout -------------------------------------------------------------------------


def test_feature_dropout_fraction_zero_is_identity():
    features = torch.randn(2, 8, 16, 24)
    torch.testing.assert_close(feature_dropout(features, gen(0), fraction=0.0), features, rtol=0, atol=0)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.6])
def test_feature_dropout_zeroes_about_the_fraction(fraction):
    features = torch.rand(8, 4, 64, 64) + 0.5  # strictly positive: zeros come only from dropout
    out = feature_dropout(features, gen(1), fraction=fraction)
    assert out.shape == features.shape
    dropped = out == 0
    # whole locations are dropped across all channels
    assert torch.equal(dropped.all(dim=1), dropped.any(dim=1))
    assert float(dropped.float().mean()) == pytest.approx(fraction, abs=0.08)
    kept = ~dropped
    torch.testing.assert_close(out[kept], features[kept], rtol=0, atol=0)


def test_feature_dropout_drops_square_patches():
    features = torch.ones(1, 1, 32, 32)
    out = feature_dropout(features, gen(2), fraction=0.5)[0, 0]
    side = 32 // 8
    blocks = out.reshape(8, side, 8, side).permute(0, 2, 1, 3).reshape(64, -1)
    # every side x side block is either fully kept or fully dropped
    assert ((blocks.min(dim=1).values == blocks.max(dim=1).values)).all()
    assert 0 < int((blocks[:, 0] == 0).sum()) < 64


def test_feature_dropout_non_multiple_sizes():
    features = torch.ones(2, 3, 13, 21)
    out = feature_dropout(features, gen(3), fraction=0.5)
    assert out.shape == features.shape


def test_invisible_defects_are_repainted():
    """A defect indistinguishable from the part would teach the model to see things that are not there."""
    from rbd.synthetic import MIN_VISIBLE_CHANGE, add_defects

    flat = torch.full((16, 3, 64, 64), 0.5)  # displaced content of a flat image changes (almost) nothing
    for seed in range(3):
        corrupted, masks = add_defects(flat, torch.Generator().manual_seed(seed), probability=1.0)
        for image, mask in zip(corrupted, masks):
            change = (image - flat[0]).abs().mean(dim=0)
            assert change[mask[0] > 0].mean() >= MIN_VISIBLE_CHANGE * 0.999


def test_displaced_content_comes_from_another_image_of_the_batch():
    from rbd.synthetic import displaced_content

    images = torch.eye(3)[:, :, None, None].expand(3, 3, 8, 8)  # image k is pure colour channel k
    generator = torch.Generator().manual_seed(0)
    sources = {index: {int(displaced_content(images, index, generator).mean((1, 2)).argmax()) for _ in range(20)}
               for index in range(3)}
    assert sources == {0: {1, 2}, 1: {0, 2}, 2: {0, 1}}  # never itself, and both others in time
    assert int(displaced_content(images[:1], 0, generator).mean((1, 2)).argmax()) == 0  # a batch of one
