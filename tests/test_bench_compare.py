"""bench/compare.py's scoring: every model's maps judged by rbd.metrics at the image's own size.
anomalib is not needed (nor imported) here."""

from types import SimpleNamespace

import numpy as np
import pytest

from bench.compare import at_size, score_outputs
from rbd import metrics


def _mask(shape=(60, 90)):
    mask = np.zeros(shape, bool)
    mask[20:35, 40:70] = True
    return mask


def test_maps_are_brought_to_the_mask_size_before_rbd_metrics():
    rng = np.random.default_rng(0)
    masks = [np.zeros((60, 90), bool), _mask()]
    maps = [rng.random((32, 32)).astype(np.float32) for _ in masks]  # a peer's map, coarser and square
    result = score_outputs([0, 1], [0.2, 0.9], masks, maps)
    upsized = [at_size(amap, mask.shape) for amap, mask in zip(maps, masks)]
    assert upsized[0].shape == (60, 90) and upsized[0].dtype == np.float32
    assert result == metrics.summarize(np.array([0, 1]), np.array([0.2, 0.9]), masks, upsized)


def test_a_map_that_marks_the_defect_scores_perfectly_at_any_resolution():
    mask = _mask()
    coarse = at_size(mask.astype(np.float32), (30, 45))  # the defect, seen at half resolution
    result = score_outputs([0, 1], [0.1, 5.0], [np.zeros_like(mask), mask], [np.zeros((30, 45), np.float32), coarse])
    assert result["image_auroc"] == result["image_f1max"] == 1.0
    assert result["pixel_auroc"] > 0.99 and result["aupro"] > 0.9


def test_maps_already_at_image_size_are_used_as_they_are():
    amap = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert at_size(amap, (3, 4)) is amap


def test_without_masks_only_image_metrics():
    result = score_outputs([0, 0, 1], [1e3, 2e3, 3e3])  # raw, unnormalised scores
    assert result == {"image_auroc": 1.0, "image_f1max": 1.0, "pixel_auroc": None, "aupro": None}
    with pytest.raises(ValueError):
        score_outputs([0, 1], [0.1, 0.2], [np.zeros((4, 4), bool)], [np.zeros((4, 4))])  # one mask, two images


def test_rbd_can_be_trained_with_other_model_settings(monkeypatch, tmp_path):
    import rbd
    from bench.compare import RbdModel

    calls = []
    trained = SimpleNamespace(training={"train_images": 3, "steps": 1, "epochs": 1, "seconds": 0.1})
    monkeypatch.setattr(rbd, "train", lambda folder, model_config, config: calls.append((model_config, config)) or trained)
    monkeypatch.setattr(rbd, "save", lambda detector, path: None)
    model = RbdModel(4.0, None, tmp_path, {"embed_dim": 96, "decoder_widths": [48, 24, 16]}, seed=3)
    model.fit(tmp_path / "weld" / "train" / "good")
    (model_config, config), = calls
    assert model_config == rbd.ModelConfig(embed_dim=96, decoder_widths=(48, 24, 16))  # the rest are the defaults
    assert config.max_minutes == 4.0 and config.seed == 3 and model.settings["model"] == {"embed_dim": 96, "decoder_widths": [48, 24, 16]}
    with pytest.raises(rbd.InvalidInputError, match="unknown model settings"):
        RbdModel(4.0, None, tmp_path, {"embed_dims": 96})


def test_the_peers_without_anomalib_are_refused_before_rbd_trains(tmp_path, monkeypatch, capsys):
    """rbd trained its minutes, wrote its results, then the first peer failed with a bare ModuleNotFoundError."""
    import importlib.util
    import sys

    from bench import compare

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "anomalib" else object())
    monkeypatch.setattr(compare, "run", lambda *a: pytest.fail("a model ran"))
    monkeypatch.setattr(sys, "argv", ["compare", "--data", str(tmp_path), "--sets", "weld", "--out", str(tmp_path / "out"),
                                      "--models", "rbd", "patchcore"])
    with pytest.raises(SystemExit) as stopped:
        compare.main()
    assert stopped.value.code == 2 and "the peers need anomalib: pip install -r bench/requirements.txt" in capsys.readouterr().err


def test_a_good_images_mask_is_all_normal_as_rbd_evaluate_takes_it(tmp_path):
    """A marked mask beside a good image was scored here and dropped by `rbd evaluate`: two pixel metrics of one model."""
    from PIL import Image

    from bench.compare import read_mask
    from rbd.datasets import TestImage

    marked = np.zeros((8, 8), np.uint8)
    marked[2:4, 2:4] = 255
    Image.fromarray(marked).save(tmp_path / "mask.png")
    assert not read_mask(TestImage(tmp_path / "a.png", "good", tmp_path / "mask.png"), (8, 8)).any()
    assert read_mask(TestImage(tmp_path / "b.png", "crack", tmp_path / "mask.png"), (8, 8)).sum() == 4
