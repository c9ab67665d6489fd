"""bench/variants.py: derived sets that isolate mixed image sizes or mixed lighting, masks kept in register."""

import numpy as np
import pytest
from PIL import Image

from bench.variants import crop_box, make_variant
from rbd.datasets import mvtec_test_set


def _sizes(folder):
    return [Image.open(p).size for p in sorted(folder.rglob("*.png"))]


def _short_sides(root):
    return [min(size) for size in _sizes(root / "train" / "good") + _sizes(root / "test" / "good")]


@pytest.fixture(scope="module")
def variants(category, tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    return {name: (root / name, make_variant(category, root / name, name)) for name in ("sizes", "one-size", "lighting")}


def test_every_variant_keeps_the_sets_files_and_labels(category, variants):
    expected = sorted((item.path.relative_to(category).with_suffix(".png"), item.defect) for item in mvtec_test_set(category))
    for root, count in variants.values():
        found = sorted((item.path.relative_to(root), item.defect) for item in mvtec_test_set(root))
        assert found == expected
        assert count == len(list((category / "train" / "good").iterdir())) + len(expected)


def test_sizes_vary_the_short_side_and_one_size_holds_it(variants):
    sizes = _short_sides(variants["sizes"][0])
    one_size = _short_sides(variants["one-size"][0])
    assert max(sizes) - min(sizes) >= 10  # 40-100 % of the conftest's 64-pixel short side
    assert len(set(one_size)) == 1 and one_size[0] == int(64 * 0.7)


def test_a_cropped_defect_stays_under_its_cropped_mask(variants):
    root = variants["sizes"][0]
    for item in mvtec_test_set(root):
        if not item.is_anomalous:
            continue
        image = np.asarray(Image.open(item.path), dtype=float)
        mask = np.asarray(Image.open(item.mask_path)) > 127
        assert mask.shape == image.shape and mask.any()  # the crop holds the mask's centre
        assert image[mask].mean() < 40 < image[~mask].mean()  # the conftest's defects are dark discs


def test_lighting_changes_intensities_but_not_geometry_or_masks(category, variants):
    root = variants["lighting"][0]
    before = sorted((category / "train" / "good").iterdir())
    after = sorted((root / "train" / "good").iterdir())
    changes = []
    for a, b in zip(before, after):
        x, y = np.asarray(Image.open(a), dtype=float), np.asarray(Image.open(b), dtype=float)
        assert x.shape == y.shape
        changes.append(y.mean() / x.mean())
    assert max(changes) - min(changes) > 0.1  # each image its own gain and gamma
    for item in mvtec_test_set(category):
        if item.mask_path is not None:
            copied = root / item.mask_path.relative_to(category)
            assert np.array_equal(np.asarray(Image.open(copied)), np.asarray(Image.open(item.mask_path)))


def test_a_crop_lies_inside_the_image_and_holds_the_centre_it_is_given():
    for u in (0.0, 0.5, 0.99):
        left, top, right, bottom = crop_box(100, 300, 0.5, 2.0, u, u, centre=(90, 10))
        assert 0 <= left < right <= 100 and 0 <= top < bottom <= 300
        assert (right - left, bottom - top) == (50, 100)
        assert left <= 90 < right and top <= 10 < bottom


def test_an_unknown_variant_is_refused(category, tmp_path):
    with pytest.raises(ValueError, match="unknown variant"):
        make_variant(category, tmp_path / "x", "blur")
