"""Checkpoints: safetensors + JSON, atomic saves, clear errors, and Hub loading from an offline cache."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import httpx2
import numpy as np
import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import rbd
from rbd import checkpoint as checkpoint_module
from rbd.calibration import calibrate
from rbd.checkpoint import writable_target
from rbd.thresholds import describe, threshold_at


@pytest.fixture(scope="module")
def probe(category):
    return sorted((category / "test" / "hole").iterdir())[0]


def test_round_trip_gives_identical_predictions(detector, checkpoint, probe):
    loaded = rbd.load(checkpoint)
    before, after = detector.predict(probe), loaded.predict(probe)
    assert after.score == before.score
    np.testing.assert_array_equal(after.anomaly_map, before.anomaly_map)
    assert loaded.threshold == detector.threshold
    assert loaded.calibration.normal_scores == detector.calibration.normal_scores
    assert loaded.config == detector.config


@pytest.mark.parametrize("layout", ["flat", "in a folder"])
def test_a_zip_of_a_checkpoint_loads_as_its_folder(detector, checkpoint, probe, tmp_path, layout):
    """The app's "Download the active model" (its files at the top) and a zipped `rbd train --out` folder."""
    if layout == "flat":
        archive = shutil.make_archive(str(tmp_path / "model"), "zip", checkpoint)
    else:  # beside another tool's config.json, which has no weights beside it
        shutil.copytree(checkpoint, tmp_path / "zipped" / "bolts")
        (tmp_path / "zipped" / "tensorboard").mkdir()
        (tmp_path / "zipped" / "tensorboard" / "config.json").write_text("{}")
        archive = shutil.make_archive(str(tmp_path / "model"), "zip", tmp_path / "zipped")
    loaded = rbd.load(archive)
    assert loaded.predict(probe).score == detector.predict(probe).score and loaded.threshold == detector.threshold
    assert rbd.checkpoint.stored_config(archive) == json.loads((checkpoint / "config.json").read_text())


def test_a_zip_without_one_checkpoint_or_with_a_broken_one_is_named_as_given(checkpoint, tmp_path):
    import zipfile

    for name, members in (("none.zip", {"notes.txt": "x", "logs/config.json": "{}"}),  # a config without weights is another tool's
                          ("two.zip", {"a/config.json": "{}", "a/model.safetensors": "", "b/config.json": "{}", "b/model.safetensors": ""}),
                          ("broken.zip", {"ck/config.json": "{}", "ck/model.safetensors": "x"})):
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for member, text in members.items():
                archive.writestr(member, text)
    with pytest.raises(rbd.CheckpointError, match=r"none.zip holds no rbd checkpoint \(a config.json beside its model.safetensors\)"):
        rbd.load(tmp_path / "none.zip")
    with pytest.raises(rbd.CheckpointError, match="two.zip holds more than one rbd checkpoint"):
        rbd.load(tmp_path / "two.zip")
    with pytest.raises(rbd.CheckpointError, match=f"^{tmp_path}/broken.zip/ck/config.json: not an rbd checkpoint"):  # no temporary folder
        rbd.checkpoint.stored_config(tmp_path / "broken.zip")
    with pytest.raises(rbd.CheckpointError, match="missing.zip: no such .zip file"):
        rbd.load(tmp_path / "missing.zip")
    (tmp_path / "damaged.zip").write_text("not a zip")  # an UploadError escaped an `except rbd.CheckpointError`
    with pytest.raises(rbd.CheckpointError, match="damaged.zip is not a readable zip file"):
        rbd.load(tmp_path / "damaged.zip")


def test_a_config_an_editor_saved_with_a_byte_order_mark_loads_and_is_replaced(detector, checkpoint, probe, tmp_path):
    """Notepad and PowerShell put one before a threshold edited by hand: the checkpoint could be neither loaded nor saved over."""
    copy = shutil.copytree(checkpoint, tmp_path / "edited")
    (copy / "config.json").write_text("\ufeff" + (checkpoint / "config.json").read_text(), encoding="utf-8")
    assert rbd.load(copy).predict(probe).score == detector.predict(probe).score
    rbd.save(detector, copy)
    assert not (copy / "config.json").read_bytes().startswith(b"\xef\xbb\xbf")


