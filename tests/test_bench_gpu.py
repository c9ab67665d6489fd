"""bench/gpu.py in its CPU mode, as CI runs it, so the GPU benchmark cannot rot before a GPU runs it."""

import json
import sys

from bench import gpu


def test_cpu_mode_measures_throughput_agreement_and_quality(category, checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [
        "bench.gpu", "--device", "cpu", "--checkpoint", str(checkpoint), "--data", str(category.parent),
        "--sets", category.name, "--batches", "1", "3", "--repeats", "2", "--minutes", "0.1", "--threads", "1",
        "--out", str(tmp_path)])
    gpu.main()
    result = json.loads((tmp_path / "gpu-cpu.json").read_text())

    assert [(r["precision"], r["batch"]) for r in result["throughput"]] == [("auto", 1), ("auto", 3), ("float32", 1), ("float32", 3)]
    assert all(r["images_per_second"] > 0 for r in result["throughput"])
    float32 = result["agreement"][0]
    assert float32["precision"] == "float32" and float32["images"] == 8
    assert float32["max_map_difference"] <= 1e-6 and float32["max_score_difference"] <= 1e-6  # the CPU against itself
    (trained,) = result["quality"]
    assert trained["set"] == category.name and trained["steps"] >= 1 and trained["n_images"] == 10
    assert trained["image_auroc"] >= 0.9  # the synthetic holes are plain to see, even after a few seconds
