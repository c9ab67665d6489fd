"""Evaluation on MVTec-layout folders: metrics agree with the metrics module, layouts are checked."""

import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

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
    flagged = [r["label"] for r in result.rows if r["verdict"] == "defective"]
    assert result.threshold == detector.threshold
    assert result.false_alarm_rate == flagged.count(0) / 5 and result.recall == flagged.count(1) / 5


def test_another_threshold_moves_the_verdicts_and_their_rates_not_the_ranking(detector, category):
    lenient = rbd.evaluate(detector, category, threshold=-1e9)
    assert lenient.threshold == -1e9 and lenient.false_alarm_rate == lenient.recall == 1.0
    assert {r["verdict"] for r in lenient.rows} == {"defective"}
    assert lenient.image_auroc == rbd.evaluate(detector, category).image_auroc


def test_the_misranked_are_the_highest_scoring_good_and_lowest_scoring_defective_images(detector, category):
    result = rbd.evaluate(detector, category)
    good, defective = result.misranked(2)
    assert [r["score"] for r in good] == sorted((r["score"] for r in result.rows if r["label"] == 0), reverse=True)[:2]
    assert [r["score"] for r in defective] == sorted(r["score"] for r in result.rows if r["label"] == 1)[:2]
    good, defective = result.misranked()
    assert len(good) == len(defective) == 5  # all there are: the category holds five of each


def test_ranked_wrong_against_counts_the_other_kinds_images_on_the_wrong_side():
    rows = [{"file": f, "label": label, "score": score} for f, label, score in
            (("g1", 0, 0.1), ("g2", 0, 0.5), ("g3", 0, 0.9), ("d1", 1, 0.4), ("d2", 1, 0.9), ("d3", 1, 2.0))]
    result = rbd.Evaluation(image_auroc=6.5 / 9, pixel_auroc=None, aupro=None, image_f1max=0.0, threshold=1.0, false_alarm_rate=0.0,
                            recall=0.0, n_images=6, ms_per_image=1.0, rows=rows)
    wrong = {row["file"]: result.ranked_wrong_against(row) for row in rows}
    assert wrong == {"g1": 0, "g2": 1, "g3": 2, "d1": 2, "d2": 1, "d3": 0}  # a tie is ranked wrong (g3 and d2)
    # image AUROC is the share of (good, defective) pairs ranked right; these count the wrong ones, ties whole
    assert sum(wrong[f] for f in ("g1", "g2", "g3")) == sum(wrong[f] for f in ("d1", "d2", "d3")) == 3


def test_an_evaluation_picture_outlines_the_truth_mask_on_the_heat_map(detector, category):
    from PIL import Image

    from rbd.visualize import OUTLINE, overlay

    good, defective = rbd.evaluate(detector, category).misranked(1)
    row = defective[0]
    picture = rbd.evaluation_picture(detector, category, row["file"])
    truth = np.asarray(Image.open(category / "ground_truth" / "hole" / (row["file"].split("/")[-1][:-4] + "_mask.png"))) > 127
    drawn = (picture == OUTLINE).all(axis=-1)
    assert drawn.any() and not (drawn & ~truth).any()  # the outline lies on the truth mask's edge, inside it
    assert drawn.sum() < truth.sum()  # an outline, not the filled mask
    image = np.asarray(Image.open(category / good[0]["file"]).convert("RGB"))
    expected = overlay(image, detector.predict(image).anomaly_map, detector.calibration, detector.threshold)
    np.testing.assert_array_equal(rbd.evaluation_picture(detector, category, good[0]["file"]), expected)  # no mask: nothing drawn
    lenient = rbd.evaluation_picture(detector, category, good[0]["file"], threshold=-1e9)
    assert not np.array_equal(lenient, expected)  # the heat map's colours follow the threshold
    with pytest.raises(rbd.NoImagesError, match="missing.png: no such file"):  # a file that cannot be read is named
        rbd.evaluation_picture(detector, category, "test/good/missing.png")


def test_without_masks_pixel_metrics_are_none(detector, category, tmp_path):
    copy = shutil.copytree(category, tmp_path / "nomasks")
    shutil.rmtree(copy / "ground_truth")
    result = rbd.evaluate(detector, copy)
    assert result.pixel_auroc is None and result.aupro is None and result.image_auroc is not None
    assert result.summary()["pixel_auroc"] is None