def test_a_model_training_has_not_made_is_refused_before_anything_is_written(tmp_path):
    """Saved, its infinite familiar distance made a checkpoint that `load` refuses."""
    untrained = rbd.Detector(rbd.RBD(rbd.ModelConfig(image_size=64)), calibrate([1.0, 2.0, 3.0]))
    with pytest.raises(rbd.CheckpointError, match=r"the detector \(one rbd.train has not made\?\): memory.familiar_distance holds NaN"):
        rbd.save(untrained, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_folder_holds_safetensors_json_and_a_card_only(checkpoint, detector):
    assert sorted(p.name for p in checkpoint.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    weights = load_file(str(checkpoint / "model.safetensors"))
    assert set(weights) == set(detector.model.trained_state())  # student, memory bank, normal statistics
    assert not any(key.startswith("teacher.") for key in weights)  # the teacher is not stored
    assert "memory.bank" in weights and "normal_mean" in weights
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["format"] == "rbd-checkpoint" and config["rbd_version"] == rbd.__version__
    assert config["model"]["backbone"] == "tf_efficientnet_lite0"
    assert {"threshold", "scale", "normal_scores", "synthetic_catch_rate"} <= set(config["calibration"])
    assert config["training"]["steps"] > 0


def test_model_card_states_threshold_and_metrics(detector):
    card = checkpoint_module.model_card(checkpoint_module.checkpoint_config(detector, metrics={"image_auroc": 0.987}))
    sampled = {**checkpoint_module.checkpoint_config(detector), "training": {**detector.training, "train_images_left_out": 40,
                                                                              "images": detector.training["images"] + 40}}
    assert f"({detector.training['holdout_images']} more held out for the threshold)" in checkpoint_module.model_card(sampled).text
    read = detector.training["train_images"]  # said as training said it (the card said the memory's cut alone)
    assert f"let the teacher read {read} of the {read + 40} training images" in checkpoint_module.model_card(sampled).text
    assert f"{detector.threshold:.5f}" in card.text and "| image AUROC | 0.9870 |" in card.text
    assert "patch memory choose" not in card.text
    config = checkpoint_module.checkpoint_config(detector)
    short = {**config, "training": {**config["training"], "memory_patches_left_out": detector.model.memory.size - 9}}
    assert f"let the patch memory choose 9 of its {detector.model.memory.size} patches" in checkpoint_module.model_card(short).text
    assert 'rbd.load("path/to/this/folder")' in card.text
    held = detector.training["holdout_images"]  # "Training: 7 images" of 8 read as a miscount
    assert held > 0 and f"- Training: {detector.training['train_images']} images ({held} more held out for the threshold), " in card.text


def test_model_card_warns_as_the_app_does_and_names_what_a_fine_tune_started_from(detector):
    few = dataclasses.replace(detector.calibration, normal_scores=detector.calibration.normal_scores[:5])
    config = checkpoint_module.checkpoint_config(rbd.Detector(detector.model, few, {**detector.training, "started_from": "bottle"}))
    card = checkpoint_module.model_card(config).text
    assert "- ⚠️ the threshold rests on only 5 normal images: it is a rough guess" in card
    assert "; fine-tuned from bottle" in card


def test_model_card_metadata_is_what_the_hub_reads(detector):
    """The card is parsed back as the Hub parses it: licence, library, tags, teacher, data and model-index results."""
    from huggingface_hub import ModelCard

    metrics = {"image_auroc": 0.9, "pixel_auroc": 0.8, "aupro": None, "image_f1max": 0.7, "n_images": 10, "ms_per_image": 12.5}
    config = checkpoint_module.checkpoint_config(detector, metrics)
    card = ModelCard(str(checkpoint_module.model_card(config, "acme/parts", "apache-2.0", ["acme/parts-images"])))
    data = card.data
    assert data.license == "apache-2.0" and data.library_name == "rbd" and "anomaly-detection" in data.tags
    assert data.datasets == ["acme/parts-images"] and data.base_model is None  # the packaged teacher has no Hub repo
    found = {(r.task_type, r.metric_type, r.metric_name): r.metric_value for r in data.eval_results}
    assert found == {("image-classification", "roc_auc", "image AUROC"): 0.9,
                     ("image-classification", "f1", "image F1 at its best threshold"): 0.7,
                     ("image-segmentation", "roc_auc", "pixel AUROC"): 0.8}  # aupro unknown: no entry
    assert {r.dataset_type for r in data.eval_results} == {"acme/parts-images"}
    assert 'rbd.load("acme/parts")' in card.text and "OWNER" not in card.text
    assert "| image AUROC | 0.9000 |" in card.text and "| ms per image | 12.5 |" in card.text  # a time to 0.1 ms, not 12.5000

    config["metrics"] = {"image_auroc": "0.9 (by hand)", "pixel_auroc": True}  # a hand-edited config.json: a ValueError
    card = ModelCard(str(checkpoint_module.model_card(config)))
    assert not card.data.eval_results and "| image AUROC | 0.9 (by hand) |" in card.text  # listed, not indexed as a number
    config["model"]["backbone"] = "resnet18.tv_in1k"
    config["metrics"] = {}
    data = ModelCard(str(checkpoint_module.model_card(config))).data
    assert data.base_model == "timm/resnet18.tv_in1k" and data.license == "other" and not data.eval_results


def test_config_names_the_teacher_with_its_pretrained_tag(detector, monkeypatch):
    """An untagged Hub teacher name is stored with the tag it stands for, so the weights stay the same
    whatever timm's default becomes; packaged teachers keep their plain name."""
    from dataclasses import replace

    assert checkpoint_module.checkpoint_config(detector)["model"]["backbone"] == "tf_efficientnet_lite0"
    monkeypatch.setattr(detector.model, "config", replace(detector.config, backbone="resnet18"))
    assert checkpoint_module.checkpoint_config(detector)["model"]["backbone"] == "resnet18.a1_in1k"


def test_a_changed_threshold_is_saved(detector, tmp_path, probe):
    loaded = rbd.load(rbd.save(detector, tmp_path / "a"))
    loaded.threshold = loaded.threshold * 2
    again = rbd.load(rbd.save(loaded, tmp_path / "b"))
    assert again.threshold == pytest.approx(detector.threshold * 2)
    assert again.calibration.threshold == detector.calibration.threshold


def test_a_threshold_set_by_hand_is_saved_as_a_number_and_only_when_finite(detector, checkpoint, tmp_path):
    loaded = rbd.load(checkpoint)
    loaded.threshold = np.float32(loaded.threshold * 2)  # from a map's maximum, say
    assert rbd.load(rbd.save(loaded, tmp_path / "a")).threshold == pytest.approx(float(loaded.threshold))
    # an infinite threshold is refused as it is set (test_detector.py); a calibration can still hold one
    loaded.calibration = dataclasses.replace(loaded.calibration, threshold=float("inf"))
    before = (tmp_path / "a" / "config.json").read_text()
    with pytest.raises(rbd.CheckpointError, match=r"must be finite numbers"):
        rbd.save(loaded, tmp_path / "a")
    assert (tmp_path / "a" / "config.json").read_text() == before  # the good checkpoint there is kept


def test_an_infinite_synthetic_score_is_kept_caught_in_a_checkpoint_of_strict_json(detector, tmp_path):
    """A synthetic defect scored infinite (caught) was written as a bare Infinity, which is not JSON."""
    calibration = calibrate(detector.calibration.normal_scores, [float("inf"), -float("inf"), 0.0])
    assert calibration.synthetic_catch_rate == pytest.approx(1 / 3)
    folder = rbd.save(rbd.Detector(detector.model, calibration, detector.training, detector.metrics), tmp_path / "m")
    json.loads((folder / "config.json").read_text(), parse_constant=lambda name: pytest.fail(f"{name} in config.json"))
    assert rbd.load(folder).calibration.synthetic_catch_rate == pytest.approx(1 / 3)
    _edit_calibration(folder, synthetic_scores=[float("inf"), 0.0])  # as saved before: a bare Infinity, which json reads
    assert rbd.load(folder).calibration.synthetic_catch_rate == pytest.approx(1 / 2)


def test_a_checkpoint_calibrated_for_a_rate_of_0_still_loads_and_judges_at_its_threshold(detector, tmp_path):
    """TrainConfig and calibrate accepted a false-alarm rate of 0 (now refused: test_calibration), which set the threshold
    just above the highest normal score. A checkpoint made so loads and keeps that threshold."""
    highest = float(np.nextafter(max(detector.calibration.normal_scores), np.inf))
    strict = dataclasses.replace(detector.calibration, false_alarm_rate=0.0, threshold=highest)
    loaded = rbd.load(rbd.save(rbd.Detector(detector.model, strict, detector.training, detector.metrics), tmp_path / "m"))
    assert loaded.calibration.false_alarm_rate == 0.0 and loaded.threshold == highest
    assert threshold_at(loaded.calibration, 0.0) == highest and describe(loaded.calibration).startswith(f"raw threshold {highest:.4f} for 0% ")


def test_saving_with_the_working_folder_deleted_still_saves_elsewhere(detector, tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert rbd.load(rbd.save(detector, tmp_path / "model")).threshold == detector.threshold


def test_saving_refuses_the_current_folder_and_one_it_cannot_write_in(detector, tmp_path, monkeypatch):
    """Checked before any work (`rbd train` runs `writable_target` first): replacing the current folder left the
    shell in a deleted one, and a parent it could not write in failed the save after a whole training."""
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    for target in (".", tmp_path):
        with pytest.raises(rbd.CheckpointError, match="is the current folder or holds it"):
            rbd.save(detector, target)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path and real_access(path, mode))  # as if read-only
    with pytest.raises(rbd.CheckpointError, match=f"cannot write in {tmp_path}"):
        writable_target(tmp_path / "new" / "model")  # the nearest folder that exists is the one written in
    assert writable_target(tmp_path / "here" / "model") == tmp_path / "here" / "model"


@pytest.mark.parametrize("failure, message", [
    (OSError("disk full"), "disk full"),
    # safetensors' own error type for its I/O: `rbd train` printed a traceback after the whole training, not one line
    (SafetensorError("I/O error: No space left on device (os error 28)"), "could not write model.safetensors .*No space left"),
])
def test_saving_over_a_checkpoint_is_atomic(detector, tmp_path, monkeypatch, failure, message):
    target = rbd.save(detector, tmp_path / "model")
    good = (target / "config.json").read_text()

    def crash(*args, **kwargs):
        raise failure

    monkeypatch.setattr(checkpoint_module, "save_file", crash)
    with pytest.raises(OSError, match=message):
        rbd.save(detector, target)
    assert (target / "config.json").read_text() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no half-written leftovers


def test_a_save_stopped_between_its_two_renames_puts_the_old_checkpoint_back(detector, tmp_path, monkeypatch):
    """Ctrl-C after the old folder was renamed aside and before the new one took its place left no checkpoint at the
    target, the old one hidden as .model.old-..."""
    target = rbd.save(detector, tmp_path / "model")
    good = (target / "config.json").read_text()
    rename = Path.rename

    def interrupted(self, to):
        if self.name.startswith(".model.") and ".old-" not in self.name:  # the staging folder's turn
            raise KeyboardInterrupt
        return rename(self, to)

    monkeypatch.setattr(Path, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rbd.save(detector, target)
    monkeypatch.undo()
    assert (target / "config.json").read_text() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_save_killed_between_its_two_renames_is_named_by_load(detector, tmp_path, monkeypatch):
    """A kill (no `finally` runs) between the renames left only .model.old-..., and `load` said "no such checkpoint
    folder" (for `runs/model`, a Hub repo's name, it went to the Hub): it names the checkpoint kept aside."""
    (tmp_path / "runs").mkdir()
    target = rbd.save(detector, tmp_path / "runs" / "model")
    kept = target.with_name(".model.old-0123abcd")
    shutil.copytree(target, kept)
    shutil.rmtree(target)
    monkeypatch.chdir(tmp_path)
    for name in ("runs/model", target):
        with pytest.raises(rbd.CheckpointError, match=r"a save that stopped while replacing it left the checkpoint before at "
                                                      r".*runs/\.model\.old-0123abcd: rename that folder to model"):
            rbd.load(name)


def test_a_checkpoint_saved_over_while_it_is_read_loads_as_one_save(detector, tmp_path, probe, monkeypatch):
    """`rbd train --out` into a folder the app lists: a save landing between `load`'s read of config.json and of the
    weights gave the old threshold and calibration with the new weights, nothing refused (the app then cached it)."""
    target = rbd.save(detector, tmp_path / "model")
    other = detector.judging_by(dataclasses.replace(detector.calibration, threshold=detector.threshold + 3.0), detector.threshold + 3.0)
    changed = {name: tensor.clone() for name, tensor in other.model.trained_state().items()}
    changed["normal_std"] = changed["normal_std"] * 2  # another model's weights: its maps and scores differ
    read, saved = checkpoint_module.load_file, []

    def saved_over_first(path):
        if not saved:  # the save lands after config.json was read, before the weights are
            newer = rbd.Detector(rbd.model.RBD(detector.config), other.calibration)
            newer.model.load_trained_state(changed)
            newer.threshold = other.threshold
            saved.append(rbd.save(newer, target))
        return read(path)

    monkeypatch.setattr(checkpoint_module, "load_file", saved_over_first)
    loaded = rbd.load(target)
    assert saved and loaded.threshold == pytest.approx(detector.threshold + 3.0)  # the newer save, config and weights
    assert torch.equal(loaded.model.normal_std, changed["normal_std"])


def test_a_folder_named_near_the_file_systems_limit_is_saved_and_replaced(detector, tmp_path):
    """Its staging folder's name (10 bytes more) and the name the one it replaces is kept under (14 more) passed the
    file system's 255 bytes: "File name too long" after a whole training, nothing saved."""
    target = tmp_path / ("m" * 255)
    for _ in range(2):  # written, then replaced
        rbd.save(detector, target)
        assert rbd.load(target).threshold == detector.threshold
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # nothing left beside it
    shorter = tmp_path / ("s" * 230)  # a name an earlier rbd saved too, setting the one it replaced aside under it whole
    kept = shutil.copytree(target, tmp_path / f".{shorter.name}.old-0123abcd")
    assert rbd.checkpoint._retired_copy(shorter) == kept


def test_a_save_syncs_its_folder_and_the_one_it_lies_in(detector, tmp_path, monkeypatch):
    """Only the files were synced: after a power cut the folder could be in place without them, or not be there."""
    synced = []
    monkeypatch.setattr(checkpoint_module, "sync_folder", synced.append)
    monkeypatch.setattr(rbd.files, "sync_folder", synced.append)  # the staging folder's, by `sync_files`
    target = rbd.save(detector, tmp_path / "model")
    assert synced[0].name.startswith(".model.") and synced[1:] == [tmp_path]


def test_an_evaluation_is_saved_as_its_summary(detector, category, tmp_path):
    """`metrics=rbd.evaluate(...)` failed with a bare "Object of type Evaluation is not JSON serializable"."""
    evaluation = rbd.evaluate(detector, category)
    loaded = rbd.load(rbd.save(detector, tmp_path / "model", metrics=evaluation))
    assert loaded.metrics == pytest.approx(evaluation.summary())


def test_metrics_are_saved_as_json_takes_them(detector, tmp_path):
    """np.float32 metrics (as computed with numpy) failed the save; a NaN one was written as a bare NaN, not JSON."""
    target = rbd.save(detector, tmp_path / "model", metrics={"image_auroc": np.float32(0.5), "pixel_auroc": float("nan"),
                                                             "n_images": np.int64(7)})
    saved = json.loads((target / "config.json").read_text(), parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert saved["metrics"] == {"image_auroc": 0.5, "pixel_auroc": None, "n_images": 7}
    assert rbd.load(target).metrics == saved["metrics"]


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "config.json").unlink(), "not an rbd checkpoint"),
    (lambda d: (d / "config.json").write_text("{not json"), "not a readable JSON"),
    (lambda d: (d / "config.json").write_text('{"format": "other"}'), "not an rbd checkpoint"),
    (lambda d: _edit(d, format_version=99), "format 99"),
    (lambda d: _edit(d, format_version=True), "format true"),  # read as format 1 (True == 1)
    (lambda d: _edit(d, model={"backbone": "tf_efficientnet_lite0", "embed_dim": 32}), "do not match"),
    (lambda d: _edit(d, model={"colour": "red"}), "invalid model settings"),
    (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 64), "unreadable weights, not a whole safetensors file"),
    (lambda d: torch.save({"w": torch.zeros(2)}, d / "model.safetensors"), "unreadable weights, not a whole safetensors file"),
    (lambda d: (d / "model.safetensors").unlink(), "unreadable weights"),
    (lambda d: ((d / "model.safetensors").unlink(), (d / "model.safetensors").mkdir()), "a folder, where the checkpoint's weights file belongs"),
    (lambda d: _edit_model(d, image_size="256"), "image_size must be a whole number"),
    (lambda d: _edit_model(d, memory_size=2048.5), "memory_size must be a whole number"),
    (lambda d: _edit_model(d, decoder_widths=[64, 32]), "decoder_widths needs one width per teacher layer"),
    (lambda d: _edit_model(d, bottleneck_width=-3), "bottleneck_width must be from 1 to 4096"),  # torch's error, from deep in a layer
    (lambda d: _edit_model(d, embed_dim=0, decoder_widths=[64, -1, 24]), "embed_dim and decoder_widths must be from 1 to 4096"),
    (lambda d: _edit_calibration(d, normal_scores="123"), "normal_scores must be a list of numbers"),  # read as 1, 2, 3
    (lambda d: _edit(d, threshold="high"), "must be finite numbers"),
    (lambda d: _edit(d, threshold=float("nan")), "must be finite numbers"),
    (lambda d: _edit(d, threshold="7.5"), r"must be finite numbers \(wrong: threshold; threshold '7.5'\)"),  # said as the string it is
    (lambda d: _edit_calibration(d, synthetic_scores=[float("nan")]), r"synthetic-defect scores must be numbers \(found NaN\)"),
    (lambda d: _edit(d, training=[1]), '"training" section must be an object'),
    (lambda d: _edit_calibration(d, scale=-1.0), "a scale above 0"),  # normalised scores upside down: good parts 0.99996
    (lambda d: _edit_calibration(d, scale=0.0), "a scale above 0"),
    (lambda d: _edit_calibration(d, false_alarm_rate=5.0), "a false-alarm rate from 0 to below 1"),
    (lambda d: _edit_calibration(d, interval=[1.0]), "an interval of two numbers"),
    (lambda d: _edit_weights(d, "normal_std", lambda t: t.to(torch.int64)), "normal_std is torch.int64"),
    (lambda d: _edit_weights(d, "normal_mean", lambda t: t * float("nan")), "normal_mean holds NaN"),
    (lambda d: _edit_weights(d, "normal_std", lambda t: t * 0), "normal_std holds a spread of 0"),  # every score NaN
    (lambda d: _edit_model(d, blur_sigma=0), "blur_sigma must be from 0.1 to 64"),  # every score NaN
    (lambda d: _edit_model(d, blur_sigma=float("inf")), "blur_sigma must be from 0.1 to 64"),  # a traceback in the kernel's radius
    # sizes were allocated as they stood before any weight was read: 608 GB for this bank, an allocator's traceback
    (lambda d: _edit_model(d, backbone="resnet999"), "made with the teacher 'resnet999', which this version of rbd does not know"),
    (lambda d: _edit_model(d, memory_size=10**9), "memory_size must be from 0 .no memory. to 50000"),
    (lambda d: _edit_model(d, embed_dim=200_000), "embed_dim must be from 1 to 4096"),
    (lambda d: _edit_model(d, bottleneck_width=2**70), "bottleneck_width must be from 1 to 4096"),  # a TypeError deep in torch
    (lambda d: _edit_model(d, layers=[1, 2, 10**6]), "layers must be increasing feature levels from 0 to 4"),  # a 2^10^6 sum
    (lambda d: _edit_model(d, layers=[1, 2, -1]), "layers must be increasing feature levels from 0 to 4"),  # level 4, by Python's index
    (lambda d: (d / "config.json").write_text("[" * 200_000), "not a readable JSON config"),  # a RecursionError
    (lambda d: (d / "config.json").write_text('{"format": ' + "1" * 5000 + "}"), "not a readable JSON config"),  # over 4300 digits
])
def test_broken_checkpoints_are_clear_errors(checkpoint, tmp_path, damage, message):
    copy = shutil.copytree(checkpoint, tmp_path / "copy")
    damage(copy)
    with pytest.raises(rbd.CheckpointError, match=message):
        rbd.load(copy)


