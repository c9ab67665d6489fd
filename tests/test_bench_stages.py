"""bench/stages.py: the stages are timed on the passes a prediction makes, and summed as `predict` runs them."""

import numpy as np

import rbd
from bench import stages


def test_the_bench_times_the_passes_that_predict_makes(detector, monkeypatch):
    """A batch of eight large inputs is several CPU passes in `predict`: the teacher alone, timed on one
    pass of eight, would be slower per image than the teacher `predict` runs (its ratio came out below 1)."""
    encoded = stages.stream("square", 5, np.random.default_rng(0))
    height, width = stages._input_shape(encoded[0], detector.config)
    monkeypatch.setattr(rbd.detector, "MAX_CPU_BATCH_PIXELS", 2 * height * width + 1)  # two inputs a pass
    assert [len(run) for run in stages.groups(encoded, 8, detector.config, detector.network.device)] == [2, 2, 1]
    assert [len(run) for run in stages.groups(encoded, 1, detector.config, detector.network.device)] == [1] * 5


def test_the_stages_of_predict_leave_out_decoding_and_the_mask(detector):
    result = stages.measure(detector, stages.stream("square", 2, np.random.default_rng(1)), batch=1, warmup=0)
    ms = result["ms"]
    besides = sum(ms[s] for s in stages.STAGES if s not in ("teacher", "decode", "mask"))
    assert result["stages of predict besides the teacher, ms"] == round(besides, 2) and ms["decode"] > 0
