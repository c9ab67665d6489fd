"""Training: calibration from held-out images, budgets, progress, cancellation, ablation switches."""

import copy
import dataclasses
import importlib
import re
import shutil
import sys

import numpy as np
import pytest
import torch
from scipy.stats import norm
from PIL import Image

import rbd
from rbd.train import BackgroundTraining, split_holdout
from conftest import TINY_MODEL

FAST = dict(batch_size=4, seed=0)


def test_detector_is_calibrated_on_every_image(detector):
    """Held-out images and training images (the memory blind to their own patches) all count."""
    c = detector.calibration
    summary = detector.training
    assert summary["holdout_images"] == 4  # 40% of 10
    assert summary["train_images"] + summary["holdout_images"] == summary["images"] == len(c.normal_scores) == 10
    scores, tail = np.asarray(c.normal_scores), 1 - c.false_alarm_rate
    assert c.threshold == pytest.approx(max(np.quantile(scores, tail), norm.ppf(tail, scores.mean(), scores.std(ddof=1))))
    assert c.threshold >= max(c.normal_scores)
    assert detector.threshold == c.threshold
    assert len(c.synthetic_scores) == 10
    assert 0.0 <= c.synthetic_catch_rate <= 1.0
    assert c.interval[0] < c.interval[1]


def test_held_out_images_are_calibrated_by_the_scores_predictions_give(detector, category):
    """The threshold rests on the normal images' scores; the held-out ones (first in the list) must
    be the very scores `predict` gives those image files, or the threshold would judge another scale
    (training once kept its pictures as 8-bit, whose rounding moved scores)."""
    from rbd.images import find_images

    paths = find_images(category / "train" / "good")
    _, holdout = split_holdout(len(paths), rbd.TrainConfig(seed=0, holdout_fraction=0.4))
    predicted = [detector.predict(paths[i]).score for i in holdout]
    np.testing.assert_allclose(detector.calibration.normal_scores[: len(holdout)], predicted, rtol=1e-6, atol=1e-6)


