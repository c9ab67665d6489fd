"""Inference: any image kind and size in, map at the image's size out; thresholds without re-running."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

import rbd
from rbd.detector import Prediction
from rbd.images import mask_at_size


@pytest.fixture(scope="module")
def part(category):
    return np.asarray(Image.open(sorted((category / "test" / "hole").iterdir())[0]))  # uint8 grey


def test_map_comes_back_at_the_image_size(detector, part):
    for shape in [(64, 80), (50, 170), (170, 50), (7, 9), (300, 240)]:
        image = np.asarray(Image.fromarray(part).resize(shape[::-1]))
        prediction = detector.predict(image)
        assert prediction.anomaly_map.shape == shape and prediction.anomaly_map.dtype == np.float32
        assert prediction.mask.shape == shape


def test_image_kinds_agree(detector, part, tmp_path):
    """Grey, RGB, RGBA, 16-bit and EXIF-rotated versions of one picture score the same."""
    grey = Image.fromarray(part)
    reference = detector.predict(grey).score
    variants = {
        "rgb": grey.convert("RGB"),
        "rgba": grey.convert("RGBA"),
        "uint16": (part.astype(np.uint16) * 257),
        "float": part.astype(np.float32) / 255,
    }
    rotated = grey.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": undoes the counter-clockwise rotation above
    rotated.save(tmp_path / "rotated.png", exif=exif)
    variants["exif_file"] = tmp_path / "rotated.png"
    Image.fromarray(part.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    variants["uint16_file"] = tmp_path / "sixteen.png"
    variants["int64"] = part.astype(np.int64)  # np.array(picture, dtype=int): read as 16-bit, nearly black, before
    variants["list"] = part.tolist()
    variants["dir_entry"] = next(e for e in os.scandir(tmp_path) if e.name == "sixteen.png")  # any os.PathLike names a file
    for name, image in variants.items():
        assert detector.predict(image).score == pytest.approx(reference, abs=1e-3), name


def test_defect_is_found_where_it_is(detector, category):
    path = sorted((category / "test" / "hole").iterdir())[0]
    truth = np.asarray(Image.open(category / "ground_truth" / "hole" / f"{path.stem}_mask.png")) > 0
    prediction = detector.predict(path)
    assert prediction.is_anomalous and prediction.verdict == "defective"
    assert prediction.normalized_score > 0.5
    y, x = np.unravel_index(prediction.anomaly_map.argmax(), truth.shape)
    assert ndimage.binary_dilation(truth, iterations=4)[y, x]
    assert prediction.regions() and (prediction.mask & truth).any()


def test_normal_part_passes(detector, parts):
    prediction = detector.predict(parts[0][0])
    assert prediction.verdict == "good" and prediction.normalized_score < 0.5
    assert not prediction.mask.any() and prediction.regions() == []


def test_batch_equals_one_by_one(detector, category):
    paths = sorted((category / "test").rglob("*.png"))[:6]
    batch = detector.predict_batch(paths, batch_size=4)
    for path, prediction in zip(paths, batch):
        single = detector.predict(path)
        assert prediction.score == pytest.approx(single.score, abs=1e-3)
        np.testing.assert_allclose(prediction.anomaly_map, single.anomaly_map, atol=1e-3)


def test_a_cpu_pass_holds_at_most_the_pixel_budget_and_gives_the_same_predictions(detector, category, monkeypatch):
    """Large inputs go through the network fewer at a time than `batch_size` on a CPU (their blocks
    stay where the allocator reuses memory); the chunking changes no prediction."""
    paths = sorted((category / "test").rglob("*.png"))[:5]
    height, width = detector.config.fit(*rbd.images.read_image(paths[0]).shape[:2]).input  # the set's one input shape
    whole = detector.predict_batch(paths, batch_size=8)

    class Counting:
        def __init__(self, network):
            self.network, self.config, self.device, self.batches = network, network.config, network.device, []

        def __call__(self, batch):
            self.batches.append(batch.shape[0])
            return self.network(batch)

    monkeypatch.setattr(rbd.detector, "MAX_CPU_BATCH_PIXELS", 2 * height * width + 1)  # two inputs a pass
    monkeypatch.setattr(detector, "network", Counting(detector.network))
    chunked = detector.predict_batch(paths, batch_size=8)
    assert detector.network.batches == [2, 2, 1]
    for a, b in zip(whole, chunked):
        assert a.score == pytest.approx(b.score, abs=1e-5)
        np.testing.assert_allclose(a.anomaly_map, b.anomaly_map, atol=1e-5)


def test_one_image_where_several_are_expected_and_a_bad_batch_size_are_refused(detector, category):
    """A path's characters, or an array's rows, were scored as images; a batch size of 0 passed on a CPU."""
    path = sorted((category / "test" / "good").iterdir())[0]
    image = np.asarray(Image.open(path).convert("RGB"))
    entry = next(e for e in os.scandir(path.parent) if e.name == path.name)  # any os.PathLike (a bare TypeError before)
    for one in (str(path), path, entry, image, Image.open(path)):
        with pytest.raises(rbd.InvalidInputError, match="predict_batch takes a list of images .*not one image: use predict"):
            detector.predict_batch(one)
    stacked = detector.predict_batch(np.stack([image, image]))  # a 4-D array: one image per first index
    assert len(stacked) == 2 and stacked[0].score == pytest.approx(detector.predict(image).score, abs=1e-5)
    grey = detector.predict_batch(np.stack([image[..., 0]] * 5))  # a stack of grey images, (N, H, W): N images
    assert len(grey) == 5 and grey[0].score == pytest.approx(detector.predict(image[..., 0]).score, abs=1e-5)
    for size in (0, -1, 2.5, True):
        with pytest.raises(rbd.InvalidInputError, match="batch size must be a whole number, at least 1"):
            detector.predict_batch([image], batch_size=size)
    folder = [p for p, _, _ in rbd.predict_files(detector, category / "test" / "good")]  # a folder: its images
    assert folder == sorted((category / "test" / "good").iterdir())
    assert [p for p, _, _ in rbd.predict_files(detector, str(path))] == [path]  # one file
    mixed = [p for p, _, _ in rbd.predict_files(detector, [str(path), category / "test" / "good"])]  # a folder among files
    assert mixed == [path, *folder]
    with pytest.warns(UserWarning, match="skipped 1 unreadable file"):  # a name too long to look up: skipped, as before
        assert [p for p, _, _ in rbd.predict_files(detector, [str(path.parent / ("x" * 300 + ".png")), path])] == [path]


def test_small_slips_through_the_api_are_named(detector, category, tmp_path):
    """Each of these ended in a bare error deep in numpy, torch or PIL, or a silently odd result."""
    from rbd.images import file_shape

    with pytest.raises(rbd.ImageReadError, match="missing.png: no such file"):
        file_shape(tmp_path / "missing.png")  # "corrupt or truncated" before
    with pytest.raises(rbd.ImageReadError, match="is a folder, not an image file"):
        detector.predict(tmp_path)
    with pytest.raises(rbd.InvalidInputError, match="max_side must be a whole number of pixels"):
        list(rbd.predict_files(detector, sorted((category / "test" / "good").iterdir())[:1], max_side=-5))
    for settings in (dict(batch_size=2.5), dict(epochs="1"), dict(max_minutes="10")):
        with pytest.raises(rbd.InvalidInputError, match="invalid training settings: .* must be a"):
            rbd.TrainConfig(**settings)
    with pytest.raises(ValueError, match="one number per image"):
        rbd.calibrate([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="found NaN"):
        rbd.calibrate([1.0, 2.0, 3.0], synthetic_scores=[float("nan")])  # counted as caught
    evaluation = rbd.evaluate(detector, category)
    with pytest.raises(rbd.InvalidInputError, match="misranked takes a count"):
        evaluation.misranked(-1)
    assert evaluation.misranked(np.int64(1)) == evaluation.misranked(1)  # a numpy count is a count
    assert rbd.calibrate([1.0, 2.0, 3.0], synthetic_scores=(s for s in [5.0, float("inf")])).synthetic_catch_rate == 1.0
    assert rbd.TrainConfig(epochs=np.int64(2), batch_size=np.int64(4), max_minutes=np.float32(1)).epochs.__class__ is int


def test_a_nan_or_infinite_threshold_is_refused_everywhere(detector, category):
    """NaN or -inf judged every image defective, every pixel in the mask, and a false-alarm rate of 1; +inf none,
    and no checkpoint may hold it."""
    prediction = detector.predict(sorted((category / "test" / "good").iterdir())[0])
    with pytest.raises(rbd.InvalidInputError, match="a threshold must be a finite number .*NaN"):
        detector.rethreshold(prediction, float("nan"))
    for bad in (float("nan"), float("-inf"), np.inf, "seven", None):
        with pytest.raises(rbd.InvalidInputError, match="a threshold must be a (finite )?number"):
            detector.threshold = bad
    with pytest.raises(rbd.InvalidInputError, match="NaN"):
        rbd.evaluate(detector, category, threshold=float("nan"))
    with pytest.raises(rbd.InvalidInputError, match="got -inf"):
        rbd.evaluate(detector, category, threshold="-inf")
    detector.threshold = "7.5"  # a number as text, as a form gives it
    assert detector.threshold == 7.5 and detector.rethreshold(prediction).threshold == 7.5
    detector.threshold = detector.calibration.threshold


def test_rethreshold_moves_verdict_and_mask_without_the_network(detector, category, monkeypatch):
    prediction = detector.predict(sorted((category / "test" / "hole").iterdir())[0])

    def fail(*args, **kwargs):
        raise AssertionError("the network ran")

    monkeypatch.setattr(detector.model, "forward", fail)
    strict = detector.rethreshold(prediction, prediction.score + 1e-6)
    loose = detector.rethreshold(prediction, float(prediction.anomaly_map.min()))
    assert not strict.is_anomalous and not strict.mask.any() and strict.normalized_score < 0.5
    assert loose.is_anomalous and loose.mask.all() and loose.normalized_score > 0.5
    at = detector.rethreshold(prediction, prediction.score)
    assert at.is_anomalous and at.normalized_score == pytest.approx(0.5)


def test_a_tensor_empty_folder_or_bad_item_where_several_are_expected_are_named(detector, category, tmp_path):
    """One torch tensor was cut into its rows (or channels), each scored as an image; an empty folder said "no usable image
    among 0 file(s)"; arrays given to predict_files, None anywhere: bare TypeErrors; a NaN array among several unnamed."""
    import torch

    image = np.asarray(Image.open(sorted((category / "test" / "good").iterdir())[0]).convert("RGB"))
    for one in (torch.from_numpy(image.copy()), torch.from_numpy(image.copy()).permute(2, 0, 1)[:, :, :4], None):
        with pytest.raises(rbd.InvalidInputError, match="predict_batch takes a list of images"):
            detector.predict_batch(one)
    with pytest.raises(rbd.InvalidInputError, match=r"not one \(C, H, W\) tensor: pass a list of \(H, W, C\) images"):
        detector.predict_batch(torch.from_numpy(image.copy()).permute(2, 0, 1))  # torch's image layout, whole
    files = sorted(str(path) for path in (category / "test" / "good").iterdir())[:2]
    for listed in (np.array(files), np.array(files, dtype=object)):  # a column of paths (a pandas Series is one): a list
        assert [path for path, _, _ in rbd.predict_files(detector, listed)] == [Path(path) for path in files]
        assert len(detector.predict_batch(listed)) == 2
    stacked = detector.predict_batch(torch.from_numpy(np.stack([image, image])))
    assert len(stacked) == 2 and stacked[0].score == pytest.approx(detector.predict(image).score, abs=1e-5)
    with pytest.raises(rbd.ImageReadError, match=r"^image 1 of 3 \(counting from 0\): "):
        detector.predict_batch([image, np.full(image.shape, np.nan), image])
    (tmp_path / "empty").mkdir()
    with pytest.raises(rbd.NoImagesError, match=r"^no image files \(\.png, .*\) in .*empty$"):
        list(rbd.predict_files(detector, tmp_path / "empty"))
    with pytest.raises(rbd.InvalidInputError, match=r"predict_files takes image files and folders, got ndarray"):
        list(rbd.predict_files(detector, [image]))
    with pytest.raises(rbd.InvalidInputError, match="predict_files takes a list of images, got NoneType"):
        list(rbd.predict_files(detector, None))