def _edit(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _edit_model(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    _edit(folder, model={**config["model"], **changes})


def _edit_calibration(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    _edit(folder, calibration={**config["calibration"], **changes})


def _edit_weights(folder, name, change):
    weights = load_file(str(folder / "model.safetensors"))
    weights[name] = change(weights[name])
    save_file(weights, str(folder / "model.safetensors"))


def test_unknown_paths_are_clear_errors(tmp_path):
    with pytest.raises(rbd.CheckpointError, match="no such checkpoint folder"):
        rbd.load(tmp_path / "missing")
    with pytest.raises(rbd.CheckpointError, match="not a Hub repo id"):
        rbd.load("not/a/repo/id")


def test_a_checkpoints_own_file_or_an_empty_name_says_what_to_give(checkpoint, tmp_path):
    """`rbd info CKPT/config.json` said there was no such file (it exists), and an empty name read as the current folder."""
    for name in ("config.json", "model.safetensors"):
        with pytest.raises(rbd.CheckpointError, match=f"{name} is a file, not a checkpoint folder, a zip of one or an .onnx file: name its folder, {checkpoint}$"):
            rbd.load(checkpoint / name)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(rbd.CheckpointError, match="notes.txt is a file, not a checkpoint folder, a zip of one or an .onnx file$"):
        rbd.load(tmp_path / "notes.txt")
    with pytest.raises(rbd.CheckpointError, match="no checkpoint named"):
        rbd.load(" ")


def _cached_repo(cache, repo_id, files, revision_name="main", commit="a" * 40):
    """Lay files out as huggingface_hub's cache does: refs/<name> -> snapshots/<commit>/<file>."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in files:
        shutil.copy(path, snapshot / path.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision_name).write_text(commit)


def test_hub_repo_loads_from_the_offline_cache(hub_cache, checkpoint, probe, detector):
    _cached_repo(hub_cache, "acme/bottle-inspector", checkpoint.iterdir())
    loaded = rbd.load("acme/bottle-inspector")
    assert loaded.predict(probe).score == detector.predict(probe).score


def test_hub_revision_is_honoured(hub_cache, checkpoint, tmp_path):
    older = shutil.copytree(checkpoint, tmp_path / "older")
    _edit(older, threshold=123.0)
    _cached_repo(hub_cache, "acme/parts", checkpoint.iterdir(), "main", "a" * 40)
    _cached_repo(hub_cache, "acme/parts", older.iterdir(), "v1", "b" * 40)
    assert rbd.load("acme/parts").threshold != 123.0
    assert rbd.load("acme/parts", revision="v1").threshold == 123.0
    assert rbd.load("acme/parts", revision="b" * 40).threshold == 123.0


def test_a_blank_revision_is_main_and_dots_are_no_revision(hub_cache, checkpoint, tmp_path):
    """"." and ".." would name folders of the local cache, and the error quoted their server path."""
    _cached_repo(hub_cache, "acme/parts", checkpoint.iterdir(), "main", "a" * 40)
    assert rbd.load("acme/parts", revision=" ").threshold == rbd.load(checkpoint).threshold
    assert rbd.load(checkpoint, revision="").config is not None  # a local folder: no revision given
    for revision in (".", "..", "v1/../main", "a//b"):
        with pytest.raises(rbd.CheckpointError, match="is not a revision: name a branch, a tag or a commit") as raised:
            rbd.load("acme/parts", revision=revision)
        assert str(hub_cache) not in str(raised.value)


@pytest.mark.parametrize("file, said", [("model.safetensors", "unreadable weights"), ("config.json", "not a readable JSON config")])
def test_a_broken_file_of_a_hub_repo_is_named_in_the_repo_not_by_the_servers_cache(hub_cache, checkpoint, tmp_path, file, said):
    """The app's toast read "/srv/.../hub/models--acme--parts/snapshots/aaaa.../model.safetensors: unreadable weights"."""
    copy = shutil.copytree(checkpoint, tmp_path / "copy")
    (copy / file).write_bytes(b"{\x10")
    _cached_repo(hub_cache, "acme/parts", copy.iterdir(), "v1", "a" * 40)
    readers = [lambda: rbd.load("acme/parts", revision="v1"), lambda: rbd.checkpoint.load_from_hub("acme/parts", "v1")]
    if file == "config.json":
        readers.append(lambda: rbd.checkpoint.stored_config("acme/parts", "v1"))  # what `rbd info` reads
    for read in readers:
        with pytest.raises(rbd.CheckpointError, match=f"^acme/parts@v1/{file}: {said}") as raised:
            read()
        assert str(hub_cache) not in str(raised.value)


def test_a_gated_repo_says_to_ask_for_access(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    def gated(*args, **kwargs):
        raise GatedRepoError("Access to model acme/parts is restricted.", response=httpx2.Response(
            403, request=httpx2.Request("GET", "https://huggingface.co/acme/parts")))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    with pytest.raises(rbd.CheckpointError, match="acme/parts: the repo is gated: ask for access on https://huggingface.co/acme/parts"):
        rbd.load("acme/parts")


@pytest.mark.parametrize("name", ["parts.onnx", "parts.zip"])
def test_a_hub_repo_named_like_a_file_loads(hub_cache, checkpoint, name):
    """The Hub's names allow acme/parts.onnx: rbd.load and the command line said "no such .onnx file", the app loaded it."""
    _cached_repo(hub_cache, f"acme/{name}", checkpoint.iterdir())
    assert rbd.load(f"acme/{name}").threshold == rbd.load(checkpoint).threshold


def test_hub_miss_offline_is_a_clear_error(hub_cache):
    """Also for a mistyped folder (`checkpoints/botle`), which reads as a repo id: the error says there is no such folder."""
    with pytest.raises(rbd.HubError, match="cannot be reached.*; nor is there a local folder or .onnx file acme/never-downloaded"):
        rbd.load("acme/never-downloaded")
    with pytest.raises(rbd.HubError, match="nor is there a local folder"):
        rbd.checkpoint.stored_config("acme/never-downloaded")


def test_hub_files_come_from_one_snapshot(hub_cache, checkpoint, tmp_path):
    """The revision names one commit; its snapshot lacking the weights is an error, never another commit's weights."""
    _cached_repo(hub_cache, "acme/parts", checkpoint.iterdir(), "main", "a" * 40)
    _cached_repo(hub_cache, "acme/parts", [checkpoint / "config.json"], "v2", "b" * 40)
    with pytest.raises(rbd.HubError, match="acme/parts@v2: the Hub cannot be reached .offline mode. and the local cache holds no "
                                           "model.safetensors"):  # what a download of config.json alone leaves
        rbd.load("acme/parts", revision="v2")
    assert rbd.load("acme/parts").config is not None


def test_a_snapshot_without_weights_online_is_no_rbd_checkpoint(hub_cache, checkpoint, monkeypatch):
    import huggingface_hub

    _cached_repo(hub_cache, "acme/parts", [checkpoint / "config.json"], "main", "b" * 40)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: str(hub_cache / "models--acme--parts" / "snapshots" / ("b" * 40)))
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: False)
    with pytest.raises(rbd.CheckpointError, match="has no model.safetensors: not an rbd checkpoint"):
        rbd.load("acme/parts")


def test_push_to_hub_uploads_the_checkpoint_folder(detector, monkeypatch):
    """The upload goes through HfApi.create_repo and upload_folder; here they are recorded, not sent."""
    from huggingface_hub import HfApi

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create"] = (repo_id, kwargs)

    def upload_folder(self, repo_id, folder_path, **kwargs):
        calls["files"] = sorted(p.name for p in folder_path.iterdir())
        calls["card"] = (folder_path / "README.md").read_text()
        return "https://huggingface.co/acme/parts/commit/abc"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = rbd.push_to_hub(detector, "acme/parts", token="hf_x", metrics={"image_auroc": 1.0}, license="mit")
    assert url.endswith("/commit/abc")
    assert calls["create"][0] == "acme/parts" and calls["create"][1]["exist_ok"] is True
    assert calls["files"] == ["README.md", "config.json", "model.safetensors"]
    assert "| image AUROC | 1.0000 |" in calls["card"] and 'rbd.load("acme/parts")' in calls["card"]
    assert "\nlicense: mit\n" in calls["card"]


def test_a_hub_model_named_as_the_app_names_it_says_how_to_give_its_revision():
    with pytest.raises(rbd.CheckpointError, match="acme/weld@v2: name the revision apart: acme/weld with --revision v2"):
        rbd.load("acme/weld@v2")


def test_a_detector_that_cannot_be_saved_makes_no_hub_repo(detector, monkeypatch):
    """The repo was made first: an infinite threshold (or an ONNX export) left an empty, maybe public, repo on the Hub."""
    import copy

    from huggingface_hub import HfApi

    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **k: calls.append("create"))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, *a, **k: calls.append("upload"))
    broken = copy.copy(detector)
    broken.calibration = dataclasses.replace(detector.calibration, scale=float("inf"))
    with pytest.raises(rbd.CheckpointError):
        rbd.push_to_hub(broken, "acme/parts", token="hf_x")
    assert calls == []