def test_a_low_contrast_16_bit_set_is_trained_and_calibrated_at_its_full_depth(tmp_path):
    """Grey levels 30000-31000 of 65535: cut to 8 bits they would be four levels, and every real
    image would look unlike the training pictures."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    for i in range(6):
        texture = 30000 + 500 * (1 + np.sin(yy / 3 + i) * np.cos(xx / 4)) + rng.normal(0, 40, (64, 64))
        Image.fromarray(texture.clip(0, 65535).astype(np.uint16)).save(tmp_path / f"{i}.png")
    detector = rbd.train(tmp_path, rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=2, holdout_fraction=0.4, **FAST))
    held_out = split_holdout(6, rbd.TrainConfig(seed=0, holdout_fraction=0.4))[1]
    predicted = [detector.predict(tmp_path / f"{i}.png").score for i in held_out]
    np.testing.assert_allclose(detector.calibration.normal_scores[: len(held_out)], predicted, rtol=1e-6, atol=1e-6)


def test_exact_copies_are_trained_on_once(tmp_path):
    """The bank keeps each patch from one copy, which, scored blind to its own patches, then looked unlike the others and
    lifted the threshold (six copies of one photo: 4.1 against 1.2, a painted defect judged good). Copies add nothing."""
    from PIL import Image

    yy, xx = np.mgrid[:64, :64]
    photos = [(127 + 100 * np.sin(yy / 5.0 + phase) * np.cos(xx / 7.0)).astype(np.uint8) for phase in range(6)]
    for i in range(5):
        Image.fromarray(photos[0]).save(tmp_path / f"copy{i}.png")
    with pytest.raises(rbd.NoImagesError, match="at least 5 distinct normal images: 4 of the 5 are exact copies of others"):
        rbd.train(tmp_path, rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=1, **FAST))
    one = tmp_path / "one copy"
    one.mkdir()
    for i, photo in enumerate(photos[:4] + photos[:1]):
        Image.fromarray(photo).save(one / f"{i}.png")
    with pytest.raises(rbd.NoImagesError, match="at least 5 distinct normal images: 1 of the 5 is an exact copy of another$"):
        rbd.train(one, rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=1, **FAST))  # ("1 of the 5 are")
    shutil.rmtree(one)
    for i, photo in enumerate(photos[1:]):
        Image.fromarray(photo).save(tmp_path / f"other{i}.png")
    with pytest.warns(UserWarning, match="4 of the 10 training images are exact copies of others: trained on the 6 distinct ones"):
        detector = rbd.train(tmp_path, rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=1, **FAST))
    assert detector.training["images"] == len(detector.calibration.normal_scores) == 6 and detector.training["copies_left_out"] == 4


def test_a_fine_tune_keeps_the_settings_of_the_model_it_starts_from(detector, category):
    with pytest.raises(rbd.InvalidInputError, match="keeps the model settings of the detector it starts from but memory_size"):
        rbd.train(category / "train" / "good", rbd.ModelConfig(image_size=128), rbd.TrainConfig(epochs=1, **FAST), start_from=detector)


def test_a_fine_tune_of_a_model_without_memory_or_edge_level_may_get_both(detector, category):
    """A format 1 checkpoint loads as a student alone (no memory, no edge level): a fine-tune with today's map settings
    builds both from its images; the student still starts from the old one's weights."""
    old = copy.deepcopy(detector)
    old.model.config = dataclasses.replace(detector.config, memory_size=0, score_from="map", edge_bands=0)
    old.model.memory, old.model.edge_profile = None, torch.zeros(0)
    settings = old.config.with_default_map()
    assert (settings.memory_size, settings.score_from, settings.edge_bands) == (2048, "both", 64)
    assert settings.student_settings() == old.config.student_settings()
    tuned = rbd.train(category / "train" / "good", settings, rbd.TrainConfig(epochs=1, learning_rate=1e-6, **FAST), start_from=old)
    assert tuned.config == settings and tuned.model.memory is not None and tuned.model.edge_profile.abs().max() > 0.05
    flat = lambda d: torch.cat([p.detach().flatten() for p in d.model.student.parameters()])  # noqa: E731
    assert (flat(tuned) - flat(old)).norm() < 0.01 * flat(old).norm()


def test_training_takes_uint8_grey_and_pil_images_and_paths(category):
    from PIL import Image

    from rbd.images import find_images

    paths = find_images(category / "train" / "good")[:6]
    given = [np.asarray(Image.open(paths[0]).convert("RGB")), np.asarray(Image.open(paths[1]).convert("L")),
             Image.open(paths[2]), str(paths[3]), paths[4], np.asarray(Image.open(paths[5]), dtype=np.float32) / 255]
    detector = rbd.train(given, rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=1, **FAST))
    assert detector.training["images"] == 6


@pytest.mark.parametrize("fraction", [0.9, 0.95])
def test_a_large_holdout_still_leaves_two_images_to_train_on(fraction):
    train_ids, holdout_ids = split_holdout(5, rbd.TrainConfig(seed=0, holdout_fraction=fraction))
    assert len(train_ids) == 2 and len(holdout_ids) == 3


def test_maps_are_standardised_on_normal_images(detector):
    """After training each distance map has its normal mean and spread, not the untrained 0 and 1."""
    model = detector.model
    assert model.normal_mean.shape == (len(model.teacher.strides) + 1,)
    assert (model.normal_mean > 0).all() and (model.normal_std > 0).all()
    assert not torch.equal(model.normal_std, torch.ones_like(model.normal_std))
    assert np.isfinite(float(model.memory.familiar_distance))