def test_judging_by_another_calibration_shares_the_network_and_saves_as_it_judges(detector, category, tmp_path):
    """The app's download and Hub push of a model recalibrated by a review, at the bar's threshold (ui.fine_tune.as_judged)."""
    import dataclasses

    other = dataclasses.replace(detector.calibration, threshold=detector.calibration.threshold + 1.0, scale=2 * detector.calibration.scale)
    judged = detector.judging_by(other, other.threshold + 0.5)
    assert judged.network is detector.network and judged.calibration is other and judged.threshold == other.threshold + 0.5
    assert detector.calibration is not other and detector.threshold == detector.calibration.threshold  # the original is untouched
    image = sorted((category / "test" / "hole").iterdir())[0]
    prediction, own = judged.predict(image), detector.predict(image)
    assert prediction.score == own.score and prediction.threshold == other.threshold + 0.5
    assert prediction.normalized_score == pytest.approx(other.normalize(own.score, other.threshold + 0.5))
    rbd.save(judged, tmp_path / "judged")
    loaded = rbd.load(tmp_path / "judged")
    assert loaded.threshold == pytest.approx(judged.threshold) and loaded.calibration.scale == pytest.approx(other.scale)


def test_regions_are_the_connected_parts_of_the_mask():
    amap = np.zeros((20, 30), np.float32)
    amap[2:5, 3:9] = 0.8   # 18 pixels
    amap[10:12, 20:22] = 0.9  # 4 pixels
    amap[11, 22] = 0.7  # touches the square diagonally? no: same row, adjacent -> joins it
    amap[15, 0] = 0.6  # one pixel
    prediction = Prediction(score=0.9, normalized_score=0.9, threshold=0.5, anomaly_map=amap)
    regions = prediction.regions()
    assert [r.area for r in regions] == [18, 5, 1]
    assert regions[0].box == (3, 2, 9, 5) and regions[0].max_score == pytest.approx(0.8)
    assert regions[1].box == (20, 10, 23, 12) and regions[1].max_score == pytest.approx(0.9)
    assert regions[2].box == (0, 15, 1, 16)
    for smaller in ((10, 30), (20, 7)):  # a shrunk mask loses regions (an area of 0) or cuts them
        with pytest.raises(rbd.InvalidInputError, match=r"takes the image file's \(height, width\).*got \(\d+, \d+\)"):
            prediction.regions(smaller)
    for wrong in ((40, 60, 3), (40.0, 60.0)):  # an image's shape, or floats: numpy's errors before
        with pytest.raises(rbd.InvalidInputError, match=r"takes the image file's \(height, width\) in whole pixels"):
            prediction.regions(wrong)
    assert prediction.regions((np.int64(40), 60))  # numpy's whole numbers are whole numbers