def test_good_test_images_unlike_the_training_images_are_said_to_make_the_metrics_say_little(detector, category, tmp_path):
    """A test set of another product (weld under a bottle model) gave an AUROC of 0.44 without a word."""
    copy = shutil.copytree(category, tmp_path / "other")
    yy, xx = np.mgrid[:64, :80]
    Image.fromarray((((yy // 8 + xx // 8) % 2) * 255).astype(np.uint8)).save(copy / "test" / "good" / "checkers.png")  # no striped part
    with pytest.warns(UserWarning, match=r"1 of the \d+ good test image\(s\) look unlike the model's training images "
                                         r"\(test/good/checkers.png\): their scores say little$"):
        rbd.evaluate(detector, copy)
    for good in (copy / "test" / "good").glob("*.png"):  # every good image another product's: the set is not the model's
        if good.name != "checkers.png":
            shutil.copy(copy / "test" / "good" / "checkers.png", good)
    with pytest.warns(UserWarning, match=r"the set shows another product than the model learned"):
        rbd.evaluate(detector, copy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own test set: no such notice
        rbd.evaluate(detector, category)


def test_layout_errors(detector, category, tmp_path):
    with pytest.raises(rbd.DatasetLayoutError, match="not an MVTec AD category"):
        rbd.evaluate(detector, tmp_path)
    only_good = shutil.copytree(category, tmp_path / "only_good")
    shutil.rmtree(only_good / "test" / "hole")
    with pytest.raises(rbd.DatasetLayoutError, match="no defect folder"):
        mvtec_test_set(only_good)
    only_defects = shutil.copytree(category, tmp_path / "only_defects")
    shutil.rmtree(only_defects / "test" / "good")
    with pytest.raises(rbd.DatasetLayoutError, match=r"only_defects/test has no good/ folder: evaluation needs good test images"):
        mvtec_test_set(only_defects)  # it was "not an MVTec AD category", as if the folder held none


def test_training_folder_prefers_train_good(category, tmp_path):
    assert training_folder(category) == category / "train" / "good"
    assert training_folder(tmp_path) == tmp_path
    layout = shutil.copytree(category, tmp_path / "no_train_good", ignore=shutil.ignore_patterns("train"))
    with pytest.raises(rbd.DatasetLayoutError, match="test/ or ground_truth/ folders but no train/good/"):
        training_folder(layout)  # searched whole, it would train on the test defects and masks


@pytest.mark.parametrize("inside, holds", [("test", "test images, defects among them"), ("ground_truth", "masks, not images of parts"),
                                           ("test/hole", "test images, defects among them"), ("ground_truth/hole", "masks, not images"),
                                           ("test/good", "the normal images it is evaluated on"), ("TEST", "test images")])
def test_a_categorys_test_or_ground_truth_folder_given_as_data_is_not_trained_on(category, inside, holds, monkeypatch, tmp_path):
    """`rbd train .../weld/test` trained on its 72 defects as normal, and `.../ground_truth` on the masks."""
    if inside == "TEST":  # a file system that ignores case (macOS, Windows) names it so too
        category = shutil.copytree(category, tmp_path / category.name)
        (category / "test").rename(category / "TEST")
    with pytest.raises(rbd.DatasetLayoutError, match=rf"is {inside}/ of the MVTec category {category}, which holds {holds}"
                                                     rf".*: train on {category} \(its train/good/\)"):
        training_folder(category / inside)
    monkeypatch.chdir(category / inside)
    with pytest.raises(rbd.DatasetLayoutError, match=holds):
        training_folder(".")  # named relatively too
    assert training_folder(category / "train" / "good") == category / "train" / "good"  # its normal images, as before
    with pytest.raises(rbd.NoImagesError, match=r"nothing is not a folder"):
        training_folder(category / "nothing")  # said before anything is trained


def test_a_layout_named_in_another_case_is_the_same_layout(category, tmp_path):
    """`Train/Good`, `Test/`, `Ground_Truth/` (made on macOS or Windows, which ignore case): on Linux the whole folder,
    test defects and masks among them, was trained on as normal, without a word."""
    from rbd.datasets import normal_uploads, training_images
    from rbd.notices import collect

    named = shutil.copytree(category, tmp_path / "Part")
    for old, new in (("train/good", "train/Good"), ("train", "Train"), ("test", "Test"), ("ground_truth", "Ground_Truth")):
        (named / old).rename(named / new)
    assert training_folder(named) == named / "Train" / "Good"
    assert [p.name for p in training_images(named)] == [p.name for p in training_images(category)]
    with collect() as notes:  # in an upload, or a folder of categories
        assert [p.parent for p in normal_uploads(sorted(named.rglob("*.png")), tmp_path)] == [named / "Train" / "Good"] * len(
            training_images(category))
    assert len(notes) == 1 and "left out" in notes[0]
    shutil.rmtree(named / "Train")
    with pytest.raises(rbd.DatasetLayoutError, match="Part has test/ or ground_truth/ folders but no train/good/"):
        training_folder(named)
    with pytest.raises(rbd.DatasetLayoutError, match="Part has test/ or ground_truth/ folders but no train/good/"):
        normal_uploads(sorted(named.rglob("*.png")), tmp_path)
    with pytest.raises(rbd.DatasetLayoutError, match="is Test/ of the MVTec category .*: it has no train/good/: copy"):
        training_folder(named / "Test")  # a test set alone: its defects were trained on
    own = shutil.copytree(category / "train" / "good", tmp_path / "mine" / "test")  # a user's folder named test, without
    (tmp_path / "mine" / "ground_truth").mkdir()                                     # good/, beside an unrelated one
    assert training_folder(own) == own
    with pytest.raises(rbd.DatasetLayoutError, match="is Test/ of the MVTec category .*: train on .*Part \\(its train/good/\\)"):
        shutil.copytree(category / "train", named / "Train")
        training_folder(named / "Test")



def test_a_category_named_in_another_case_is_evaluated_as_it_is_trained(detector, category, tmp_path):
    """Train/Good trained, Test/ and Ground_Truth/ refused by evaluate ("not an MVTec AD category"); on a case-blind
    disk a test/Good folder was found, and its images labelled defective (their defect's name was "Good")."""
    from rbd.uploads import find_mvtec_root

    named = shutil.copytree(category, tmp_path / "zip" / "Part")
    for old, new in (("test/good", "test/Good"), ("test", "Test"), ("ground_truth", "Ground_Truth")):
        (named / old).rename(named / new)
    assert find_mvtec_root(tmp_path / "zip") == named  # as the Evaluate tab finds it in a zip
    items = mvtec_test_set(named)
    assert sorted((i.path.relative_to(named / "Test").as_posix(), i.is_anomalous, i.mask_path is not None) for i in items) == sorted(
        (i.path.relative_to(category / "test").as_posix().replace("good/", "Good/"), i.is_anomalous, i.mask_path is not None)
        for i in mvtec_test_set(category))
    assert rbd.evaluate(detector, named).summary() | {"ms_per_image": 0} == rbd.evaluate(detector, category).summary() | {"ms_per_image": 0}
    picture = rbd.evaluation_picture(detector, named, next(i for i in items if i.is_anomalous).path.relative_to(named).as_posix())
    assert picture.ndim == 3


def test_an_uploads_mvtec_categories_give_their_train_good_images_only(tmp_path):
    """Fine-tuning on an upload: `training_folder`'s rule for every category in it, wherever it lies."""
    from rbd.datasets import normal_uploads
    from rbd.notices import collect

    a, b, c, d, loose, named_test = _files(tmp_path, "line.zip/part/train/good/a.png", "line.zip/part/test/hole/b.png",
                                           "line.zip/part/ground_truth/hole/b_mask.png", "line.zip/part/test/good/d.png",
                                           "loose.png", "test/e.png")
    with collect() as notes:
        assert normal_uploads([a, b, c, d, loose, named_test], tmp_path) == [a, loose, named_test]  # "test": a picked folder's name
    assert notes == ["3 image(s) of MVTec-layout test/ and ground_truth/ folders left out: only a category's "
                     "train/good images are normal training data"]
    with collect() as notes:
        assert normal_uploads([a, loose], tmp_path) == [a, loose] and notes == []
    from rbd.outputs import marked, png_bytes

    overlay = tmp_path / "loose_overlay.png"  # uploaded loose beside its image, an earlier prediction is no normal image
    overlay.write_bytes(marked(png_bytes(np.zeros((4, 4, 3), np.uint8)), "overlay", tmp_path, overlay.name))
    with collect() as notes:
        assert normal_uploads([loose, overlay], tmp_path) == [loose]
    assert notes == ["left out 1 picture(s) rbd wrote (loose_overlay.png): heat maps and masks are results, not normal images"]
    no_train = _files(tmp_path, "other/part2/test/good/f.png")
    with pytest.raises(rbd.DatasetLayoutError, match=r"other/part2 has test/ or ground_truth/ folders but no train/good/"):
        normal_uploads([a, *no_train], tmp_path)  # searched whole, it would train on the defects


def test_training_on_a_folder_of_categories_takes_their_train_good_images_only(tmp_path):
    """`rbd.train(folder)` and `rbd train` alike: a folder of MVTec categories (a dataset's root) is no folder of
    normal images; its test images and masks were trained on as normal ones."""
    from rbd.datasets import training_images
    from rbd.notices import collect

    good = _files(tmp_path, "root/bottle/train/good/0.png", "root/cable/train/good/1.png")
    _files(tmp_path, "root/bottle/test/broken/2.png", "root/bottle/ground_truth/broken/2_mask.png", "root/cable/test/good/3.png")
    for path in (*good, tmp_path / "root/bottle/test/broken/2.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    with collect() as notes:
        assert training_images(tmp_path / "root") == good and len(notes) == 1
    assert training_images(tmp_path / "root" / "bottle") == good[:1]  # a category: its train/good, as before
    shutil.rmtree(tmp_path / "root" / "bottle" / "train")
    with pytest.raises(rbd.DatasetLayoutError, match="bottle has test/ or ground_truth/ folders but no train/good/"):
        training_images(tmp_path / "root")  # a category without normal images: its defects are not trained on either


def test_nested_categories_give_each_image_to_the_innermost(tmp_path):
    """A category inside another (a line's folder with lots of its own): the answer must not hang on set order."""
    from rbd.datasets import normal_images

    a, b, c = _files(tmp_path, "train/good/a.png", "lot2/train/good/b.png", "lot2/test/crack/c.png")
    assert normal_images([a, b, c], tmp_path) == [a, b]


def _files(root, *names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    return [root / name for name in names]


@pytest.mark.parametrize("bad", [2, 5])  # some masks, or every defect's
def test_unusable_masks_cost_the_pixel_metrics_with_a_notice_and_no_image(detector, category, tmp_path, bad):
    from PIL import Image

    copy = shutil.copytree(category, tmp_path / "badmask")
    masks = sorted((copy / "ground_truth" / "hole").iterdir())
    for mask in masks[:bad]:
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(mask)
    masks[1].write_bytes(b"not a png")
    with pytest.warns(UserWarning, match=rf"{bad} unusable mask\(s\): pixel metrics skipped .*mask is 5x5.*not an image"):
        result = rbd.evaluate(detector, copy)
    assert result.n_images == 10 and result.pixel_auroc is None and result.aupro is None
    assert result.image_auroc == rbd.evaluate(detector, category).image_auroc  # the images ranked as with good masks


def test_unreadable_classes_are_a_layout_error(detector, category, tmp_path):
    copy = shutil.copytree(category, tmp_path / "broken")
    for path in (copy / "test" / "hole").iterdir():
        path.write_bytes(b"\x89PNG truncated")
    with pytest.warns(UserWarning, match=r"skipped 5 unreadable file\(s\)"), pytest.raises(rbd.DatasetLayoutError, match="all of one class"):
        rbd.evaluate(detector, copy)


def test_a_huge_test_image_is_scored_downscaled_and_its_mask_shrunk(detector, category, tmp_path):
    from PIL import Image

    from rbd.images import MAX_SIDE

    copy = shutil.copytree(category, tmp_path / "huge")
    image = Image.open(copy / "test" / "hole" / "000.png").resize((MAX_SIDE * 5 // 4, MAX_SIDE), Image.Resampling.NEAREST)
    image.save(copy / "test" / "hole" / "000.png")
    mask = Image.open(copy / "ground_truth" / "hole" / "000_mask.png").resize(image.size, Image.Resampling.NEAREST)
    mask.save(copy / "ground_truth" / "hole" / "000_mask.png")
    with pytest.warns(UserWarning, match="000.png is 5120x4096: downscaled to 4096x3277"):
        result = rbd.evaluate(detector, copy)
    assert result.n_images == 10 and result.pixel_auroc > 0.5
    with warnings.catch_warnings():  # its picture (--misranked, the app's gallery) is drawn without a second notice
        warnings.simplefilter("error")
        assert rbd.evaluation_picture(detector, copy, "test/hole/000.png").shape[:2] == (3277, 4096)


@pytest.mark.parametrize("write", ["0/1", "16-bit", "green", "rgba", "white, alpha", "grey, alpha", "black, alpha",
                                   "rgba, margin", "rgba, all hidden", "palette, transparent white", "rgb, transparent white",
                                   "grey, transparent black"])
def test_masks_read_alike_whatever_their_values_or_colours(detector, category, tmp_path, write):
    """A mask marks a pixel defective where any colour channel is above 0: 0/1 masks from numpy, 16-bit
    masks and coloured masks give the pixel metrics of the 0/255 masks, not an empty truth; a mask whose
    alpha channel hides some pixels (an editor's layer: white or black everywhere, the strokes in the alpha
    channel) marks the pixels it shows, not the whole image."""
    from PIL import Image

    reference = rbd.evaluate(detector, category)
    copy = shutil.copytree(category, tmp_path / write)
    for path in (copy / "ground_truth").rglob("*_mask.png"):
        defect = np.asarray(Image.open(path).convert("L")) > 0
        if write == "0/1":
            Image.fromarray(defect.astype(np.uint8)).save(path)
        elif write == "16-bit":
            Image.fromarray(defect.astype(np.uint16) * 255).save(path)
        elif write.endswith("alpha"):
            colour = {"white": 255, "grey": 255, "black": 0}[write.split(",")[0]]
            layers = [np.full(defect.shape, colour, np.uint8)] * (1 if write.startswith("grey") else 3)
            Image.fromarray(np.dstack([*layers, defect.astype(np.uint8) * 200])).save(path)
        elif "transparent" in write:  # red strokes on white, white the PNG's transparent colour (tRNS): read as all defect
            if write.startswith("palette"):
                picture = Image.fromarray(defect.astype(np.uint8), "P")
                picture.putpalette([255, 255, 255, 255, 0, 0])
                picture.save(path, transparency=0)
            elif write.startswith("grey"):  # white strokes on a transparent black
                Image.fromarray(defect.astype(np.uint8) * 255).save(path, transparency=0)
            else:
                colour = np.full((*defect.shape, 3), 255, np.uint8)
                colour[defect] = (255, 0, 0)
                Image.fromarray(colour).save(path, transparency=(255, 255, 255))
        else:
            colour = np.zeros((*defect.shape, 4 if write.startswith("rgba") else 3), np.uint8)
            colour[defect, 1] = 255
            if write.startswith("rgba"):  # opaque; a transparent margin of a black background; or every pixel hidden
                colour[..., 3] = {"rgba": 255, "rgba, margin": 255, "rgba, all hidden": 0}[write]
                if write == "rgba, margin":
                    colour[:, :2, 3] = 0
            Image.fromarray(colour).save(path)
    result = rbd.evaluate(detector, copy)
    assert reference.pixel_auroc is not None
    assert (result.pixel_auroc, result.aupro) == (reference.pixel_auroc, reference.aupro)


def test_a_palette_masks_transparency_in_bytes_is_read_without_pillows_advice(tmp_path):
    """Pillow warns that such a palette "should be converted to RGBA": the command line printed it to the user."""
    from rbd.datasets import read_truth_mask

    defect = np.zeros((8, 12), bool)
    defect[2:4, 3:9] = True
    picture = Image.fromarray(defect.astype(np.uint8) + 1, "P")  # 1: white, transparent; 2: red, half shown
    picture.putpalette([0, 0, 0, 255, 255, 255, 255, 0, 0])
    picture.save(tmp_path / "000_mask.png", transparency=bytes([255, 0, 128]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_truth_mask(tmp_path / "000_mask.png"), defect)
    from rbd.images import to_rgb_array

    given = Image.open(tmp_path / "000_mask.png")  # a caller's own PIL image is read as it is, and left as it was
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(to_rgb_array(given)[..., 1] == 0, defect)  # red: no green
    assert given.mode == "P" and given.info["transparency"] == bytes([255, 0, 128])


def test_a_mask_only_tifffile_reads_is_read_by_its_colours(tmp_path):
    """A float colour TIFF under a mask's .png name: Pillow cannot open it, and its alpha is not looked for."""
    import tifffile

    from rbd.datasets import read_truth_mask

    mask = np.zeros((8, 12, 3), np.float32)
    mask[2:4, 3:9] = 1.0
    tifffile.imwrite(tmp_path / "000_mask.png", mask, photometric="rgb")
    np.testing.assert_array_equal(read_truth_mask(tmp_path / "000_mask.png"), mask.max(axis=-1) > 0)


def test_a_mask_once_saved_as_jpeg_reads_as_its_strokes_and_faint_masks_keep_every_label(tmp_path):
    """JPEG's noise around a stroke (faint values a few pixels out) is no defect; a label mask's class 1 is one."""
    import io

    from rbd.datasets import read_truth_mask

    defect = np.zeros((64, 64), bool)
    defect[20:36, 10:50] = True
    encoded = io.BytesIO()
    Image.fromarray(defect.astype(np.uint8) * 255).save(encoded, "JPEG", quality=75)
    noisy = np.asarray(Image.open(encoded))
    assert ((noisy > 0) & ~defect).sum() > 50  # the noise "above 0" read as defect
    Image.fromarray(noisy).save(tmp_path / "jpeg_mask.png")
    np.testing.assert_array_equal(read_truth_mask(tmp_path / "jpeg_mask.png"), defect)
    labels = np.zeros((64, 64), np.uint8)
    labels[2:6, 2:6], labels[20:30, 20:30], labels[40:50, 40:50] = 1, 2, 3
    Image.fromarray(labels).save(tmp_path / "label_mask.png")
    np.testing.assert_array_equal(read_truth_mask(tmp_path / "label_mask.png"), labels > 0)


@pytest.mark.parametrize("stroke", [(1, 1, 1), (100, 0, 0)])
def test_a_masks_hidden_margin_does_not_set_how_bright_its_strokes_must_be(tmp_path, stroke):
    """A white margin an alpha channel hides made a 0/1 mask, or dark red strokes, read as no defect at all."""
    from rbd.datasets import read_truth_mask

    defect = np.zeros((16, 20), bool)
    defect[4:8, 5:12] = True
    rgba = np.zeros((16, 20, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[defect, :3] = stroke
    rgba[:, :2] = (255, 255, 255, 0)  # hidden
    Image.fromarray(rgba).save(tmp_path / "000_mask.png")
    np.testing.assert_array_equal(read_truth_mask(tmp_path / "000_mask.png"), defect)


def test_a_hairline_defect_of_a_huge_image_stays_one_region_at_the_scored_size():
    from rbd.evaluate import _at_size
    from scipy import ndimage

    mask = np.zeros((500, 6000), bool)
    mask[480, 100:5900] = True  # one pixel high: keeping every n-th row would drop it
    mask[np.arange(50, 450), np.arange(1000, 1400)] = True  # a diagonal scratch: it would break apart
    shrunk = _at_size(mask, (341, 4096))
    labels, count = ndimage.label(shrunk, structure=np.ones((3, 3)))
    assert count == 2 and shrunk.any(axis=1).sum() >= 270  # both kept, each whole


def test_a_hidden_folder_under_test_is_no_defect(detector, category, tmp_path):
    copy = shutil.copytree(category, tmp_path / "hidden")
    shutil.copytree(copy / "test" / "good", copy / "test" / ".thumbnails")
    assert {item.defect for item in mvtec_test_set(copy)} == {"good", "hole"}
    assert rbd.evaluate(detector, copy).n_images == 10


@pytest.mark.parametrize("truth", ["mirrored", "flat"])
def test_a_defect_folder_may_hold_folders_whose_masks_mirror_them_or_lie_flat(detector, category, tmp_path, truth):
    reference = rbd.evaluate(detector, category)
    copy = shutil.copytree(category, tmp_path / truth)
    hole, masks = copy / "test" / "hole", copy / "ground_truth" / "hole"
    (hole / "lot1").mkdir()
    for path in sorted(hole.glob("*.png"))[:2]:
        path.rename(hole / "lot1" / path.name)
        if truth == "mirrored":
            (masks / "lot1").mkdir(exist_ok=True)
            (masks / f"{path.stem}_mask.png").rename(masks / "lot1" / f"{path.stem}_mask.png")
    items = [item for item in mvtec_test_set(copy) if item.path.parent.name == "lot1"]
    assert len(items) == 2 and all(item.defect == "hole" and item.mask_path.name == f"{item.path.stem}_mask.png" for item in items)
    result = rbd.evaluate(detector, copy)
    assert (result.pixel_auroc, result.aupro) == (reference.pixel_auroc, reference.aupro)


def test_masks_are_found_in_any_case_as_test_images_are(detector, category, tmp_path):
    """`000_mask.PNG` (a camera's or a Windows tool's upper case): the masks were not found and the pixel metrics dropped."""
    reference = rbd.evaluate(detector, category)
    copy = shutil.copytree(category, tmp_path / "upper")
    masks = sorted((copy / "ground_truth" / "hole").glob("*_mask.png"))
    for path in masks:
        path.rename(path.with_name(path.stem.upper() + ".PNG"))
    items = [item for item in mvtec_test_set(copy) if item.is_anomalous]
    assert sorted(item.mask_path.name for item in items) == sorted(path.stem.upper() + ".PNG" for path in masks)
    result = rbd.evaluate(detector, copy)
    assert (result.pixel_auroc, result.aupro) == (reference.pixel_auroc, reference.aupro)
    hole, masks = copy / "test" / "hole", copy / "ground_truth" / "hole"
    first, second = sorted(hole.glob("*.png"))[:2]
    shutil.copy(second, hole / ("X" + first.name))  # Xnnn.png and xnnn.png, each with its own mask by its exact name
    shutil.copy(second, hole / ("x" + first.name))
    for stem in ("X", "x"):
        shutil.copy(masks / (second.stem.upper() + "_MASK.PNG"), masks / f"{stem}{first.stem}_mask.png")
    (masks / (first.stem.upper() + "_MASK.PNG")).rename(masks / f"{first.stem}_Mask.png")  # two that fit another case
    shutil.copy(masks / f"{first.stem}_Mask.png", masks / f"{first.stem}_MASK.png")
    with pytest.warns(UserWarning, match=f"no mask taken for ground_truth/hole/{first.stem}_mask.png .{first.stem}_MASK.png, "
                                         f"{first.stem}_Mask.png.: several files have the mask's name in other cases"):
        found = {item.path.name: item.mask_path for item in mvtec_test_set(copy)}
    assert found["X" + first.name] == masks / f"X{first.stem}_mask.png" and found["x" + first.name] == masks / f"x{first.stem}_mask.png"
    assert found[first.name] is None
    (masks / f"X{first.stem}_mask.png").unlink()  # Xnnn's gone: xnnn's, its name in another case, is xnnn's own
    with pytest.warns(UserWarning):
        assert {item.path.name: item.mask_path for item in mvtec_test_set(copy)}["X" + first.name] is None


def test_masks_are_found_where_the_defect_folder_is_named_in_another_case(detector, category, tmp_path):
    """`test/Hole` beside `ground_truth/hole` (a set zipped where case is ignored): no mask was found, and the pixel
    metrics were dropped."""
    reference = rbd.evaluate(detector, category)
    copy = shutil.copytree(category, tmp_path / "cased")
    (copy / "test" / "hole").rename(copy / "test" / "Hole")
    items = [item for item in mvtec_test_set(copy) if item.is_anomalous]
    assert items and all(item.mask_path is not None and item.mask_path.parent == copy / "ground_truth" / "hole" for item in items)
    result = rbd.evaluate(detector, copy)
    assert (result.pixel_auroc, result.aupro) == (reference.pixel_auroc, reference.aupro)


def test_a_mask_that_fits_several_test_images_is_none_of_theirs(detector, category, tmp_path):
    """A flat mask also fits an image of its name in a sub-folder, and a mirrored one two images of one stem:
    such an image would be judged against another image's truth."""
    copy = shutil.copytree(category, tmp_path / "clash")
    hole = copy / "test" / "hole"
    first = sorted(hole.glob("*.png"))[0]
    (hole / "lot1").mkdir()
    shutil.copy(sorted(hole.glob("*.png"))[1], hole / "lot1" / first.name)  # another defect, under the first's name, no mask
    with pytest.warns(UserWarning, match=f"no mask for test/hole/lot1/{first.name} \\(ground_truth/hole/{first.stem}_mask.png\\)"):
        items = {item.path.relative_to(copy).as_posix(): item.mask_path for item in mvtec_test_set(copy)}
    assert items[f"test/hole/{first.name}"] == copy / "ground_truth" / "hole" / f"{first.stem}_mask.png"  # its own: kept
    assert items[f"test/hole/lot1/{first.name}"] is None
    with pytest.warns(UserWarning, match="pixel metrics skipped"):
        assert rbd.evaluate(detector, copy).pixel_auroc is None
    with warnings.catch_warnings(record=True) as notes:  # a picture of each misranked image: no notice again
        warnings.simplefilter("always")
        rbd.evaluation_picture(detector, copy, f"test/hole/{first.name}")
    assert notes == []
    (hole / "lot1" / first.name).unlink()
    Image.open(first).save(first.with_suffix(".jpg"))  # 000.png beside 000.jpg: the mask fits both
    with pytest.warns(UserWarning, match=f"no mask for test/hole/{first.stem}.jpg .*, test/hole/{first.name} "):
        items = {item.path.name: item.mask_path for item in mvtec_test_set(copy)}
    assert items[first.name] is None and items[first.with_suffix(".jpg").name] is None
    for old, new in (("test", "Test"), ("ground_truth", "Ground_Truth")):  # named in another case: the same notice, no crash
        (copy / old).rename(copy / new)
    with pytest.warns(UserWarning, match=f"no mask for Test/hole/{first.stem}.jpg .*, Test/hole/{first.name} \\(Ground_Truth/"):
        items = {item.path.name: item.mask_path for item in mvtec_test_set(copy)}
    assert items[first.name] is None and items[first.with_suffix(".jpg").name] is None


def test_defective_images_without_a_mask_are_named_and_an_unreadable_one_costs_nothing(detector, category, tmp_path):
    copy = shutil.copytree(category, tmp_path / "unmasked")
    (copy / "ground_truth" / "hole" / "001_mask.png").unlink()
    with pytest.warns(UserWarning, match=r"1 defective image\(s\) have no mask \(test/hole/001.png; a mask is named "
                                         r"ground_truth/<defect>/<name>_mask.png\): pixel metrics skipped"):
        assert rbd.evaluate(detector, copy).pixel_auroc is None
    (copy / "test" / "hole" / "001.png").write_bytes(b"not an image")  # skipped by scoring: the others keep their metrics
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file"):
        result = rbd.evaluate(detector, copy)
    assert result.n_images == 9 and result.pixel_auroc is not None and result.aupro is not None


def test_masks_without_a_defect_pixel_are_said_to_leave_no_pixel_metrics(detector, category, tmp_path):
    from PIL import Image

    copy = shutil.copytree(category, tmp_path / "empty")
    for path in (copy / "ground_truth").rglob("*_mask.png"):
        Image.fromarray(np.zeros(Image.open(path).size[::-1], np.uint8)).save(path)
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        result = rbd.evaluate(detector, copy)
    said = [str(note.message) for note in notes if "empty" in str(note.message)]
    assert len(said) == 1 and said[0].startswith("every defective image's mask is empty (no defect pixel)"), said
    assert result.pixel_auroc is None and result.image_auroc is not None


def test_a_defective_images_empty_mask_is_named(detector, category, tmp_path):
    """Its hot defect pixels counted as false alarms in the pixel metrics without a word."""
    from PIL import Image

    copy = shutil.copytree(category, tmp_path / "one empty")
    path = sorted((copy / "ground_truth").rglob("*_mask.png"))[0]
    Image.fromarray(np.zeros(Image.open(path).size[::-1], np.uint8)).save(path)
    with pytest.warns(UserWarning, match=rf"1 defective image\(s\) have an empty mask \(no defect pixel; "
                                         rf"{path.relative_to(copy).as_posix()}\): their pixels count as normal"):
        result = rbd.evaluate(detector, copy)
    assert result.pixel_auroc is not None


def test_masks_named_otherwise_are_said_to_be_unmatched(detector, category, tmp_path):
    copy = shutil.copytree(category, tmp_path / "renamed")
    for path in (copy / "ground_truth").rglob("*_mask.png"):
        path.rename(path.with_name(path.name.replace("_mask", "")))
    with pytest.warns(UserWarning, match=r"no file in ground_truth/ is named as a mask of a test image \(for test/hole/000.png: "
                                         r"ground_truth/hole/000_mask.png\): pixel metrics skipped"):
        result = rbd.evaluate(detector, copy)
    assert result.pixel_auroc is None and result.image_auroc is not None


@pytest.mark.parametrize("where", ["test/ground_truth", "beside"])
def test_masks_put_under_test_are_not_scored_as_defective_images(detector, category, tmp_path, where):
    """A ground_truth/ folder moved into test/ was a defect type of its own, and masks beside their images
    (`test/hole/000_mask.png`) were defective test images: more images, a wrong recall, no word."""
    reference = rbd.evaluate(detector, category)
    copy = shutil.copytree(category, tmp_path / "moved")
    if where == "beside":
        for mask in (copy / "ground_truth" / "hole").iterdir():
            mask.rename(copy / "test" / "hole" / mask.name)
        shutil.rmtree(copy / "ground_truth")
    else:
        (copy / "ground_truth").rename(copy / "test" / "ground_truth")
    with pytest.warns(UserWarning, match=r"masks under test/ are not test images, and are not scored: test/"):
        result = rbd.evaluate(detector, copy)
    assert result.n_images == reference.n_images == 10 and result.image_auroc == reference.image_auroc
    assert result.recall == reference.recall and result.pixel_auroc is None


def test_a_good_images_mask_that_marks_defect_pixels_is_said_and_not_used(detector, category, tmp_path):
    reference = rbd.evaluate(detector, category)
    copy = shutil.copytree(category, tmp_path / "marked")
    good = sorted((copy / "test" / "good").iterdir())
    (copy / "ground_truth" / "good").mkdir()
    Image.fromarray(np.zeros(Image.open(good[0]).size[::-1], np.uint8)).save(copy / "ground_truth" / "good" / f"{good[0].stem}_mask.png")
    Image.fromarray(np.full(Image.open(good[1]).size[::-1], 255, np.uint8)).save(copy / "ground_truth" / "good" / f"{good[1].stem}_mask.png")
    with pytest.warns(UserWarning, match=rf"1 good image\(s\) have a mask that marks defect pixels, not used: a good image has none "
                                         rf"\(ground_truth/good/{good[1].stem}_mask.png\)"):
        result = rbd.evaluate(detector, copy)
    assert (result.pixel_auroc, result.aupro) == (reference.pixel_auroc, reference.aupro)
    file = good[1].relative_to(copy).as_posix()  # nor outlined on its picture
    np.testing.assert_array_equal(rbd.evaluation_picture(detector, copy, file), rbd.evaluation_picture(detector, category, file))


def test_a_good_images_unusable_mask_is_said_and_costs_nothing(detector, category, tmp_path):
    """A good image's mask is never used: one of the wrong size, even all black, switched the whole set's pixel metrics off."""
    reference = rbd.evaluate(detector, category)
    copy = shutil.copytree(category, tmp_path / "small_mask")
    good = sorted((copy / "test" / "good").iterdir())
    (copy / "ground_truth" / "good").mkdir()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(copy / "ground_truth" / "good" / f"{good[0].stem}_mask.png")
    (copy / "ground_truth" / "good" / f"{good[1].stem}_mask.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match=r"2 good image\(s\) have an unusable mask, not used: a good image has no defect pixel "
                                         r"\(.*mask is 10x10 but its image is"):
        result = rbd.evaluate(detector, copy)
    assert reference.pixel_auroc is not None and (result.pixel_auroc, result.aupro) == (reference.pixel_auroc, reference.aupro)


def test_an_evaluation_picture_is_of_a_test_image_named_as_a_row_or_by_its_absolute_path(detector, category, monkeypatch):
    row = rbd.evaluate(detector, category).rows[0]
    by_row = rbd.evaluation_picture(detector, category, row["file"])
    np.testing.assert_array_equal(rbd.evaluation_picture(detector, category, str(category / row["file"])), by_row)
    monkeypatch.chdir(category)
    np.testing.assert_array_equal(rbd.evaluation_picture(detector, ".", str(category / row["file"])), by_row)
    for outside in ("ground_truth/hole/000_mask.png", "../elsewhere.png"):
        with pytest.raises(rbd.InvalidInputError, match=f"{outside} is not a test image of {category.name}: a row's file"):
            rbd.evaluation_picture(detector, ".", outside)


def test_a_truth_value_is_no_threshold(detector, category):
    with pytest.raises(rbd.InvalidInputError, match="a threshold must be a number"):
        rbd.evaluate(detector, category, threshold=True)
