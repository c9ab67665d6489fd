"""bench/precision.py: the float32 row is rbd's own prediction; bfloat16 rows move from it and say how far."""

import numpy as np
import pytest

import rbd
from bench.precision import measure


def test_the_float32_variant_is_what_rbd_predicts_and_the_others_report_their_distance(detector, category):
    result = measure(detector, category)
    float32 = result["variants"]["float32"]
    evaluation = rbd.evaluate(detector, category)
    assert float32["image_auroc"] == pytest.approx(evaluation.image_auroc, abs=1e-6)
    assert float32["aupro"] == pytest.approx(evaluation.aupro, abs=1e-4)
    assert float32["score_moved_max"] == 0.0 and float32["map_moved_max"] == 0.0
    scores = np.array([r["score"] for r in evaluation.rows])
    labels = np.array([r["label"] for r in evaluation.rows])
    assert float32["recall"] == np.mean(scores[labels == 1] >= detector.threshold)
    teacher = result["variants"]["teacher bfloat16"]
    assert teacher["map_moved_max"] > 0 and teacher["score_moved_max"] >= teacher["score_moved_median"] > 0