def test_the_memory_ranks_images_in_the_maps_units(detector, category):
    """The image score averages the map's score and the memory's own map's, the latter put by
    `score_affine` in the map's units (on the normal images it has the mean and spread of the
    map's scores), so one threshold judges the image and its pixels."""
    from rbd.anomaly_map import image_score
    from rbd.geometry import to_input
    from rbd.images import read_image_folder

    model = detector.model
    assert model.config.score_from == "both" and not torch.equal(model.score_affine, torch.tensor([1.0, 0.0]))
    images, _ = read_image_folder(category / "test" / "good")
    with torch.no_grad():
        for image in images:
            x = to_input(image, model.config.fit(*image.shape[:2]))[None]
            scale_maps, memory_map = model.distances(x)
            maps, score = model.scored(scale_maps, memory_map, x.shape[-2:])
            scale, shift = model.score_affine
            map_score = float(image_score(maps, model.config.score_rule))
            memory_score = float(model.memory_score(memory_map, x.shape[-2:]) * scale + shift)
            assert float(score) == pytest.approx((map_score + memory_score) / 2, abs=1e-5)
            assert float(score) == pytest.approx(detector.predict(image).score, abs=1e-4)  # what a prediction says


def test_the_score_affine_gives_the_memorys_scores_the_maps_mean_and_spread(detector, category):
    import copy

    from rbd.anomaly_map import image_score
    from rbd.geometry import to_input
    from rbd.images import read_image_folder
    from rbd.train import _fit_score_affine

    model = copy.deepcopy(detector.model)
    images, _ = read_image_folder(category / "test" / "good")
    inputs = [to_input(image, model.config.fit(*image.shape[:2]))[None] for image in images]
    with torch.no_grad():
        components = [(model.distances(x), tuple(x.shape[-2:])) for x in inputs]
        map_scores = torch.cat([image_score(model.combine(*c, size), model.config.score_rule) for c, size in components])
        memory_scores = torch.cat([model.memory_score(m, size) for (_, m), size in components])
        _fit_score_affine(model, map_scores, memory_scores)  # fitted on these images
        scale, shift = model.score_affine
        mapped = (memory_scores * scale + shift).numpy()
    assert float(scale) > 0
    assert mapped.mean() == pytest.approx(float(map_scores.mean()), abs=1e-4)
    assert mapped.std() == pytest.approx(float(map_scores.std(unbiased=False)), rel=1e-3)


def test_trained_detector_finds_real_defects(detector, category):
    """Dark discs (never seen in training) must outscore normal parts, and be localised."""
    result = rbd.evaluate(detector, category)
    assert result.image_auroc >= 0.9
    assert result.pixel_auroc >= 0.9
    assert result.aupro >= 0.7


def test_holdout_split_is_seeded_and_disjoint():
    config = rbd.TrainConfig(seed=3, holdout_fraction=0.25)
    train_ids, holdout = split_holdout(20, config)
    assert sorted(train_ids + holdout) == list(range(20)) and len(holdout) == 5
    assert split_holdout(20, config) == (train_ids, holdout)
    assert split_holdout(20, rbd.TrainConfig(seed=4, holdout_fraction=0.25)) != (train_ids, holdout)


def test_progress_reports_every_step_until_the_budget_is_used(category):
    seen = []
    detector = rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=3, **FAST), progress=seen.append)
    assert [p.step for p in seen] == list(range(1, len(seen) + 1))
    assert len(seen) == detector.training["steps"] == 3 * 3  # 9 training images, batches of 4
    assert seen[-1].fraction == 1.0 and seen[-1].epoch == pytest.approx(3.0)
    assert all(np.isfinite(p.loss) for p in seen)


def test_images_given_as_a_generator_or_a_4d_array_are_all_trained_on():
    """A generator lost its first image (a check read it) and a generator of paths all of them; a 4-D array failed
    with numpy's 'truth value is ambiguous'."""
    from rbd.train import model_pictures

    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(6)]
    config = rbd.ModelConfig(**TINY_MODEL)
    expected = model_pictures(arrays, config)
    for given in ((a for a in arrays), np.stack(arrays)):
        pictures = model_pictures(given, config)
        assert len(pictures) == 6 and all(torch.equal(a, b) for a, b in zip(pictures, expected))
    with pytest.raises(rbd.InvalidInputError, match="training takes a list of images .*not one image"):
        model_pictures(arrays[0], config)
    for settings in ({"config": {"max_minutes": 0.05}}, {"config": {}}, {"model_config": {"image_size": 64}}):  # an AttributeError deep in training
        with pytest.raises(rbd.InvalidInputError, match=r"config must be an rbd\.\w+Config .*got dict"):
            rbd.train(arrays, **settings)