def test_push_offline_is_a_hub_error(detector, hub_cache):
    with pytest.raises(rbd.HubError, match="cannot push to acme/parts"):
        rbd.push_to_hub(detector, "acme/parts", token="hf_x")


@pytest.mark.parametrize("failure", [
    lambda: httpx2.LocalProtocolError("Illegal header value b'Bearer hf_SECRET\\n'"),  # quotes the request's header
    lambda: httpx2.ProxyError("proxy refused"),
])
def test_a_failed_push_is_one_line_that_never_quotes_the_token(detector, monkeypatch, failure):
    from huggingface_hub import HfApi

    def create_repo(self, repo_id, **kwargs):
        raise failure()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    with pytest.raises(rbd.HubError, match="cannot push to acme/parts: the connection failed") as raised:
        rbd.push_to_hub(detector, "acme/parts", token="hf_SECRET\n")  # read from a file: its newline is stripped
    assert "SECRET" not in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(rbd.CheckpointError, match="control character") as raised:
        rbd.push_to_hub(detector, "acme/parts", token="hf_SEC\nRET")
    assert "SEC" not in str(raised.value)


def test_a_revision_is_never_ignored_for_a_local_folder_of_the_repos_name(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(checkpoint, tmp_path / "acme" / "parts")
    assert rbd.load("acme/parts").config is not None
    with pytest.raises(rbd.CheckpointError, match="is a local folder, which has no revision 'v1'"):
        rbd.load("acme/parts", revision="v1")


def test_a_download_the_connection_drops_is_a_hub_error(monkeypatch):
    import huggingface_hub

    def drop(*args, **kwargs):
        raise httpx2.ReadError("connection reset by peer")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", drop)
    with pytest.raises(rbd.HubError, match="acme/parts: download failed"):
        rbd.load("acme/parts")


def test_saving_never_replaces_a_folder_that_is_not_a_checkpoint(detector, tmp_path):
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "thesis.txt").write_text("years of work")
    with pytest.raises(rbd.CheckpointError, match="not an rbd checkpoint"):
        rbd.save(detector, documents)
    assert (documents / "thesis.txt").read_text() == "years of work"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (rbd.save(detector, empty) / "config.json").is_file()



