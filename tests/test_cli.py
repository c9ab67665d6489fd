"""The command line is a contract other tools call: train, evaluate, predict, info, and exit code 2 on bad input."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from rbd.cli import main, unique_stems


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_evaluate_predict_info(category, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    code, out, err = run(capsys, "train", category, "--out", ckpt, "--image-size", 64, "--epochs", 3, "--seed", 1, "--device", "cpu")
    assert code == 0, err
    assert "train/good" in err and "saved" in out and (ckpt / "model.safetensors").is_file()

    code, out, err = run(capsys, "evaluate", category, "--checkpoint", ckpt, "--json", tmp_path / "m.json")
    assert code == 0, err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == {"image_auroc", "pixel_auroc", "aupro", "image_f1max", "n_images", "ms_per_image"}
    assert metrics["n_images"] == 10 and 0 <= metrics["pixel_auroc"] <= 1
    assert f"{metrics['image_auroc']:.4f}" in out

    images = sorted((category / "test").rglob("*.png"))
    code, out, err = run(capsys, "predict", ckpt, images[0], category / "test" / "good", "--out", tmp_path / "pred")
    assert code == 0, err
    with open(tmp_path / "pred" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "score", "normalized_score", "threshold", "verdict"]
    assert len(rows) == 1 + 5 and {r["verdict"] for r in rows} <= {"good", "defective"}
    assert all(float(r["threshold"]) == float(rows[0]["threshold"]) for r in rows)
    names = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert len(names) == 1 + 2 * 6  # results.csv + overlay and mask per image (one stem twice -> made unique)
    mask = np.asarray(Image.open(tmp_path / "pred" / f"{images[0].stem}_mask.png"))
    assert mask.shape == np.asarray(Image.open(images[0])).shape[:2] and set(np.unique(mask)) <= {0, 255}

    code, out, err = run(capsys, "info", ckpt)
    info = json.loads(out)
    assert code == 0 and info["model"]["image_size"] == 64 and "threshold" in info["calibration"]
    assert "normal_scores" not in info["calibration"] and "loss_curve" not in info["training"]


def test_unique_stems():
    from pathlib import Path

    assert unique_stems([Path("a/x.png"), Path("b/x.png"), Path("y.jpg"), Path("c/x.bmp")]) == ["x", "x_1", "y", "x_2"]


@pytest.mark.parametrize("make_args, message", [
    (lambda t, c, k: ["train", t / "empty", "--out", t / "o"], "no image files"),
    (lambda t, c, k: ["train", t / "texts", "--out", t / "o"], "no image files"),
    (lambda t, c, k: ["train", t / "broken", "--out", t / "o"], "no usable image"),
    (lambda t, c, k: ["train", c, "--out", t / "o", "--backbone", "vgg99"], "unknown backbone"),
    (lambda t, c, k: ["evaluate", t / "empty", "--checkpoint", k], "not an MVTec AD category"),
    (lambda t, c, k: ["evaluate", c, "--checkpoint", t / "empty"], "not an rbd checkpoint"),
    (lambda t, c, k: ["predict", k, t / "missing.png", "--out", t / "p"], "no such file"),
    (lambda t, c, k: ["predict", k, t / "broken", "--out", t / "p"], "no usable image"),
    (lambda t, c, k: ["info", t / "texts"], "not an rbd checkpoint"),
])
def test_bad_input_is_one_line_and_exit_code_2(category, checkpoint, tmp_path, capsys, make_args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("hello")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"garbage")
    (tmp_path / "broken" / "b.jpg").write_bytes(b"\xff\xd8\xff truncated")
    code, out, err = run(capsys, *make_args(tmp_path, category, checkpoint))
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_module_entry_point_exits_2_on_bad_input(tmp_path):
    result = subprocess.run([sys.executable, "-m", "rbd", "info", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error:")