def test_a_tensor_image_a_mixed_list_and_a_bad_one_among_several_in_training(tmp_path):
    """One torch tensor was cut into its rows and trained on (numpy's was refused); files among arrays were read whole
    (not as a prediction reads them), listed after the arrays; a bad image among several was not named by its place."""
    from rbd.train import model_pictures

    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    config = rbd.ModelConfig(**TINY_MODEL)
    with pytest.raises(rbd.InvalidInputError, match="training takes a list of images .*not one image"):
        model_pictures(torch.from_numpy(arrays[0]), config)
    assert len(model_pictures(torch.from_numpy(np.stack(arrays)), config)) == 4  # a 4-D tensor: one image per first index
    Image.fromarray(arrays[0]).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    pictures = model_pictures([arrays[1], tmp_path / "good.png", *arrays[2:]], config)  # in their order
    assert len(pictures) == 4 and torch.equal(pictures[1], model_pictures([arrays[0]], config)[0])
    for mixed, place in (([tmp_path / "bad.png", *arrays[1:]], 0), ([tmp_path / "good.png", *arrays[:2], np.full((64, 64), np.nan)], 3)):
        with pytest.raises(rbd.ImageReadError, match=rf"^image {place} of 4 \(counting from 0\): "):  # among all, files too
            model_pictures(mixed, config)


def test_an_endless_time_budget_leaves_the_epochs_to_end_training(category):
    """`--max-minutes inf` (the command line's only way past its 10-minute default) crashed on the budget's share of
    the teacher pass; a budget in minutes past any clock (1e308: infinite in seconds) is the same."""
    for endless in (float("inf"), 1e308):
        config = rbd.TrainConfig(epochs=1, max_minutes=endless, **FAST)
        assert config.budget_s is None
        with pytest.raises(rbd.InvalidInputError, match="epochs or a finite max_minutes must be set"):
            rbd.TrainConfig(epochs=None, max_minutes=endless)
    detector = rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), config)
    assert detector.training["steps"] == 3  # 9 training images, batches of 4, one epoch
    assert detector.training["config"]["max_minutes"] is None  # no budget, recorded so (strict JSON has no Infinity)
    with pytest.raises(rbd.InvalidInputError, match="max_minutes must be positive"):
        rbd.TrainConfig(max_minutes=float("nan"))


def test_time_budget_stops_training_early(category):
    detector = rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=10_000, max_minutes=0.02, **FAST))
    assert 1 <= detector.training["steps"] < 10_000
    assert detector.training["seconds"] < 30


def test_a_budget_too_short_for_the_memorys_selection_stops_it_with_a_notice(category, monkeypatch):
    """Choosing the bank's patches took up to 15 s whatever the budget: a 6-second training took 22 s."""
    from rbd.notices import collect

    train_module = importlib.import_module("rbd.train")
    monkeypatch.setattr(train_module, "MEMORY_SHARE", 1e-9)  # as if choosing took far longer than the budget allows
    with collect() as notes:
        detector = rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL, memory_size=512),
                             rbd.TrainConfig(max_minutes=0.05, **FAST))
    assert any(re.search(r"the time budget \(at most 0% of it\) let the patch memory choose 128 of its 512 patches", n) for n in notes), notes
    assert detector.model.memory.bank.unique(dim=0).shape[0] == 128 and detector.training["steps"] >= 1
    assert detector.training["memory_patches_left_out"] == 512 - 128  # recorded: the app's status and model card say it
    assert np.isfinite(detector.calibration.normal_scores).all()
    monkeypatch.undo()
    with collect() as notes:  # a budget with time for it: the whole bank, no word
        whole = rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL, memory_size=512), rbd.TrainConfig(epochs=1, **FAST))
    assert not any("patch memory" in note for note in notes) and whole.training["memory_patches_left_out"] == 0