def test_saving_never_replaces_a_checkpoint_folder_that_holds_other_files(detector, checkpoint, tmp_path):
    """A clone of a Hub model repo keeps `.git` beside the checkpoint; retraining into it must not delete it."""
    clone = shutil.copytree(checkpoint, tmp_path / "clone")
    (clone / ".git").mkdir()
    (clone / "metrics.json").write_text("{}")
    with pytest.raises(rbd.CheckpointError, match=r"holds other files beside its checkpoint \(\.git, metrics\.json\)"):
        rbd.save(detector, clone)
    assert (clone / ".git").is_dir() and (clone / "metrics.json").is_file()
    assert (rbd.save(detector, checkpoint_copy := shutil.copytree(checkpoint, tmp_path / "plain")) / "config.json").is_file()
    assert sorted(p.name for p in checkpoint_copy.iterdir()) == sorted(rbd.checkpoint.CHECKPOINT_FILES)

def test_saving_over_a_checkpoint_of_a_newer_format_replaces_it(detector, checkpoint, tmp_path):
    """It is an rbd checkpoint (named as --out on purpose), not "not an rbd checkpoint"."""
    newer = shutil.copytree(checkpoint, tmp_path / "newer")
    _edit(newer, format_version=99)
    with pytest.raises(rbd.CheckpointError, match="checkpoint format 99"):
        rbd.load(newer)
    _edit(newer, format_version="4")  # text: it said "format 4 ... cannot be read by rbd, which reads formats 1, 2, 3, 4"
    with pytest.raises(rbd.CheckpointError, match=r'checkpoint format "4" \(made by'):
        rbd.load(newer)
    _edit(newer, format_version=None)
    with pytest.raises(rbd.CheckpointError, match=r"checkpoint format missing \(made by"):
        rbd.load(newer)
    assert rbd.load(rbd.save(detector, newer)).threshold == detector.threshold
    for text in ("[]", "not json", '{"format": "other"}'):
        (other := tmp_path / f"other{len(text)}").mkdir()
        (other / "config.json").write_text(text)
        with pytest.raises(rbd.CheckpointError, match="exists and is not an rbd checkpoint"):
            rbd.save(detector, other)


