"""The command line is a contract other tools call: train, evaluate, predict, info; progress on stderr;
exit status 2 on bad input, 1 on a failure while running."""

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import rbd
import rbd.cli
from rbd.cli import main


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_evaluate_predict_info(category, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    code, out, err = run(capsys, "train", category, "--out", ckpt, "--image-size", 64, "--epochs", 3, "--seed", 1, "--device", "cpu")
    assert code == 0, err
    assert "train/good" in err and "saved" in out and (ckpt / "model.safetensors").is_file()
    assert "normal images calibrate it" in out and "⚠️" in out  # a tiny set's threshold is flagged as it is saved
    assert "training: 100%" in err and "6/6 [" in err and "step/s" in err and "loss=" in err  # 3 epochs of 2 batches of 9 images

    code, out, err = run(capsys, "evaluate", category, "--checkpoint", ckpt, "--json", tmp_path / "new" / "m.json")
    assert code == 0, err
    assert "evaluating: 100%" in err and "10/10 [" in err
    metrics = json.loads((tmp_path / "new" / "m.json").read_text())
    assert set(metrics) == {"image_auroc", "pixel_auroc", "aupro", "image_f1max", "threshold", "false_alarm_rate", "recall", "n_images", "ms_per_image"}
    assert metrics["n_images"] == 10 and 0 <= metrics["pixel_auroc"] <= 1
    assert f"{metrics['image_auroc']:.4f}" in out
    assert re.search(r"^ms_per_image +\d+\.\d$", out, re.M)  # a time to 0.1 ms, as the model card and the app show it

    code, out, err = run(capsys, "evaluate", category, "--checkpoint", ckpt, "--misranked", tmp_path / "misranked", "--quiet")
    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "misranked").iterdir())
    assert len(written) == 10 and sum(name.startswith("good_") for name in written) == 5, written
    assert {name.split("_")[1] for name in written} == {"1", "2", "3", "4", "5"} and "misranked" in out
    evaluation = rbd.evaluate(rbd.load(ckpt), category)
    wrong = sum(evaluation.ranked_wrong_against(row) > 0 for row in sum(evaluation.misranked(), []))
    assert f": {wrong} of them ranked wrong against an image of the other kind" in out  # not all of them, as the title read
    picture = np.asarray(Image.open(tmp_path / "misranked" / next(n for n in written if n.startswith("defective_1_"))))
    assert picture.ndim == 3 and picture.shape[2] == 3
    code, _, err = run(capsys, "evaluate", category, "--checkpoint", ckpt, "--misranked", tmp_path / "new" / "m.json")
    assert code == 2 and "is a file, not a folder" in err
    same = tmp_path / "out"  # one path for both: the metrics were printed and written, then exit 1 on the pictures
    code, out, err = run(capsys, "evaluate", category, "--checkpoint", ckpt, "--json", same, "--misranked", same, "--quiet")
    assert (code, out) == (2, "") and "is the --json file" in err and not same.exists()

    images = sorted((category / "test").rglob("*.png"))
    code, out, err = run(capsys, "predict", ckpt, images[0], category / "test" / "good", "--out", tmp_path / "pred", "--quiet")
    assert code == 0 and err == "", err  # --quiet: no progress bar
    with open(tmp_path / "pred" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "score", "normalized_score", "threshold", "verdict", "familiarity", "out_of_domain", "overlay", "mask"]
    assert len(rows) == 1 + 5 and {r["verdict"] for r in rows} <= {"good", "defective"}
    assert all(0 <= float(r["familiarity"]) <= 1 and r["out_of_domain"] in ("yes", "no") for r in rows)
    assert all(float(r["threshold"]) == float(rows[0]["threshold"]) for r in rows)
    names = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert len(names) == 1 + 2 * 6  # results.csv + overlay and mask per image (one stem twice -> made unique)
    mask = np.asarray(Image.open(tmp_path / "pred" / f"{images[0].stem}_mask.png"))
    assert mask.shape == np.asarray(Image.open(images[0])).shape[:2] and set(np.unique(mask)) <= {0, 255}

    code, out, err = run(capsys, "info", ckpt)
    info = json.loads(out)
    assert code == 0 and info["model"]["image_size"] == 64 and "threshold" in info["calibration"]
    assert "normal_scores" not in info["calibration"] and "loss_curve" not in info["training"]


def _copy(source, target):
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
    return target


def _results(folder):
    with open(folder / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_predict_gives_every_image_its_own_output_names(category, checkpoint, tmp_path, capsys):
    """d1/a_1.png takes `a_1`, so the second a.png must not take it too; names that differ only in case clash on macOS/Windows."""
    good = sorted((category / "test" / "good").glob("*.png"))
    inputs = [_copy(good[0], tmp_path / "d1" / "a.png"), _copy(good[1], tmp_path / "d1" / "a_1.png"),
              _copy(good[2], tmp_path / "d2" / "a.png"), _copy(good[3], tmp_path / "d3" / "A.png")]
    out = tmp_path / "pred"
    code, _, err = run(capsys, "predict", checkpoint, *inputs, "--out", out)
    assert code == 0, err
    rows = _results(out)
    assert [row["file"] for row in rows] == [str(path) for path in inputs]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["results.csv"] + [f"{name}_{kind}.png" for name in ["a", "a_1", "a_2", "A_3"] for kind in ("overlay", "mask")])
    # each row names its own pictures: d2/a.png's are a_2's, not a's or a_1's
    assert [(row["overlay"], row["mask"]) for row in rows] == [(f"{n}_overlay.png", f"{n}_mask.png") for n in ["a", "a_1", "a_2", "A_3"]]



def test_a_numbered_output_name_never_takes_another_inputs_own(category, checkpoint, tmp_path, capsys):
    """In one folder a.png, a.jpg and a_1.png: a.jpg is numbered past a_1, which keeps its own name."""
    good = sorted((category / "test" / "good").glob("*.png"))
    folder = tmp_path / "f"
    _copy(good[0], folder / "a.png")
    Image.open(good[1]).convert("RGB").save(folder / "a.jpg")
    _copy(good[2], folder / "a_1.png")
    code, _, err = run(capsys, "predict", checkpoint, folder, "--out", tmp_path / "pred", "--quiet")
    assert code == 0, err
    assert {Path(row["file"]).name: row["overlay"] for row in _results(tmp_path / "pred")} == {
        "a.jpg": "a_overlay.png", "a.png": "a_2_overlay.png", "a_1.png": "a_1_overlay.png"}