def test_a_set_too_large_for_its_budget_trains_on_what_the_teacher_reads_in_its_share(tmp_path, monkeypatch):
    """The teacher's first pass over every image ran past the budget (470 images: 88 s of a 6-second budget): it
    now reads a random sample it can finish within TEACHER_SHARE of the budget, with a notice."""
    from rbd.notices import collect

    train_module = importlib.import_module("rbd.train")  # the module: `rbd.train` is also the function

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(20)]
    monkeypatch.setattr(train_module, "TEACHER_SHARE", 1e-9)  # as if each image took far longer than the budget allows
    with collect() as notes:
        detector = rbd.train(images, rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(max_minutes=0.02, **FAST))
    training = detector.training
    assert training["train_images"] == train_module.PROBE_IMAGES and training["train_images_left_out"] == 18 - train_module.PROBE_IMAGES
    assert any("let the teacher read 8 of the 18 training images" in note for note in notes)
    assert len(detector.calibration.normal_scores) == 2 + train_module.PROBE_IMAGES  # held out, and those read


def test_a_student_the_clock_stopped_after_few_steps_is_said_and_one_its_epochs_ended_is_not(monkeypatch):
    """A 1-minute budget of large images on a busy machine trained 1 step, the teacher's reading and the calibration
    taking the rest: its maps were coarse and nothing said so (the card said "1 steps")."""
    from rbd.checkpoint import checkpoint_config, model_card
    from rbd.notices import collect

    train_module = importlib.import_module("rbd.train")
    monkeypatch.setattr(train_module, "FEW_STEPS", 10**6)  # every step count is few
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(6)]
    with collect() as notes:
        by_clock = rbd.train(images, rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(max_minutes=0.02, **FAST))
    said = f"the time budget let the student train only {by_clock.training['steps']} step"
    assert any(note.startswith(said) for note in notes), notes
    assert said in model_card(checkpoint_config(by_clock)).text  # and on its card
    with collect() as notes:
        by_epochs = rbd.train(images, rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=1, max_minutes=None, **FAST))
    assert not any("let the student train only" in note for note in notes)  # the steps asked for: nothing to say
    assert "let the student train only" not in model_card(checkpoint_config(by_epochs)).text


def test_the_teacher_reads_a_random_sample_beyond_its_probe_and_the_bank_names_their_positions():
    from rbd.model import RBD
    from rbd.train import PROBE_IMAGES, TeacherCache

    model = RBD(rbd.ModelConfig(**{**TINY_MODEL, "memory_size": 16}))
    images = [torch.full((3, 64, 64), i / 20) for i in range(20)]
    cache = TeacherCache(model, images, torch.device("cpu"), torch.Generator().manual_seed(0), 200, readable=lambda s: 12)
    assert len(cache.images) == 12 and cache.left_out == 8 and cache.images[:PROBE_IMAGES] == images[:PROBE_IMAGES]
    assert len(cache.features) == 12 and int(cache.patch_sources.max()) == 11  # positions in the images kept
    per_image = torch.bincount(cache.patch_sources)
    assert (per_image[PROBE_IMAGES:] == -(-200 // 12)).all()  # the bank's candidates spread over the 12 read, not all 20
    assert TeacherCache(model, images, torch.device("cpu"), torch.Generator(), 200).left_out == 0  # no limit: every image


def test_cancellation_raises(category):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(rbd.TrainingCancelled):
        rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=50, **FAST), should_stop=stop)
    assert len(calls) == 3


def test_a_cancel_reaches_the_teacher_pass_before_any_step(category):
    """A large set's teacher pass takes long: Cancel must not wait for it to end."""
    steps = []
    with pytest.raises(rbd.TrainingCancelled, match="while the teacher read the images"):
        rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=50, **FAST),
                  progress=steps.append, should_stop=lambda: True)
    assert steps == []