@pytest.mark.parametrize("size", [(20, 30), (61, 97), (200, 300), (45, 31)])
def test_regions_at_the_file_size_are_those_of_the_mask_laid_on_the_file(size):
    """An image over MAX_SIDE is scored on a downscaled copy: its regions, told at the file's size,
    are the connected parts of the mask that `mask_at_size` lays on the file (what a review exports),
    in the same order as at the scored size."""
    amap = np.zeros((20, 30), np.float32)
    amap[2:5, 3:9] = 0.8
    amap[10:12, 20:22] = 0.9
    amap[11, 22] = 0.7
    amap[15, 0] = amap[19, 29] = 0.6
    prediction = Prediction(score=0.9, normalized_score=0.9, threshold=0.5, anomaly_map=amap)
    laid = mask_at_size(prediction.mask, size)
    labels, count = ndimage.label(laid, structure=np.ones((3, 3)))
    expected = {(int((labels == k).sum()), (xs.start, ys.start, xs.stop, ys.stop))
                for k, (ys, xs) in enumerate(ndimage.find_objects(labels), start=1)}
    at_file = prediction.regions(size)
    assert count == 4 and {(r.area, r.box) for r in at_file} == expected
    assert [r.max_score for r in at_file] == [r.max_score for r in prediction.regions()]  # region k is the same region