def test_predict_streams_a_batch_at_a_time(category, checkpoint, tmp_path, capsys, monkeypatch):
    """Each batch is decoded, scored and written before the next one is decoded, all through atomic writes."""
    from rbd import images
    from rbd.detector import Detector

    out = tmp_path / "pred"
    events = []
    read, predict, atomic_write = images.read_image_for_scoring, Detector.predict_batch, rbd.cli.atomic_write

    def reading(path, *a, **k):
        events.append(("read", len(list(out.glob("*.png"))) if out.exists() else 0))
        return read(path, *a, **k)

    def predicting(self, images, *a, **k):
        events.append(("predict", len(images)))
        return predict(self, images, *a, **k)

    def writing(path):
        events.append(("write", path.name))
        return atomic_write(path)

    monkeypatch.setattr(images, "read_image_for_scoring", reading)
    monkeypatch.setattr(Detector, "predict_batch", predicting)
    monkeypatch.setattr(rbd.cli, "atomic_write", writing)
    code, _, err = run(capsys, "predict", checkpoint, category / "test" / "hole", "--out", out, "--batch-size", 2)
    assert code == 0, err
    stems = [path.stem for path in sorted((category / "test" / "hole").glob("*.png"))]
    expected = []
    for start in range(0, len(stems), 2):
        batch = stems[start : start + 2]
        expected += [("read", 2 * start)] * len(batch) + [("predict", len(batch))]
        expected += [event for stem in batch for event in (("write", f"{stem}_overlay.png"), ("write", f"{stem}_mask.png"))]
    assert events == expected + [("write", "results.csv")]
    assert len(_results(out)) == len(stems)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_predict_scores_huge_images_on_a_downscaled_copy_with_a_warning(checkpoint, tmp_path, capsys, monkeypatch):
    """One warning: an image past Pillow's pixel guard (and under twice it, which Pillow still decodes) added Pillow's
    "could be decompression bomb DOS attack" three times (once for each time the file was opened)."""
    from rbd.images import MAX_SIDE

    wide = np.tile(np.linspace(0, 255, MAX_SIDE + 100, dtype=np.uint8), (40, 1))
    Image.fromarray(wide).save(tmp_path / "wide.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", wide.size - 1)  # as a 100-megapixel photo is
    out = tmp_path / "pred"
    code, _, err = run(capsys, "predict", checkpoint, tmp_path / "wide.png", "--out", out)
    assert code == 0, err
    assert "bomb" not in err, err
    warning = [line for line in err.splitlines() if line.startswith("warning:") and "downscaled" in line]  # (a gradient is no striped part either)
    assert len(warning) == 1 and f"wide.png is {MAX_SIDE + 100}x40: downscaled to" in warning[0], err
    assert max(Image.open(out / "wide_overlay.png").size) == MAX_SIDE  # a picture: the copy scored
    mask = np.asarray(Image.open(out / "wide_mask.png"))
    assert mask.shape == wide.shape and set(np.unique(mask)) <= {0, 255}  # a label: on the file itself
    assert len(_results(out)) == 1


def test_predict_skips_unreadable_files_with_one_warning(category, checkpoint, tmp_path, capsys):
    good = _copy(sorted((category / "test" / "good").glob("*.png"))[0], tmp_path / "in" / "good.png")
    (tmp_path / "in" / "broken.png").write_bytes(b"garbage")
    out = tmp_path / "pred"
    code, out_text, err = run(capsys, "predict", checkpoint, tmp_path / "in", "--out", out)
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "skipped 1 unreadable file(s)" in warning[0] and "broken.png" in warning[0], err
    assert [row["file"] for row in _results(out)] == [str(good)]
    assert sorted(p.name for p in out.iterdir()) == ["good_mask.png", "good_overlay.png", "results.csv"]
    assert "wrote 1 overlay(s)" in out_text



def test_predict_writes_a_folders_outputs_in_its_tree(category, checkpoint, tmp_path, capsys):
    """bottle/test holds good/000.png and broken/000.png: their outputs must not become 000 and 000_1."""
    test = category / "test"
    single = _copy(sorted((test / "good").glob("*.png"))[1], tmp_path / "single" / "part.v2.png")
    out = tmp_path / "pred"
    code, _, err = run(capsys, "predict", checkpoint, test, single, test / "good", "--out", out, "--quiet")
    assert code == 0, err
    inputs = sorted(test.rglob("*.png"))
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_overlay.png"))
    from_folder = [f"{p.relative_to(test).with_suffix('').as_posix()}_overlay.png" for p in inputs]
    again = [f"{p.stem}_overlay.png" for p in sorted((test / "good").glob("*.png"))]  # good/ named itself
    assert written == sorted(from_folder + ["part.v2_overlay.png"] + again), written
    assert len({name.rsplit("/", 1)[-1] for name in from_folder}) < len(from_folder)  # the tree does repeat file names
    assert sorted(row["file"] for row in _results(out)) == sorted(map(str, inputs + [single] + sorted((test / "good").glob("*.png"))))