def test_a_damaged_calibration_is_a_checkpoint_error(checkpoint, tmp_path):
    copy = shutil.copytree(checkpoint, tmp_path / "copy")
    _edit(copy, calibration={"scale": 1.0})
    with pytest.raises(rbd.CheckpointError, match="calibration"):
        rbd.load(copy)


def test_hub_loading_never_reads_a_local_folder_of_that_name(checkpoint, tmp_path, monkeypatch, hub_cache):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(checkpoint, tmp_path / "acme" / "parts")
    assert rbd.load("acme/parts").config is not None  # rbd.load: a folder wins
    with pytest.raises(rbd.HubError, match="cannot be reached"):
        checkpoint_module.load_from_hub("acme/parts")


def test_checkpoint_files_are_readable_by_others(checkpoint):
    """Checkpoints are shared (a Space, a team folder): not private like temporary files."""
    assert checkpoint.stat().st_mode & 0o755 == 0o755
    for path in checkpoint.iterdir():
        assert path.stat().st_mode & 0o644 == 0o644


def test_a_format_2_checkpoint_still_loads_and_ranks_images_by_its_map(detector, tmp_path):
    """rbd before format 3 scored an image by the top of its anomaly map, and stored no score_affine."""
    import torch

    from rbd.anomaly_map import image_score

    folder = tmp_path / "v2"
    save_as_format(detector, folder, 2, later_weights=("score_affine", "edge_profile"), later_settings=("score_from", "edge_bands"))
    old = rbd.load(folder)
    assert old.config.score_from == "map" and old.model.memory is not None
    probe = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    prediction = old.predict(probe)
    expected = image_score(torch.from_numpy(prediction.anomaly_map)[None], old.config.score_rule)
    assert prediction.score == pytest.approx(float(expected), abs=1e-5)
    np.testing.assert_allclose(prediction.anomaly_map, map_without_edge_level(detector, probe), atol=1e-5)  # the same map