def test_a_defective_image_always_has_a_mask():
    """The memory's half of the score can make a verdict no pixel of the map reaches: the mask then
    marks the map's hottest 1 %, not nothing; a good image still gets no mask."""
    amap = np.zeros((40, 50), np.float32)  # 2000 pixels: the hottest 1 % are 20
    amap[30:34, 10:15] = np.arange(20, dtype=np.float32).reshape(4, 5) / 100 + 0.3  # 0.30-0.49, all below 0.5
    defective = Prediction(score=0.6, normalized_score=0.6, threshold=0.5, anomaly_map=amap)
    assert defective.is_anomalous and defective.mask.sum() == 20 and defective.mask[30:34, 10:15].all()
    assert [r.box for r in defective.regions()] == [(10, 30, 15, 34)]
    good = Prediction(score=0.4, normalized_score=0.4, threshold=0.5, anomaly_map=amap)
    assert not good.mask.any()
    amap[31, 11] = 0.7  # a pixel at the threshold: the mask is the threshold's again
    assert Prediction(score=0.6, normalized_score=0.6, threshold=0.5, anomaly_map=amap).mask.sum() == 1


def test_predictions_compare_and_hash_as_objects():
    """A Prediction holds its map as an array: a field-wise == asked numpy for the truth of an array and raised, and
    hash() raised on the array. Two predictions are the same only when they are one object; both go into a set."""
    amap = np.zeros((4, 4), np.float32)
    first, second = (Prediction(score=0.9, normalized_score=0.9, threshold=0.5, anomaly_map=amap) for _ in range(2))
    assert first == first and first != second
    assert len({first, second, first}) == 2 and {first: "a"}[first] == "a"