def test_predict_marks_images_unlike_the_training_images_with_a_warning(category, checkpoint, tmp_path, capsys):
    good = _copy(sorted((category / "test" / "good").glob("*.png"))[0], tmp_path / "in" / "good.png")
    yy, xx = np.mgrid[:64, :80]
    Image.fromarray((((yy // 8 + xx // 8) % 2) * 255).astype(np.uint8)).save(tmp_path / "in" / "other.png")  # not a striped part
    code, _, err = run(capsys, "predict", checkpoint, tmp_path / "in", "--out", tmp_path / "pred")
    assert code == 0, err
    assert {row["file"]: row["out_of_domain"] for row in _results(tmp_path / "pred")} == {str(good): "no", str(tmp_path / "in" / "other.png"): "yes"}
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "1 of 2 image(s) look unlike the model's training images" in warning[0], err
    assert warning[0].endswith("or a defect over much of the part: look at it")  # a large defect is one: its verdict holds

def test_an_output_folder_inside_the_input_folder_is_not_read_as_input(category, checkpoint, tmp_path, capsys):
    """A second run would otherwise score the first one's overlays and masks."""
    parts = tmp_path / "parts"
    shutil.copytree(category / "test" / "good", parts)
    for _ in range(2):
        code, _, err = run(capsys, "predict", checkpoint, parts, "--out", parts / "results", "--quiet")
        assert code == 0, err
    assert [row["file"] for row in _results(parts / "results")] == [str(p) for p in sorted(parts.glob("*.png"))]



def test_the_users_images_in_an_output_folder_inside_the_input_folder_are_inputs(category, checkpoint, tmp_path, capsys):
    """`rbd predict ckpt data --out data/good`: data/good's own images were never scored, and the notice said they came
    from an earlier run."""
    data = tmp_path / "data"
    shutil.copytree(category / "test" / "good", data / "good")
    shutil.copytree(category / "test" / "hole", data / "hole")
    inputs = sorted(str(p) for p in data.rglob("*.png"))
    for run_number in range(2):
        code, _, err = run(capsys, "predict", checkpoint, data, "--out", data / "good", "--quiet")
        assert code == 0, err
        assert sorted(row["file"] for row in _results(data / "good")) == inputs  # not the first run's pictures either
        assert ("there from an earlier run" in err) == (run_number == 1), err


def test_pictures_listed_by_an_earlier_run_are_no_inputs_even_once_changed(category, checkpoint, tmp_path, capsys):
    """A folder copied (`cp -r`: new times, and marks that name the original folder) had its earlier pictures scored as
    images; changed since its results.csv, a listed picture is the user's to keep, never an input."""
    data = tmp_path / "data"
    shutil.copytree(category / "test" / "good", data)
    assert run(capsys, "predict", checkpoint, data, "--out", data / "out", "--quiet")[0] == 0
    copy = shutil.copytree(data, tmp_path / "copy")
    for picture in (copy / "out").glob("*.png"):
        os.utime(picture)  # newer than its results.csv, as a copy's files can be
    with pytest.warns(UserWarning, match="there from an earlier run"):
        named = rbd.cli._input_images([str(copy)], leave_out=copy / "out")
    assert sorted(name for _, name in named) == sorted(p.stem for p in data.glob("*.png"))


def test_a_predicted_mask_copied_within_the_output_folder_as_a_label_is_the_users(category, checkpoint, tmp_path, capsys):
    """rbd's mark named the folder a picture was written into, not its name there: a mask copied to `labels/000_mask.png`
    beside a copy of its image was left out of the inputs and written over by the next run's prediction."""
    data = shutil.copytree(category / "test" / "good", tmp_path / "data")
    assert run(capsys, "predict", checkpoint, data, "--out", data, "--quiet")[0] == 0
    (data / "labels").mkdir()
    shutil.copy(data / "000.png", data / "labels" / "000.png")
    shutil.copy(data / "000_mask.png", data / "labels" / "000_mask.png")
    code, _, err = run(capsys, "predict", checkpoint, data, "--out", data, "--quiet")
    assert code == 2 and "(labels/000_mask.png)" in err, err  # refused: the label is the user's, and was not written over


def test_earlier_pictures_are_known_through_a_link_or_a_dotted_out(category, checkpoint, tmp_path, capsys, monkeypatch):
    """Their mark names the file by its path in --out: --out named through a link, or as `imgs/../imgs/out`, read it as
    another path, and an earlier run's pictures, no longer listed in results.csv, were scored as images."""
    monkeypatch.chdir(tmp_path)
    imgs = shutil.copytree(category / "test" / "good", tmp_path / "imgs")
    first, *others = sorted(p.name for p in imgs.glob("*.png"))
    assert run(capsys, "predict", checkpoint, f"imgs/{first}", "--out", "imgs/out", "--quiet")[0] == 0
    assert run(capsys, "predict", checkpoint, f"imgs/{others[0]}", "--out", "imgs/out", "--quiet")[0] == 0  # lists it only
    (tmp_path / "link").symlink_to(imgs / "out")
    for out in ("link", "imgs/../imgs/out"):
        code, _, err = run(capsys, "predict", checkpoint, "imgs", "--out", out, "--quiet")
        assert code == 0, err
        assert sorted(Path(row["file"]).name for row in _results(imgs / "out")) == [first, *others]


def test_a_mask_corrected_after_the_run_is_the_users_and_never_written_over(category, checkpoint, tmp_path, capsys):
    """Listed in the results.csv of the run that wrote it, a mask the user then corrected in an image editor (which drops
    rbd's mark) was taken for rbd's picture and replaced by a fresh prediction."""
    parts = shutil.copytree(category / "test" / "good", tmp_path / "parts")
    out = tmp_path / "out"
    assert run(capsys, "predict", checkpoint, parts, "--out", out, "--quiet")[0] == 0
    mask = out / "000_mask.png"
    corrected = np.zeros(np.asarray(Image.open(mask)).shape, np.uint8)
    corrected[:5, :5] = 255
    Image.fromarray(corrected).save(mask)  # saved by another program: no mark
    before = mask.read_bytes()
    code, _, err = run(capsys, "predict", checkpoint, parts, "--out", out, "--quiet")
    assert code == 2 and "holds 1 file(s) rbd did not write where this run writes its pictures and tables (000_mask.png)" in err, err
    assert mask.read_bytes() == before


@pytest.mark.parametrize("out", ["parts", "."])
def test_an_output_folder_that_is_or_holds_the_input_folder_leaves_out_only_earlier_pictures(category, checkpoint, tmp_path, capsys,
                                                                                              monkeypatch, out):
    """`rbd predict ckpt parts --out .`: every input stays one, and a rerun does not score the first run's pictures,
    which are told by the image they were made for: a photo named `face_mask.png` with no `face.*` is an input."""
    monkeypatch.chdir(tmp_path)
    parts = shutil.copytree(category / "test" / "good", tmp_path / "parts")
    for name in ("face_mask.png", "weld_overlay.png"):
        shutil.copy(parts / "000.png", parts / name)
    Image.open(parts / "000.png").save(parts / "000.jpg")  # a second 000: its pictures are numbered, 000_1_mask.png
    inputs = sorted(str(Path("parts") / p.name) for p in parts.glob("*.[pj][np]g"))
    for run_number in range(2):
        code, _, err = run(capsys, "predict", checkpoint, "parts", "--out", out, "--quiet")
        assert code == 0, err
        assert [row["file"] for row in _results(tmp_path / out)] == inputs
        assert ("there from an earlier run" in err) == (run_number == 1 and out == "parts"), err


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_predict_and_evaluate_score_on_a_gpu_where_there_is_one(category, checkpoint, tmp_path, capsys, monkeypatch, command):
    """Both loaded the model on the CPU always (`load`'s default), where `train` picks a GPU."""
    loaded = []

    def load(where, revision, device):
        loaded.append(device)
        raise rbd.CheckpointError("stop here")

    monkeypatch.setattr(rbd.cli, "load", load)
    args = {"predict": [checkpoint, category / "test" / "good", "--out", tmp_path / "p"],
            "evaluate": [category, "--checkpoint", checkpoint]}[command]
    assert run(capsys, command, *args)[0] == 2 and run(capsys, command, *args, "--device", "cpu")[0] == 2
    assert loaded == ["auto", "cpu"]  # `load` resolves it: a torch model takes a GPU where there is one (test_detector)
    if command == "predict":  # Ray's actors choose their own: its check copy loads on the CPU, and --device is refused
        assert run(capsys, command, *args, "--engine", "ray")[0] == 2 and loaded[-1] == "cpu"
        code, _, err = run(capsys, command, *args, "--engine", "ray", "--device", "cpu")
        assert code == 2 and "--device goes with the local engine" in err


def test_files_named_by_a_shells_glob_leave_out_the_pictures_an_earlier_run_wrote_there(category, checkpoint, tmp_path, capsys,
                                                                                          monkeypatch):
    """`rbd predict ckpt *.png --out .` three times wrote 2, then 6, then 14 result pairs: it scored its own pictures."""
    monkeypatch.chdir(shutil.copytree(category / "test" / "good", tmp_path / "parts"))
    inputs = sorted(p.name for p in Path().glob("*.png"))
    for run_number in range(3):
        code, _, err = run(capsys, "predict", checkpoint, *sorted(p.name for p in Path().glob("*.png")), "--out", ".", "--quiet")
        assert code == 0, err
        assert [row["file"] for row in _results(Path())] == inputs
        assert err.count("there from an earlier run") == (run_number > 0), err  # one line for all of them


def test_training_and_evaluation_leave_out_the_pictures_rbd_wrote(category, checkpoint, tmp_path, capsys):
    """Predicted into the data folder, overlays and masks were trained on as normal images and scored as test images
    (image AUROC 1.0 -> 0.73)."""
    data = shutil.copytree(category, tmp_path / "stripes")
    for folder in ("train/good", "test/good", "test/hole"):
        code, _, err = run(capsys, "predict", checkpoint, data / folder, "--out", data / folder, "--quiet")
        assert code == 0, err
    from rbd.datasets import mvtec_test_set, training_images

    with pytest.warns(UserWarning, match=r"left out \d+ picture\(s\) rbd wrote .*not normal images"):
        trained = training_images(data)
    assert [p.relative_to(data) for p in trained] == [p.relative_to(category) for p in training_images(category)]
    with pytest.warns(UserWarning, match=r"left out \d+ picture\(s\) rbd wrote .*not test images"):
        tested = mvtec_test_set(data)
    assert [item.path.relative_to(data) for item in tested] == [item.path.relative_to(category) for item in mvtec_test_set(category)]


def test_a_file_where_predict_makes_a_folder_is_refused_before_any_work(category, checkpoint, tmp_path, capsys, monkeypatch):
    """`--out` holding a file `b` where a folder's pictures go (`b/2_mask.png`): exit 1 halfway, after the old results.csv
    was deleted and the first folder's pictures written."""
    data = tmp_path / "data"
    for folder in ("a", "b"):
        shutil.copytree(category / "test" / "good", data / folder)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b").write_text("notes")
    monkeypatch.setattr(rbd.cli, "load", lambda *a: pytest.fail("work started"))
    code, _, err = run(capsys, "predict", checkpoint, data, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and "holds 1 file(s) rbd did not write where this run writes its pictures and tables (b)" in err, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b"]


def test_a_users_own_file_where_predict_writes_a_picture_is_refused_before_any_work(category, checkpoint, tmp_path, capsys,
                                                                                 monkeypatch):
    """A ground-truth mask named as MVTec names them (`000_mask.png` beside `000.png`) was taken for an earlier run's
    picture, left out of the inputs and written over by the predicted mask."""
    parts = shutil.copytree(category / "test" / "good", tmp_path / "parts")
    truth = parts / "000_mask.png"
    Image.new("L", (80, 64), 255).save(truth)
    before = truth.read_bytes()
    monkeypatch.setattr(rbd.cli, "load", lambda *a: pytest.fail("work started"))
    code, _, err = run(capsys, "predict", checkpoint, parts, "--out", parts, "--quiet")
    assert code == 2 and "holds 1 file(s) rbd did not write where this run writes its pictures and tables (000_mask.png)" in err, err
    assert truth.read_bytes() == before and not (parts / "results.csv").exists()


@pytest.mark.parametrize("table, content", [("results.csv", b"lot,inspector,result\n17,anna,pass\n"), ("results.parquet", b"PAR1 not rbd's")])
def test_a_users_own_results_table_in_the_output_folder_is_refused_before_any_work(category, checkpoint, tmp_path, capsys,
                                                                                  monkeypatch, table, content):
    """A report of the user's named results.csv was deleted at the start of every run, even one that then failed."""
    out = tmp_path / "reports"
    out.mkdir()
    (out / table).write_bytes(content)
    monkeypatch.setattr(rbd.cli, "load", lambda *a: pytest.fail("work started"))
    code, _, err = run(capsys, "predict", checkpoint, category / "test" / "good", "--out", out, "--quiet")
    assert code == 2 and f"rbd did not write where this run writes its pictures and tables ({table})" in err, err
    assert (out / table).read_bytes() == content and [p.name for p in out.iterdir()] == [table]


def test_an_older_rbds_results_table_is_rbds(category, checkpoint, tmp_path, capsys):
    """One written before the overlay and mask columns (and familiarity) was refused as the user's."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("file,score,normalized_score,threshold,verdict\na.png,1.0,0.4,2.0,good\n")
    assert run(capsys, "predict", checkpoint, category / "test" / "good", "--out", out, "--quiet")[0] == 0
    assert (out / "results.csv").read_text().splitlines()[0].split(",") == list(rbd.cli.CSV_COLUMNS)


def test_an_earlier_runs_table_stays_when_a_run_scores_nothing_and_goes_once_it_scores(category, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "predict", checkpoint, category / "test" / "good", "--out", out, "--quiet")[0] == 0
    earlier = (out / "results.csv").read_bytes()
    (tmp_path / "bad.png").write_bytes(b"garbage")
    assert run(capsys, "predict", checkpoint, tmp_path / "bad.png", "--out", out, "--quiet")[0] == 2  # no usable image
    assert (out / "results.csv").read_bytes() == earlier
    assert run(capsys, "predict", checkpoint, category / "test" / "hole", "--out", out, "--quiet")[0] == 0
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].split(",") == list(rbd.cli.CSV_COLUMNS) and all("hole" in row for row in rows[1:])


@pytest.mark.parametrize("args", [["predict", "{k}", "{c}/test/good", "--out", ""], ["evaluate", "{c}", "--checkpoint", "{k}", "--json", ""],
                                  ["evaluate", "{c}", "--checkpoint", "{k}", "--misranked", ""], ["train", "{c}", "--out", ""],
                                  ["export", "{k}", "--out", ""], ["train", "", "--out", "{t}/m"], ["evaluate", "", "--checkpoint", "{k}"],
                                  ["evaluate", "{c}", "--checkpoint", ""], ["predict", "{k}", "", "--out", "{t}/o"],
                                  ["predict", "{k}", "{c}/test/good", "", "--out", "{t}/o"], ["predict", "", "{c}/test/good", "--out", "{t}/o"],
                                  ["export", "", "--out", "{t}/m.onnx"], ["info", ""]])
def test_an_empty_path_is_refused_not_taken_as_the_current_folder(category, checkpoint, tmp_path, capsys, monkeypatch, args):
    """An unset shell variable (`--out "$OUT"`, `rbd train "$IMAGES"`): predict wrote into the current folder and replaced
    its results.csv, evaluate wrote no JSON or pictures without a word, train trained on the current folder, and predict
    and evaluate scored it whole, recursively."""
    work = tmp_path / "work"
    shutil.copytree(category / "test" / "good", work)  # a folder of images that would be worked on
    monkeypatch.chdir(work)
    monkeypatch.setattr(rbd.cli, "load", lambda *a: pytest.fail("work started"))
    monkeypatch.setattr(rbd.cli, "train", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(SystemExit) as stop:  # a usage mistake, from the parser
        main([a.format(k=checkpoint, c=category, t=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "is empty (an unset shell variable?): name a path (. for the current folder)" in err, err
    assert sorted(tmp_path.iterdir()) == [work] and sorted(p.name for p in work.iterdir()) == sorted(p.name for p in (category / "test" / "good").iterdir())


@pytest.mark.parametrize("layout", ["train", "test/good", "test/ground_truth"])  # the last two: a notice, then the error
def test_an_error_before_any_progress_is_said_without_an_empty_progress_bar(checkpoint, tmp_path, capsys, layout):
    (tmp_path / "part" / layout).mkdir(parents=True)
    code, _, err = run(capsys, "evaluate", tmp_path / "part", "--checkpoint", checkpoint)
    assert code == 2 and "evaluating" not in err and re.search(r"^error: .*part", err, re.M), err


def test_a_leading_tilde_is_the_home_folder_also_where_the_shell_leaves_it(category, checkpoint, tmp_path, capsys, monkeypatch):
    """`--out=~/results`: the shell expands no ~ after `=`, and the results went into a folder named ~ in the current one."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    code, out, _ = run(capsys, "predict", checkpoint, category / "test" / "good", "--out=~/results", "--quiet")
    assert code == 0 and (home / "results" / "results.csv").is_file() and not any(work.iterdir())
    assert str(home / "results") in out


def test_a_file_name_not_in_utf8_is_scored_and_named_by_its_bytes(category, checkpoint, tmp_path, capsys, monkeypatch):
    """A Latin-1 name (an old Windows share's `café.jpg`) stopped predict and evaluate --misranked with a traceback."""
    parts = tmp_path / "parts"
    parts.mkdir()
    source = next((category / "test" / "hole").iterdir())
    name = os.fsdecode(b"caf\xe9" + os.fsencode(source.suffix))
    shutil.copy(source, parts / name)
    code, _, err = run(capsys, "predict", checkpoint, parts, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    overlay, mask = (tmp_path / "out" / picture for picture in rbd.cli.picture_names(os.fsdecode(b"caf\xe9")))
    assert overlay.is_file() and mask.is_file()
    rows = (tmp_path / "out" / "results.csv").read_bytes().splitlines()
    assert len(rows) == 2 and rows[1].startswith(os.fsencode(str(parts / name)) + b",")  # the file's own bytes
    assert run(capsys, "predict", checkpoint, parts, "--out", tmp_path / "out", "--quiet")[0] == 0  # its table is rbd's
    monkeypatch.setattr(rbd.cli, "load", lambda *a: pytest.fail("work started"))  # Ray's tables hold text: refused up front
    code, _, err = run(capsys, "predict", checkpoint, parts, "--out", tmp_path / "ray", "--engine", "ray", "--quiet")
    assert code == 2 and "--engine ray takes file names in UTF-8 only" in err and not (tmp_path / "ray").exists(), err
    monkeypatch.undo()
    test = shutil.copytree(category, tmp_path / "category")
    shutil.move(next((test / "test" / "good").iterdir()), test / "test" / "good" / name)
    code, _, err = run(capsys, "evaluate", test, "--checkpoint", checkpoint, "--misranked", tmp_path / "misranked", "--quiet")
    assert code == 0 and len(list((tmp_path / "misranked").iterdir())) == 10, err


def test_an_output_folder_not_in_utf8_is_said_escaped_on_a_strict_stream(category, checkpoint, tmp_path):
    """Under en_US.UTF-8 (strict, where C.UTF-8 escapes) the last line, "wrote ... results.csv", ended in a traceback."""
    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/out_\xe9")
    result = subprocess.run([sys.executable, "-m", "rbd", "predict", str(checkpoint), str(next((category / "test" / "hole").iterdir())),
                             "--out", out, "--quiet"], capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0 and b"out_\\udce9" in result.stdout and b"Traceback" not in result.stderr, result.stderr
    assert os.path.isfile(os.path.join(out, "results.csv"))


def test_a_picture_copied_from_another_run_is_the_users_and_an_unmarked_earlier_runs_is_rbds(category, checkpoint, tmp_path, capsys):
    """rbd's mark names the folder it wrote a picture into: a predicted mask kept as a label beside its image is the
    user's file. Pictures of an rbd before the mark are known by the results.csv their run left."""
    good = category / "test" / "good"
    assert run(capsys, "predict", checkpoint, good, "--out", tmp_path / "res", "--quiet")[0] == 0
    labels = shutil.copytree(good, tmp_path / "labels")
    shutil.copy(tmp_path / "res" / "000_mask.png", labels / "000_mask.png")
    code, _, err = run(capsys, "predict", checkpoint, labels, "--out", labels, "--quiet")
    assert code == 2 and "(000_mask.png)" in err, err
    table = (tmp_path / "res" / "results.csv").stat().st_mtime_ns
    for picture in (tmp_path / "res").glob("*.png"):  # as an rbd without the mark wrote them: before its results.csv
        Image.open(picture).save(picture)
        os.utime(picture, ns=(table - 10**9, table - 10**9))
    assert run(capsys, "predict", checkpoint, good, "--out", tmp_path / "res", "--quiet")[0] == 0
    assert len(_results(tmp_path / "res")) == len(list(good.glob("*.png")))


def test_pictures_of_every_input_written_into_one_of_the_input_folders_are_never_inputs_of_a_rerun(category, checkpoint, tmp_path,
                                                                                                     capsys, monkeypatch):
    """`rbd predict ckpt . ../extra.png --out .` three times: extra's pictures in `.` were scored as images by the second
    run, and their pictures by the third."""
    lot = shutil.copytree(category / "test" / "good", tmp_path / "lot")
    shutil.copy(lot / "000.png", tmp_path / "extra.png")
    monkeypatch.chdir(lot)
    for _ in range(3):
        code, _, err = run(capsys, "predict", checkpoint, ".", "../extra.png", "--out", ".", "--quiet")
        assert code == 0, err
        assert [Path(row["file"]).name for row in _results(lot)] == sorted(p.name for p in category.glob("test/good/*.png")) + ["extra.png"]
    assert sorted(p.name for p in lot.glob("extra*")) == ["extra_mask.png", "extra_overlay.png"]


def test_an_input_named_at_the_file_systems_limit_gets_pictures_named_within_it(category, checkpoint, tmp_path, capsys):
    """`<248 characters>.png` made a 260-byte `<name>_overlay.png`: the whole job failed with exit 1 and no table."""
    folder = tmp_path / "in"
    folder.mkdir()
    long_names = ["a" * 248 + ".png", "a" * 247 + "b.png"]
    for name in long_names + ["short.png"]:
        shutil.copy(category / "test" / "good" / "000.png", folder / name)
    code, _, err = run(capsys, "predict", checkpoint, folder, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    rows = _results(tmp_path / "out")
    assert len(rows) == 3 and len({row["overlay"] for row in rows}) == 3  # the two long names stay apart
    for row in rows:
        assert (tmp_path / "out" / row["overlay"]).is_file() and len(row["mask"].encode()) <= 255


def test_an_output_folder_that_is_a_broken_link_is_bad_input_before_any_work(category, checkpoint, tmp_path, capsys, monkeypatch):
    (tmp_path / "out").symlink_to(tmp_path / "nowhere")
    monkeypatch.setattr(rbd.cli, "load", lambda *a: pytest.fail("work started"))
    code, _, err = run(capsys, "predict", checkpoint, category / "test" / "good", "--out", tmp_path / "out")
    assert code == 2 and "is a link to" in err and "which does not exist" in err


def test_misranked_pictures_replace_an_earlier_evaluations_and_never_a_users_file(category, checkpoint, tmp_path, capsys):
    pictures = tmp_path / "m"
    pictures.mkdir()
    (pictures / "notes.txt").write_text("mine")
    assert run(capsys, "evaluate", category, "--checkpoint", checkpoint, "--misranked", pictures, "--quiet")[0] == 0
    first = sorted(p.name for p in pictures.glob("*.png"))
    mine = pictures / first[0]
    mine.unlink()
    Image.new("RGB", (4, 4)).save(mine)  # a file of the user's under a picture's name
    other = shutil.copytree(category, tmp_path / "other")
    for path in (other / "test").rglob("*.png"):  # and one name past the file system's limit once prefixed and suffixed
        path.rename(path.with_name(("x" * 240 if path.name == "000.png" else "x") + path.name))
    for path in (other / "ground_truth").rglob("*.png"):
        path.rename(path.with_name(("x" * 240 if path.name == "000_mask.png" else "x") + path.name))
    assert run(capsys, "evaluate", other, "--checkpoint", checkpoint, "--misranked", pictures, "--quiet")[0] == 0
    left = sorted(p.name for p in pictures.iterdir())
    assert mine.name in left and "notes.txt" in left and np.asarray(Image.open(mine)).shape == (4, 4, 3)
    assert len([name for name in left if name.endswith(".png")]) == len(first) + 1  # this evaluation's and the user's
    assert not any(name in left for name in first if name != mine.name)


def test_an_interrupted_predict_leaves_no_table_of_an_earlier_run_beside_its_pictures(category, checkpoint, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert run(capsys, "predict", checkpoint, category / "test" / "good", "--out", out, "--quiet")[0] == 0
    written = []

    def write_then_stop(data, path):
        written.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(rbd.cli, "_write", write_then_stop)
    code, _, err = run(capsys, "predict", checkpoint, category / "test" / "hole", "--out", out, "--quiet")
    assert code == 130 and err == "error: interrupted\n" and written
    assert not (out / "results.csv").exists()  # the first run's rows would name pictures this run replaced


def test_an_existing_output_folder_that_cannot_be_written_is_bad_input_before_any_work(checkpoint, category, tmp_path, capsys,
                                                                                     monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(rbd.cli.os, "access", lambda path, mode: Path(path) != out)  # root may write anywhere: say it may not
    monkeypatch.setattr(rbd.cli, "load", lambda *a: pytest.fail("work started"))
    code, _, err = run(capsys, "predict", checkpoint, category / "test" / "good", "--out", out)
    assert code == 2 and f"{out} is not a folder this user can write in" in err

def test_misranked_pictures_are_drawn_where_a_truth_mask_is_unusable(category, checkpoint, tmp_path, capsys):
    """`evaluate` scores without a mask of the wrong size (losing the pixel metrics); its picture goes without the outline."""
    data = tmp_path / "cat"
    shutil.copytree(category, data)
    mask = sorted((data / "ground_truth").rglob("*.png"))[0]
    Image.new("L", (3, 3)).save(mask)
    code, out, err = run(capsys, "evaluate", data, "--checkpoint", checkpoint, "--misranked", tmp_path / "m", "--quiet")
    assert code == 0, err
    assert len(list((tmp_path / "m").iterdir())) == 10 and mask.name.removesuffix("_mask.png") in err


def test_predict_with_no_usable_image_writes_nothing(checkpoint, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"garbage")
    (tmp_path / "in" / "b.jpg").write_bytes(b"\xff\xd8\xff truncated")
    code, _, err = run(capsys, "predict", checkpoint, tmp_path / "in", "--out", tmp_path / "pred", "--quiet")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: no usable image among 2 file(s)"), err
    assert not (tmp_path / "pred").exists()


@pytest.mark.parametrize("make_args, message", [
    (lambda t, c, k: ["train", t / "empty", "--out", t / "o"], "no image files"),
    (lambda t, c, k: ["train", t / "texts", "--out", t / "o"], "no image files"),
    (lambda t, c, k: ["train", t / "broken", "--out", t / "o"], "no usable image"),
    (lambda t, c, k: ["train", c, "--out", t / "texts", "--epochs", "1"], "not an rbd checkpoint"),
    (lambda t, c, k: ["train", c, "--out", t / "texts" / "notes.txt" / "o", "--epochs", "1"], "notes.txt is not a folder"),
    (lambda t, c, k: ["train", c, "--out", t / "o", "--device", "cuda"], "no CUDA GPU"),
    (lambda t, c, k: ["train", c, "--out", t / "o", "--device", "cuda:1"], "no CUDA GPU"),  # one GPU of several is taken
    (lambda t, c, k: ["train", c, "--out", t / "o", "--epochs", "0"], "epochs must be at least 1"),
    (lambda t, c, k: ["train", c, "--out", t / "o", "--image-size", "100"], "multiple of 32"),
    (lambda t, c, k: ["train", c, "--out", t / "o", "--image-size", "1048576"], "at most 1024"),  # a traceback: 13 TB not allocated
    (lambda t, c, k: ["evaluate", c, "--checkpoint", k, "--device", "cuda"], "no CUDA GPU"),
    (lambda t, c, k: ["predict", k, c / "test" / "good", "--out", t / "p", "--device", "cuda"], "no CUDA GPU"),
    (lambda t, c, k: ["evaluate", t / "empty", "--checkpoint", k], "not an MVTec AD category"),
    (lambda t, c, k: ["evaluate", c, "--checkpoint", t / "empty"], "not an rbd checkpoint"),
    (lambda t, c, k: ["evaluate", c, "--checkpoint", k, "--json", t / "texts" / "notes.txt" / "m.json"], "notes.txt"),
    (lambda t, c, k: ["predict", k, t / "missing.png", "--out", t / "p"], "no such file"),
    (lambda t, c, k: ["predict", k, t / "broken", "--out", t / "p"], "no usable image"),
    (lambda t, c, k: ["predict", k, t / "empty", "--out", t / "p"], "no image files"),
    (lambda t, c, k: ["predict", k, c / "test", "--out", t / "texts" / "notes.txt"], "is a file, not a folder"),
    (lambda t, c, k: ["info", t / "texts"], "not an rbd checkpoint"),
    (lambda t, c, k: ["evaluate", c, "--checkpoint", k, "--json", t / "texts"], "is a folder, not a file"),
    (lambda t, c, k: ["evaluate", c, "--checkpoint", k, "--misranked", c / "test" / "good" / "m"], "would be test images"),
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


def test_a_reader_that_stops_early_gets_no_error_text(checkpoint):
    """`rbd info ckpt | head -1`: the closed pipe is not an error to print, here or at the interpreter's exit."""
    process = subprocess.Popen([sys.executable, "-m", "rbd", "info", str(checkpoint)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before rbd writes
    assert process.wait(timeout=120) == 1
    assert process.stderr.read() == b""


@pytest.mark.parametrize("args", [["train"], ["predict", "ckpt"], ["evaluate", "data", "--checkpoint"], ["fly"],
                                  ["train", "data", "--out", "o", "--epochs", "many"],
                                  ["train", "data", "--out", "o", "--backbone", "vgg99"],
                                  ["train", "data", "--out", "o", "--device", "gpu"],
                                  ["predict", "ckpt", "x.png", "--out", "o", "--batch-size", "0"]])
def test_usage_mistakes_are_one_line_and_exit_code_2(capsys, args):
    with pytest.raises(SystemExit) as exit:
        main(args)
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and err.startswith("error: python -m rbd"), err


def test_predict_shows_progress_with_counts_rate_and_time_left(category, checkpoint, tmp_path, capsys):
    code, _, err = run(capsys, "predict", checkpoint, category / "test" / "hole", "--out", tmp_path / "p", "--batch-size", 2)
    assert code == 0, err
    final = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("scoring:")][-1]
    assert final.startswith("scoring: 100%") and "5/5 [" in final and "<00:00" in final and "image/s]" in final, err


def test_a_hub_that_cannot_be_reached_exits_1(hub_cache, category, tmp_path, capsys):
    code, _, err = run(capsys, "predict", "acme/never-downloaded", category / "test" / "good", "--out", tmp_path / "p")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: acme/never-downloaded: the Hub cannot be reached"), err


def test_a_write_that_fails_while_running_exits_1(category, checkpoint, tmp_path, capsys, monkeypatch):
    import errno

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(rbd.cli, "atomic_write", full)
    code, _, err = run(capsys, "predict", checkpoint, category / "test" / "good", "--out", tmp_path / "p", "--quiet")
    assert code == 1 and err.count("\n") == 1 and "No space left on device" in err, err


def test_help_documents_every_option_its_default_and_the_backbones(capsys):
    from rbd.backbones import BACKBONES
    from rbd.cli import parser

    for command, subparser in parser()._subparsers._group_actions[0].choices.items():
        with pytest.raises(SystemExit) as exit:
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert exit.value.code == 0
        for action in subparser._actions:
            assert action.help, (command, action.dest)
            for option in action.option_strings:
                assert option in text, (command, option)
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and not action.required:
                assert f"default: {action.default}" in text, (command, action.dest)
        if command == "train":
            assert all(name in text for name in BACKBONES) and "default: tf_efficientnet_lite0" in text


def test_defaults_are_the_config_classes_own(tmp_path):
    from rbd.cli import parser

    args = parser().parse_args(["train", "data", "--out", "o"])
    model, training = rbd.ModelConfig(), rbd.TrainConfig()
    assert (args.backbone, args.image_size) == (model.backbone, model.image_size)
    assert (args.epochs, args.max_minutes, args.seed, args.device) == (training.epochs, training.max_minutes, training.seed, training.device)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == f"rbd {rbd.__version__}"


def test_info_prints_the_config_as_stored_without_building_the_model(checkpoint, tmp_path, capsys):
    """An older file's versions are what `info` is asked for; and neither the teacher's weights nor the
    checkpoint's own weights are needed to print them."""
    copy = shutil.copytree(checkpoint, tmp_path / "old")
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "rbd_version": "0.0.7"}))
    (copy / "model.safetensors").unlink()
    code, out, err = run(capsys, "info", str(copy))
    shown = json.loads(out)
    assert code == 0 and shown["rbd_version"] == "0.0.7" and shown["threshold"] == config["threshold"]
    assert "normal_scores" not in shown["calibration"] and "loss_curve" not in shown["training"]
    (copy / "config.json").write_text(json.dumps({**config, "training": None}))  # a checkpoint made by hand: it loads
    code, out, err = run(capsys, "info", str(copy))
    assert code == 0 and json.loads(out)["training"] == {}


@pytest.mark.parametrize("args", [["--help"], ["info", "CHECKPOINT"], ["train"]])
def test_commands_that_build_no_model_never_import_timm(checkpoint, args):
    """timm (and the torchvision it imports) is half of the command line's start: only a teacher needs it."""
    args = [str(checkpoint) if arg == "CHECKPOINT" else arg for arg in args]
    probe = "import runpy, sys; sys.argv = ['rbd', *sys.argv[1:]]\ntry: runpy.run_module('rbd', run_name='__main__')\n" \
            "except SystemExit: pass\nprint('timm' in sys.modules, file=sys.stderr)"
    result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    assert result.stderr.strip().endswith("False"), result.stderr


def test_info_refuses_a_checkpoint_that_load_refuses(checkpoint, capsys, tmp_path):
    """A NaN threshold was printed as NaN (no JSON a strict reader takes) with exit 0, where predict exits 2."""
    broken = shutil.copytree(checkpoint, tmp_path / "broken")
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "threshold": float("nan")}))
    code, out, err = run(capsys, "info", broken)
    assert code == 2 and out == "" and "threshold" in err, err


def test_a_missing_onnx_file_is_bad_input_not_a_hub_repo(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "info", "models/bothh.onnx")
    assert code == 2 and "models/bothh.onnx: no such .onnx file" in err


def test_the_ray_engine_without_ray_installed_is_bad_input_before_any_work(category, checkpoint, tmp_path, capsys, monkeypatch):
    """Ray is an extra: its absence is one line naming the install, and the earlier run's table is still there."""
    import importlib.util

    out = tmp_path / "out"
    assert run(capsys, "predict", checkpoint, category / "test" / "good", "--out", out, "--quiet")[0] == 0
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else found(name, *a))
    code, _, err = run(capsys, "predict", checkpoint, category / "test" / "good", "--out", out, "--engine", "ray")
    assert (code, err) == (2, 'error: --engine ray needs ray: pip install \'ray[data]\' (or -r requirements.txt, or ".[ray]" in '
                              'rbd\'s checkout)\n')
    assert (out / "results.csv").is_file()


def test_export_without_onnx_installed_is_one_line_naming_the_install(checkpoint, tmp_path, capsys, monkeypatch):
    """onnx is an extra of `pip install .`: without it, export said so in a traceback."""
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else found(name, *a))
    code, _, err = run(capsys, "export", checkpoint, "--out", tmp_path / "model.onnx")  # not --quiet: nothing said before it
    assert (code, err) == (2, 'error: exporting to ONNX needs onnxscript: pip install onnxscript (or -r requirements.txt, or ".[onnx]" '
                              'in rbd\'s checkout)\n')
    assert not (tmp_path / "model.onnx").exists()


def test_an_output_folder_root_may_not_write_in_is_bad_input_before_any_work(category, checkpoint, tmp_path, capsys, monkeypatch):
    """Root passes every permission check, yet /proc takes no file: it was found after the whole run (exit 1)."""
    monkeypatch.setattr(rbd.cli, "load", lambda *a: pytest.fail("work started"))
    code, _, err = run(capsys, "predict", checkpoint, category / "test" / "good", "--out", "/proc/rbd-results")
    assert code == 2 and "/proc is not a folder this user can write in" in err, err


def test_a_full_disk_is_no_bad_output_path(tmp_path, monkeypatch):
    """No room for the trial file (ENOSPC, a quota) fails the real write later, a failure while running (exit 1), not a
    permission problem to look for."""
    import errno
    import tempfile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    assert rbd.cli._writable(str(tmp_path / "out"), "--out") == tmp_path / "out"