def test_a_cancel_reaches_the_memorys_selection(monkeypatch):
    """Choosing the bank from 50,000 patches takes seconds on a busy machine: Cancel must not wait for it."""
    from rbd.memory import STOP_CHECK_EVERY, greedy_coreset

    asked = []
    points = torch.randn(5000, 16, generator=torch.Generator().manual_seed(0))
    with pytest.raises(rbd.TrainingCancelled, match="while the patch memory was built"):
        greedy_coreset(points, 1000, torch.Generator().manual_seed(0), should_stop=lambda: asked.append(1) or len(asked) > 1)
    assert len(asked) == 2  # asked every STOP_CHECK_EVERY entries, stopped at the second
    assert len(greedy_coreset(points, STOP_CHECK_EVERY + 1, torch.Generator().manual_seed(0), lambda: False)) == STOP_CHECK_EVERY + 1


def test_same_seed_gives_the_same_model(category):
    def weights():
        d = rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=2, **FAST))
        return torch.cat([p.flatten() for p in d.model.student.parameters()])

    torch.testing.assert_close(weights(), weights())


@pytest.mark.parametrize("switch", ["corruption", "consistency"])
def test_ablation_switches_train(category, switch):
    config = rbd.TrainConfig(epochs=1, **FAST, **{switch: False})
    detector = rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), config)
    assert detector.training["config"][switch] is False


def test_too_few_images_is_a_clear_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(rbd.NoImagesError):
        rbd.train([np.zeros((32, 32, 3), np.float32)], rbd.ModelConfig(**TINY_MODEL))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(rbd.NoImagesError, match="no image files"):
        rbd.train(empty, rbd.ModelConfig(**TINY_MODEL))


def test_corrupt_files_are_skipped_with_a_warning(category, tmp_path):
    folder = tmp_path / "good"
    folder.mkdir()
    for path in sorted((category / "train" / "good").iterdir())[:5]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match="broken.png"):
        detector = rbd.train(folder, rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=1, **FAST))
    assert detector.training["images"] == 5


def test_unknown_backbone_and_device_are_clear_errors_before_any_image_is_decoded(category, monkeypatch):
    """A missing GPU or teacher was said once every training image had been decoded (22 s for bottle's 209)."""
    monkeypatch.setattr(importlib.import_module("rbd.train"), "model_pictures", lambda *a: pytest.fail("decoded first"))
    with pytest.raises(rbd.BackboneError, match="unknown backbone 'vgg99'"):
        rbd.train(category / "train" / "good", rbd.ModelConfig(backbone="vgg99"))
    with pytest.raises(rbd.InvalidInputError, match="device"):
        rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(device="tpu"))
    if not torch.cuda.is_available():
        with pytest.raises(rbd.InvalidInputError, match="no CUDA GPU"):
            rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(device="cuda"))


@pytest.mark.parametrize("settings, message", [
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"epochs": -3}, "epochs must be at least 1"),
    ({"max_minutes": 0}, "max_minutes must be positive"),
    ({"holdout_fraction": 1.0}, "holdout_fraction"),
    ({"batch_size": 0, "false_alarm_rate": 2.0}, "batch_size must be from 1 to 4096; false_alarm_rate"),
    ({"batch_size": 10**9}, "batch_size must be from 1 to 4096"),
    ({"learning_rate": float("inf")}, "learning_rate must be from above 0 to below 10"),  # every weight NaN, found at the end
    ({"learning_rate": float("nan")}, "learning_rate must be from above 0 to below 10"),
    ({"learning_rate": "1"}, "learning_rate must be a number"),  # a TypeError in the comparison
    ({"weight_decay": float("nan")}, "weight_decay must be from 0 to below 1"),  # torch's error, after every image was read
    ({"weight_decay": -1}, "weight_decay must be from 0 to below 1"),
    ({"seed": -1}, "seed must be a whole number from 0"),  # numpy's generators refuse it, after every image was read
    ({"seed": 2**64}, "seed must be a whole number from 0"),
])
def test_invalid_training_settings_are_refused_up_front(settings, message):
    with pytest.raises(rbd.InvalidInputError, match=message):
        rbd.TrainConfig(**settings)