def test_unreadable_inputs_are_clear_errors(detector, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(rbd.ImageReadError, match="notes.png"):
        detector.predict(tmp_path / "notes.png")
    with pytest.raises(rbd.ImageReadError):
        detector.predict(np.zeros((4, 4, 5)))


def test_predict_files_streams_batches_and_skips_unreadable_files(detector, category, tmp_path):
    import rbd

    paths = sorted((category / "test").rglob("*.png"))[:5]
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    seen = []
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file\(s\): .*junk.png"):
        results = list(rbd.predict_files(detector, paths[:2] + [junk] + paths[2:], batch_size=2,
                                         progress=lambda done, total: seen.append((done, total))))
    assert seen == [(2, 6), (4, 6), (6, 6)]
    assert [path for path, _, _ in results] == paths
    for (path, image, prediction), single in zip(results, detector.predict_batch(paths)):
        assert image.shape == (64, 80, 3) and prediction.score == pytest.approx(single.score, abs=1e-4)


def test_a_file_past_max_side_is_scored_by_predict_as_predict_files_and_training_read_it(detector, tmp_path):
    """Its threshold was calibrated on files read so: a full-size read judged a 5000 px strip by another score."""
    from PIL import Image

    import rbd
    from rbd.images import MAX_SIDE

    rng = np.random.default_rng(3)
    path = tmp_path / "strip.png"
    Image.fromarray((rng.random((40, MAX_SIDE + 904, 3)) * 255).astype(np.uint8)).save(path)
    with pytest.warns(UserWarning, match=r"strip.png is 5000x40: downscaled to 4096x"):
        single = detector.predict(path)
    with pytest.warns(UserWarning, match="downscaled"):
        [(_, image, streamed)] = list(rbd.predict_files(detector, [path]))
    assert single.anomaly_map.shape == image.shape[:2] == (33, 4096) and single.score == pytest.approx(streamed.score, abs=1e-5)


def test_an_image_of_another_product_is_out_of_domain(detector, parts):
    """Striped parts are what the model knows; a checkerboard of bright and dark squares is not."""
    good, _ = parts  # (at this tiny model's 64 px every feature sees the whole part, so a defect changes them all)
    assert not detector.predict(good[0]).out_of_domain and detector.predict(good[0]).familiarity > 0.8
    yy, xx = np.mgrid[:64, :80]
    checkerboard = (((yy // 8) + (xx // 8)) % 2).astype(np.float32)
    other = detector.predict(np.stack([checkerboard, 1 - checkerboard, checkerboard], axis=-1))
    assert other.out_of_domain and other.familiarity < 0.25
    assert detector.rethreshold(other, 0.0).familiarity == other.familiarity


def test_a_model_without_memory_never_claims_out_of_domain(detector, parts):
    import copy
    import dataclasses

    plain = copy.deepcopy(detector)
    plain.model.memory = None
    plain.model.config = dataclasses.replace(plain.config, memory_size=0, score_from="map")
    prediction = plain.predict(parts[0][0])
    assert prediction.familiarity is None and not prediction.out_of_domain
