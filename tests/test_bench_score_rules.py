"""bench/score_rules.py --sources: the image score from the map, the memory, their mean and their maximum."""

import numpy as np

import rbd
from bench.score_rules import source_scores


def test_the_mean_of_the_sources_is_the_default_score_and_the_detector_is_left_as_it_was(detector, category):
    rows = rbd.evaluate(detector, category).rows
    labels, scores = source_scores(detector, category)
    assert list(labels) == [row["label"] for row in rows] and detector.config.score_from == "both"
    np.testing.assert_allclose(scores["mean (default)"], [row["score"] for row in rows], rtol=1e-5, atol=1e-6)
    assert not np.allclose(scores["map"], scores["memory"])  # two sources, not one read twice
    np.testing.assert_array_equal(scores["max"], np.maximum(scores["map"], scores["memory"]))
