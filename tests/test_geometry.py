"""Tests for rbd.geometry: aspect-preserving fit to stride multiples, and maps back to the image."""

import numpy as np
import pytest
import torch

from rbd.geometry import fit, to_image_size, to_input
from rbd.model import ModelConfig

MULTIPLE = ModelConfig().input_multiple  # 32 for the default layers

SIZES = [(64, 64), (48, 96), (96, 48), (33, 71), (71, 33), (256, 640), (640, 253), (20, 300), (300, 20), (1, 1)]


@pytest.mark.parametrize("height, width", SIZES)
@pytest.mark.parametrize("image_size", [32, 64, 256])
def test_fit_keeps_aspect_ratio_within_a_stride(height, width, image_size):
    fitted = fit(height, width, image_size, 4.0, MULTIPLE)
    h, w = fitted.input
    assert h % MULTIPLE == 0 and w % MULTIPLE == 0
    assert min(h, w) == image_size
    expected_long = min(max(height, width) / min(height, width), 4.0) * image_size
    assert abs(max(h, w) - expected_long) <= MULTIPLE / 2
    assert (h <= w) == (height <= width)  # the long side stays the long side


@pytest.mark.parametrize("max_aspect", [1.0, 2.5, 4.0])
def test_fit_caps_the_aspect_ratio(max_aspect):
    landscape, portrait = fit(10, 400, 64, max_aspect, MULTIPLE), fit(400, 10, 64, max_aspect, MULTIPLE)
    assert landscape.input == (64, round(64 * max_aspect / 32) * 32)
    assert portrait.input == landscape.input[::-1]


def random_image(height, width, seed=0):
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


@pytest.mark.parametrize("height, width", [(48, 96), (96, 48), (33, 71), (200, 120)])
def test_to_input_shape_and_range(height, width):
    fitted = fit(height, width, 64, 4.0, MULTIPLE)
    x = to_input(random_image(height, width), fitted)
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, *fitted.input)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_to_input_copies_pixels_when_no_resize_is_needed():
    image = random_image(64, 96)
    x = to_input(image, fit(64, 96, 64, 4.0, MULTIPLE)).numpy().transpose(1, 2, 0)
    np.testing.assert_array_equal(x, image)


def test_to_input_does_not_modify_the_image():
    image = random_image(30, 50)
    before = image.copy()
    to_input(image, fit(30, 50, 32, 4.0, MULTIPLE))
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("height, width", [(48, 96), (96, 48), (33, 71), (200, 120)])
def test_to_image_size_returns_the_original_shape(height, width):
    fitted = fit(height, width, 64, 4.0, MULTIPLE)
    maps = torch.rand(2, 1, *fitted.input)
    assert tuple(to_image_size(maps, fitted).shape) == (2, 1, height, width)
    assert tuple(to_image_size(maps[0, 0], fitted).shape) == (height, width)


@pytest.mark.parametrize("height, width", [(48, 96), (96, 48), (33, 71)])
def test_round_trip_of_a_constant_image(height, width):
    fitted = fit(height, width, 32, 4.0, MULTIPLE)
    back = to_image_size(to_input(np.full((height, width, 3), 0.7, np.float32), fitted), fitted)
    torch.testing.assert_close(back, torch.full_like(back, 0.7))


def test_round_trip_keeps_a_spot_in_place():
    """A bright square maps back to the same place after image -> model input -> image size."""
    image = np.zeros((60, 150, 3), np.float32)
    image[20:40, 100:120] = 1.0
    fitted = fit(60, 150, 32, 4.0, MULTIPLE)
    back = to_image_size(to_input(image, fitted)[:1], fitted)[0].numpy()
    row, col = np.unravel_index(back.argmax(), back.shape)
    assert 20 <= row < 40 and 100 <= col < 120
    assert back[:10].max() < 0.05 and back[:, :80].max() < 0.05


@pytest.mark.parametrize("height, width", [(48, 96), (33, 71), (10, 400)])
def test_portrait_and_landscape_are_treated_alike(height, width):
    """Transposing the image transposes the model input, aspect-capped strips included."""
    image = np.zeros((height, width, 3), np.float32)
    image[:, ::2] = 1.0  # fine stripes: an axis shrunk without antialiasing aliases visibly
    landscape = to_input(image, fit(height, width, 32, 4.0, MULTIPLE))
    portrait = to_input(np.ascontiguousarray(image.transpose(1, 0, 2)), fit(width, height, 32, 4.0, MULTIPLE))
    torch.testing.assert_close(landscape, portrait.transpose(1, 2), atol=0.02, rtol=0)


@pytest.mark.parametrize("layers, multiple", [((1, 2, 3), 32), ((0, 1, 2), 16)])
def test_the_input_multiple_follows_the_deepest_teacher_layer(layers, multiple):
    from rbd.model import RBD

    config = ModelConfig(layers=layers, memory_size=0, score_from="map")
    model = RBD(config)
    assert config.input_multiple == multiple == 2 * model.teacher.strides[-1]
    fitted = config.fit(100, 300)
    assert fitted.input[0] % multiple == 0 and fitted.input[1] % multiple == 0
    image = torch.rand(1, 3, *fitted.input)
    assert model(image).shape[-2:] == fitted.input