def save_as_format(detector, folder, version: int, later_weights: tuple[str, ...], later_settings: tuple[str, ...]) -> None:
    """`detector` saved as rbd wrote checkpoints of format `version`: without the weights and settings made since."""
    from safetensors.torch import save_file

    folder.mkdir()
    weights = {k: v.contiguous() for k, v in detector.model.trained_state().items() if k not in later_weights}
    save_file(weights, str(folder / "model.safetensors"))
    config = rbd.checkpoint.checkpoint_config(detector)
    config["format_version"] = version
    config["model"] = {k: v for k, v in config["model"].items() if k not in later_settings}
    (folder / "config.json").write_text(json.dumps(config))


def map_without_edge_level(detector, probe: np.ndarray) -> np.ndarray:
    """`detector`'s map of `probe` (at the model's input size) with its normal level by distance from the edge added back."""
    from rbd.anomaly_map import edge_level

    return detector.predict(probe).anomaly_map + edge_level(detector.model.edge_profile, probe.shape[:2]).numpy()


def test_a_format_3_checkpoint_still_loads_and_makes_its_map_without_an_edge_level(detector, tmp_path):
    """rbd before format 4 subtracted no normal level by distance from the edge, and stored no edge_profile."""
    save_as_format(detector, tmp_path / "v3", 3, later_weights=("edge_profile",), later_settings=("edge_bands",))
    old = rbd.load(tmp_path / "v3")
    assert old.config.edge_bands == 0 and old.config.score_from == detector.config.score_from
    probe = np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)
    assert detector.model.edge_profile.abs().max() > 0.05  # a level that makes a difference to the map
    np.testing.assert_allclose(old.predict(probe).anomaly_map, map_without_edge_level(detector, probe), atol=1e-5)
    rbd.save(old, tmp_path / "resaved")  # saved again in today's format, it stays as it was
    np.testing.assert_allclose(rbd.load(tmp_path / "resaved").predict(probe).anomaly_map, old.predict(probe).anomaly_map, atol=1e-6)