def test_a_set_too_large_for_memory_at_model_size_is_sampled_with_a_notice(tmp_path, monkeypatch):
    """Every training image was kept as a float32 picture at model size before the budget chose what the teacher reads:
    10,000 strips asked for 31 GB."""
    from PIL import Image

    from rbd.notices import collect
    from rbd.images import given_image
    from rbd.train import model_pictures, resized

    train_module = sys.modules["rbd.train"]
    config = rbd.ModelConfig(**TINY_MODEL)
    monkeypatch.setattr(train_module, "PICTURES_LIMIT_BYTES", 5 * 3 * 4 * 64 * 64)  # five 64 x 64 pictures
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(10)]
    for i, array in enumerate(arrays):
        Image.fromarray(array).save(tmp_path / f"{i:02d}.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")  # its error is said when decoded, not when sized
    which = lambda pictures: [next(i for i, a in enumerate(arrays) if torch.equal(p, resized(given_image(a), config))) for p in pictures]  # noqa: E731
    for given, count in ((tmp_path, 11), (arrays, 10)):
        with collect() as notes:
            pictures = model_pictures(given, config, seed=3)
        assert len(pictures) == 5, len(pictures)
        assert any(f"the {count} training images would take " in note and "more than the 0.2 MB training keeps: trained on a "
                   "random sample of" in note for note in notes), notes
        assert which(pictures) == sorted(which(pictures)) == which(model_pictures(given, config, seed=3))  # the seed's sample
        assert which(pictures) != which(model_pictures(given, config, seed=4))
    assert len(model_pictures(arrays[:5], config)) == 5  # what fits is kept whole


def test_folders_among_the_training_images_stand_for_their_training_images(category, tmp_path):
    """`rbd.train(["line1", "line2"])` failed: "is a folder, not an image file" (predict_files takes folders)."""
    from rbd.train import model_pictures

    config = rbd.ModelConfig(**TINY_MODEL)
    good = sorted((category / "train" / "good").iterdir())
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(good[0], loose / "extra.png")
    both = model_pictures([category, loose], config)  # an MVTec category: its train/good images only, as given alone
    assert len(both) == len(model_pictures(category, config)) + 1 == len(good) + 1


def test_a_diverging_training_stops_with_a_clear_error(monkeypatch):
    """A loss gone to NaN (a learning rate far too high) trained on to the budget's end, where the calibration failed on
    NaN scores: "calibration scores must be finite"."""
    monkeypatch.setattr(sys.modules["rbd.train"], "reconstruction_loss", lambda rebuilt, target: sum(r.sum() for r in rebuilt) * float("nan"))
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(8)]
    with pytest.raises(rbd.InvalidInputError, match="training diverged: the loss was not a number for 10 steps in a row, up to step 10"):
        rbd.train(arrays, rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=40, seed=3))


def test_a_numpy_seed_is_a_seed_and_true_is_not():
    assert rbd.TrainConfig(seed=np.int64(7)).seed == 7 and type(rbd.TrainConfig(seed=np.int64(7)).seed) is int
    with pytest.raises(rbd.InvalidInputError, match="seed"):
        rbd.TrainConfig(seed=True)


@pytest.mark.parametrize("settings, message", [
    ({"image_size": 256.0}, "image_size must be a whole number, got 256.0"),
    ({"embed_dim": True}, "embed_dim must be a whole number"),
    ({"blur_sigma": "4"}, "blur_sigma must be a number"),
    ({"layers": (1, "2", 3)}, "layers must be a list of whole numbers"),
    ({"decoder_widths": ()}, "decoder_widths must be a list of whole numbers"),
    ({"backbone": None, "score_rule": 1}, "backbone must be a string, got None; score_rule must be a string"),
])
def test_model_settings_of_the_wrong_kind_are_refused_up_front(settings, message):
    with pytest.raises(rbd.InvalidInputError, match=message):
        rbd.ModelConfig(**settings)
    assert rbd.ModelConfig(blur_sigma=4, max_aspect=2).blur_sigma == 4  # a whole number is a number


