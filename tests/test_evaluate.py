"""Evaluation on MVTec-layout folders: metrics agree with the metrics module, layouts are checked."""

import shutil

import numpy as np
import pytest

import rbd
from rbd import metrics
from rbd.datasets import mvtec_test_set, training_folder


def test_evaluation_matches_metrics_on_its_own_rows(detector, category):
    result = rbd.evaluate(detector, category)
    labels = [r["label"] for r in result.rows]
    scores = [r["score"] for r in result.rows]
    assert result.n_images == len(result.rows) == 10 and sum(labels) == 5
    assert result.image_auroc == metrics.auroc(labels, scores)
    assert result.image_f1max == metrics.f1_max(labels, scores)
    assert result.roc["fpr"][0] == 0 and result.roc["tpr"][-1] == 1
    assert result.ms_per_image > 0
    assert {r["verdict"] for r in result.rows} <= {"good", "defective"}


def test_without_masks_pixel_metrics_are_none(detector, category, tmp_path):
    copy = shutil.copytree(category, tmp_path / "nomasks")
    shutil.rmtree(copy / "ground_truth")
    result = rbd.evaluate(detector, copy)
    assert result.pixel_auroc is None and result.aupro is None and result.image_auroc is not None
    assert result.summary()["pixel_auroc"] is None


def test_layout_errors(detector, category, tmp_path):
    with pytest.raises(rbd.DatasetLayoutError, match="not an MVTec AD category"):
        rbd.evaluate(detector, tmp_path)
    only_good = shutil.copytree(category, tmp_path / "only_good")
    shutil.rmtree(only_good / "test" / "hole")
    with pytest.raises(rbd.DatasetLayoutError, match="no defect folder"):
        mvtec_test_set(only_good)


def test_training_folder_prefers_train_good(category, tmp_path):
    assert training_folder(category) == category / "train" / "good"
    assert training_folder(tmp_path) == tmp_path


def test_mask_size_mismatch_is_reported(detector, category, tmp_path):
    from PIL import Image

    copy = shutil.copytree(category, tmp_path / "badmask")
    mask = next((copy / "ground_truth" / "hole").iterdir())
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(mask)
    with pytest.raises(rbd.ImageReadError, match="mask is 5x5"):
        rbd.evaluate(detector, copy)