def test_a_format_1_checkpoint_still_loads_and_scores_with_the_plain_student_map(detector, tmp_path):
    """rbd 0.1 stored the student alone; its map was the mean of the raw distances, with no memory."""
    from safetensors.torch import save_file

    folder = tmp_path / "old"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in detector.model.student.state_dict().items()}, str(folder / "model.safetensors"))
    config = rbd.checkpoint.checkpoint_config(detector)
    config["format_version"] = 1
    config["model"] = {k: v for k, v in config["model"].items() if k not in ("memory_size", "score_from", "edge_bands")}  # later settings
    (folder / "config.json").write_text(json.dumps(config))
    old = rbd.load(folder)
    assert old.model.memory is None and old.config.memory_size == 0
    probe = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)  # at model size: no resizing either way
    import torch
    x = torch.from_numpy(probe).permute(2, 0, 1)[None]
    with torch.no_grad():
        teacher = old.model.features(x)
        expected = old.model.student_map(teacher, old.model.student(teacher), x.shape[-2:])
    np.testing.assert_allclose(old.predict(probe).anomaly_map, expected[0, 0].numpy(), atol=1e-5)


def test_a_revision_for_a_local_onnx_file_is_an_error_as_for_a_folder(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not read: the revision is refused first")
    with pytest.raises(rbd.CheckpointError, match="is a local file, which has no revision 'v2'"):
        rbd.load(tmp_path / "model.onnx", revision="v2")
    with pytest.raises(rbd.CheckpointError, match="no such .onnx file"):
        rbd.load(str(tmp_path / "typo.onnx"))  # a path as a string is no Hub repo id either


def test_a_precision_is_checked_when_set_on_any_device(detector):
    with pytest.raises(rbd.InvalidInputError, match="precision must be one of auto, float32, got 'float16'"):
        detector.precision = "float16"
    detector.precision = "float32"
    assert detector.precision == "float32"
    detector.precision = "auto"


def test_the_apps_catalog_tells_to_pick_from_its_list_only_where_the_repo_was_not_had(hub_cache, checkpoint, tmp_path):
    """"acme/parts/model.safetensors: unreadable weights...; nor is acme/parts one of this app's models (pick those in the
    list)": the repo was there, its weights broken, and the hint (for a folder typed as if a repo id) misled."""
    from rbd.catalog import Catalog

    copy = shutil.copytree(checkpoint, tmp_path / "copy")
    (copy / "model.safetensors").write_bytes(b"\x00" * 64)
    _cached_repo(hub_cache, "acme/parts", copy.iterdir())
    catalog = Catalog(tmp_path / "shipped", tmp_path / "models")
    with pytest.raises(rbd.CheckpointError, match="unreadable weights") as raised:
        catalog.get("acme/parts")
    assert "pick those in the list" not in str(raised.value)
    with pytest.raises(rbd.HubError, match="cannot be reached.*; nor is acme/other one of this app's models .pick those in the list.$"):
        catalog.get("acme/other")
    with pytest.raises(rbd.CheckpointError, match="pick those in the list"):  # an id the Hub refuses: its own error, not the cache's
        catalog.get("a/b--c")
    _cached_repo(hub_cache, "acme/bolts", checkpoint.iterdir())  # had, at another revision than the one asked for
    with pytest.raises(rbd.HubError, match="cannot be reached.*; the local cache holds acme/bolts at its main revision, not at v9$"):
        catalog.get("acme/bolts", "v9")