@pytest.mark.parametrize("settings, message", [({"image_size": 1024 * 1024}, "image_size must be at most 1024"),
                                               ({"max_aspect": 1000}, "max_aspect must be from 1 to 16"),
                                               ({"max_aspect": 0.5}, "max_aspect must be from 1 to 16")])
def test_model_inputs_past_any_machines_memory_are_refused(settings, message):
    """A 1048576 px short side, or a 1024 x 1024000 strip, ended in an allocation failure's traceback."""
    with pytest.raises(rbd.InvalidInputError, match=message):
        rbd.ModelConfig(**settings)


def test_fine_tuning_starts_from_the_given_detector(detector, category):
    """One step from the trained detector stays close to it; one step from scratch does not."""
    folder = category / "train" / "good"
    before = torch.cat([p.detach().flatten() for p in detector.model.student.parameters()]).clone()
    tuned = rbd.train(folder, config=rbd.TrainConfig(epochs=1, learning_rate=1e-5, **FAST), start_from=detector)
    fresh = rbd.train(folder, rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=1, learning_rate=1e-5, **FAST))
    assert tuned.config == detector.config
    flat = lambda d: torch.cat([p.detach().flatten() for p in d.model.student.parameters()])  # noqa: E731
    assert (flat(tuned) - before).norm() < 0.05 * (flat(fresh) - before).norm()
    torch.testing.assert_close(flat(detector), before)  # the original is left untouched


def test_the_map_is_less_its_normal_level_by_distance_from_the_edge(detector):
    from rbd.anomaly_map import edge_bands

    model = detector.model
    teacher = model.features(torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0)))
    parts = model.distances_from_features(teacher)
    without = copy.deepcopy(model)
    without.config = dataclasses.replace(model.config, edge_bands=0)
    expected = without.combine(*parts, (64, 96)) - model.edge_profile[edge_bands(64, 96, model.config.edge_bands, torch.device("cpu"))]
    torch.testing.assert_close(model.combine(*parts, (64, 96)), expected)
    assert model.edge_profile.abs().max() > 0.05  # learned: the tiny model's maps have a level by distance


def test_a_fine_tune_learns_the_edge_level_of_its_maps_again_not_of_maps_already_less_one(detector, category):
    """One tiny step leaves the maps about as they were, so their level by distance from the edge is learned again about
    as it was (a fine-tune's model starts with none: `train` takes the start's student alone). The same images held out
    as the detector's (its holdout_fraction): with others, the level is learned from other maps, 0.054 away on one CPU."""
    tuned = rbd.train(category / "train" / "good", config=rbd.TrainConfig(epochs=1, learning_rate=1e-6, holdout_fraction=0.4,
                                                                        **FAST), start_from=detector)
    torch.testing.assert_close(tuned.model.edge_profile, detector.model.edge_profile, atol=0.05, rtol=0)


def test_background_training_streams_progress_and_returns_the_detector(category):
    job = BackgroundTraining(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=2, **FAST))
    steps = [p.step for p in job.updates()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert job.result().training["steps"] == 6


def test_leaving_the_progress_loop_cancels_background_training(category):
    job = BackgroundTraining(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), rbd.TrainConfig(epochs=500, **FAST))
    for progress in job.updates():
        if progress.step == 2:
            break
    with pytest.raises(rbd.TrainingCancelled):
        job.result()
    assert not job._thread.is_alive()


def test_the_time_kept_for_calibration_is_for_the_images_it_scores():
    """A set of 5 is calibrated on 5 images and 5 synthetic defects: keeping time for 30 left most of a short
    budget unused (1 step of a 30-second budget). A large set keeps the time of the full calibration."""
    from rbd.train import MAX_CALIBRATION_IMAGES, MAX_SYNTHETIC_IMAGES, finish_s

    assert finish_s(1.0, 1, 4) == 2 * (1 + 5) + 0.75 * 4
    assert finish_s(1.0, 20, 5000) == 2 * (20 + MAX_SYNTHETIC_IMAGES) + 0.75 * (MAX_CALIBRATION_IMAGES - 20)
