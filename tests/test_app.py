"""The app's API, driven by gradio_client against a server launched in-process on a free port.

Every named endpoint is called and its returned values and files are checked. The model is the
session's tiny detector, offered to the app as its only "shipped" checkpoint. Thresholds are set
as expected false-alarm rates in % (the model's own is 0.1%).
"""

import csv
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import rbd
import rbd.detector
from rbd import review
from rbd.evaluate import SUMMARY_NAMES
from rbd.review import ReviewSession
from rbd.thresholds import threshold_at

MODEL_RATE = 0.1  # % : the session detector is calibrated for 0.1% false alarms


def shown(gallery) -> list:
    """The gallery's items (the review sends an update that also marks the current image)."""
    return gallery["value"] if isinstance(gallery, dict) else gallery


@pytest.fixture
def client(app_server, tmp_path):
    c = Client(app_server[0], verbose=False, download_files=str(tmp_path / "downloads"))
    yield c
    c.close()


def test_every_action_is_a_named_endpoint(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/load_model", "/reset_threshold", "/inspect", "/rethreshold", "/review_score", "/review_list", "/review_new",
            "/review_rescore", "/review_accept", "/review_reject", "/review_edit", "/review_save_mask", "/review_previous",
            "/review_next", "/review_export", "/review_recalibrate", "/review_rethreshold", "/fine_tune", "/cancel_training",
            "/share_model", "/push_to_hub", "/evaluate", "/evaluate_rethreshold", "/upload_model"} <= names


def test_load_model_reports_the_rate_and_raw_threshold(client, app_server, detector):
    key = str(app_server[1] / "shipped" / "stripes")
    rate, info, *_ = client.predict(key, "", "", "", api_name="/load_model")
    assert rate == pytest.approx(MODEL_RATE)
    assert "stripes" in info and f"raw threshold {detector.threshold:.4f}" in info and "0.1% expected false alarms" in info


def test_inspect_scores_and_draws(client, parts, detector, tmp_path):
    good, bad = parts
    same_name = shutil.copy(good[0], tmp_path / bad[0].name)
    choices, table, summary, overlay, pair, annotated, regions, mask = client.predict(
        None, [handle_file(str(same_name)), handle_file(str(bad[0]))], MODEL_RATE, 0.5, api_name="/inspect")
    (bad_row, good_row) = table["data"]  # most anomalous first; the second "000.png" (uploaded second) was renamed
    assert table["headers"] == ["image", "verdict", "score", "normalised", "out of domain"]  # as the README's example says
    assert good_row[1] == "good" and bad_row[1] == "defective"
    assert bad_row[2] == pytest.approx(detector.predict(bad[0]).score, abs=1e-3)
    assert [c[0] for c in choices["choices"]] == ["000_1.png", "000.png"]
    assert "DEFECTIVE" in summary and f"raw threshold {detector.threshold:.4f}" in summary  # the first row in detail
    shown = np.asarray(Image.open(overlay))
    assert shown.shape[:2] == (64, 80)
    assert len(pair) == 2 and np.asarray(Image.open(pair[0])).shape[:2] == (64, 80)
    assert [a["label"] for a in annotated["annotations"]][-1] == "defect"  # drawn last, over the regions' boxes
    assert Path(mask).name == "000_1_mask.png"  # the first row's, by the name it was listed under
    np.testing.assert_array_equal(np.asarray(Image.open(mask)) > 0, detector.predict(bad[0]).mask)
    *_, annotated, _, _ = client.predict(None, [handle_file(str(good[0]))], MODEL_RATE, 0.5, api_name="/inspect")
    assert annotated["annotations"] == []  # a good image: an empty mask, and no "defect" in the legend


def test_the_same_file_dropped_twice_is_scored_once(client, parts, monkeypatch, tmp_path):
    good, bad = parts
    first, defect, second = (shutil.copy(p, tmp_path / name) for p, name in ((good[0], "a.png"), (bad[0], "b.png"), (good[1], "c.png")))
    files = [handle_file(str(p)) for p in (first, defect, first, defect)]  # a second drop adds the same files
    _, table, summary, *_ = client.predict(None, files, MODEL_RATE, 0.5, api_name="/inspect")
    assert sorted(row[0] for row in table["data"]) == ["a.png", "b.png"]  # each file once
    assert "same bytes" not in summary  # a second drop of one file needs no word

    calls = []
    real = rbd.detector.score_images
    monkeypatch.setattr(rbd.detector, "score_images", lambda model, images, *a, **k: calls.append(len(images)) or real(model, images, *a, **k))
    _, table, *_ = client.predict(None, files + [handle_file(str(second))], MODEL_RATE, 0.5, api_name="/inspect")
    assert sorted(row[0] for row in table["data"]) == ["a.png", "b.png", "c.png"]
    scores = [row[2] for row in table["data"]]
    first = table["data"][0]
    assert scores == sorted(scores, reverse=True) and (first[0], first[1]) == ("b.png", "defective")  # most anomalous first
    assert calls == [1]  # only the new file ran through the network

    copy = shutil.copy(good[0], tmp_path / "a copy.png")  # the same bytes under another name: said, not lost silently
    _, table, summary, *_ = client.predict(None, [handle_file(str(tmp_path / "a.png")), handle_file(str(copy))], MODEL_RATE, 0.5,
                                           api_name="/inspect")
    assert [row[0] for row in table["data"]] == ["a copy.png"]  # the upload's first name for them, held before as a.png
    assert "a copy.png and a.png hold the same bytes: taken once" in summary


def test_threshold_moves_verdicts_without_rerunning(client, parts, monkeypatch):
    good, bad = parts
    upload = [handle_file(str(bad[0]))]
    client.predict(None, upload, MODEL_RATE, 0.5, api_name="/inspect")

    def network(*args, **kwargs):
        raise AssertionError("the network ran")

    monkeypatch.setattr(rbd.detector, "score_images", network)  # the server runs in this process
    _, table, summary, *_ = client.predict(None, upload, 0, 0.01, 0.5, api_name="/rethreshold")
    assert table["data"][0][1] == "defective"
    _, table, summary, *_ = client.predict(None, upload, 0, 30, 0.5, api_name="/rethreshold")
    assert table["data"][0][1] == "defective"
    strict = client.predict(None, upload, 0, 0.01, 0.5, api_name="/rethreshold")[2]
    loose = client.predict(None, upload, 0, 30, 0.5, api_name="/rethreshold")[2]
    assert strict != loose  # the raw threshold shown moves with the rate


def test_reset_goes_back_to_the_models_threshold(client):
    rate, info = client.predict(api_name="/reset_threshold")
    assert rate == pytest.approx(MODEL_RATE) and "0.1% expected false alarms" in info


def test_bad_uploads_are_clear_messages_naming_the_files(client, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image at all")
    with pytest.raises(Exception, match="no image files"):
        client.predict(None, [handle_file(str(tmp_path / "notes.txt"))], 1, 0.5, api_name="/inspect")
    for name in ("broken.png", "empty.png", "text.png"):
        for image, files in ((handle_file(str(tmp_path / name)), None), (None, [handle_file(str(tmp_path / name))])):
            with pytest.raises(Exception, match=f"no usable image among 1 file\\(s\\): {name}: ") as raised:
                client.predict(image, files, 1, 0.5, api_name="/inspect")
            assert "/" not in str(raised.value), "a server path in the message"
    with pytest.raises(Exception, match="upload an image"):
        client.predict(None, None, 1, 0.5, api_name="/inspect")


def test_a_zip_of_non_images_names_no_server_path(client, tmp_path):
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("notes/readme.txt", "hello")
    with pytest.raises(Exception, match="no image files") as raised:
        client.predict([handle_file(str(archive))], None, "zip-of-text", api_name="/review_score")
    assert str(tmp_path) not in str(raised.value) and "/work/" not in str(raised.value)


def test_huge_image_is_scored_downscaled_with_a_notice(client, tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (10000, 10000), 128).save(path)
    _, _, summary, overlay, *_ = client.predict(None, [handle_file(str(path))], 1, 0.5, api_name="/inspect")
    assert "10000x10000" in summary and "downscaled" in summary
    assert Image.open(overlay).size == (1024, 1024)  # scored at 4096 x 4096, drawn at every 4th pixel


def test_long_strips_are_folded_for_display(client, tmp_path):
    path = tmp_path / "seam.png"
    Image.fromarray((np.random.default_rng(0).random((50, 2000)) * 255).astype(np.uint8)).save(path)
    _, _, _, overlay, pair, annotated, *_ = client.predict(None, [handle_file(str(path))], 1, 0.5, api_name="/inspect")
    for picture in (overlay, pair[0], pair[1], annotated["image"]):
        width, height = Image.open(picture).size
        assert width / height <= 4 and width * height >= 2000 * 50  # a block, every pixel kept


def test_zip_with_traversal_names_never_writes_outside(client, app_server, parts, tmp_path):
    good, _ = parts
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(good[0], "nested/deeper/a.png")
        z.writestr(zipfile.ZipInfo("../escape.png"), good[1].read_bytes())
        z.writestr(zipfile.ZipInfo("/abs/escape.png"), good[2].read_bytes())
        z.writestr("readme.txt", "not an image")
    _, table, *_ = client.predict(None, [handle_file(str(archive))], 1, 0.5, api_name="/inspect")
    assert [row[0] for row in table["data"]] == ["upload/nested/deeper/a.png"]  # its path in the upload
    root = app_server[1]
    assert not list(root.parent.rglob("escape.png")) and not (root / "work" / "escape.png").exists()
    assert not list(root.parent.rglob("abs")), "an absolute member name was recreated somewhere"


def test_uploads_do_not_pile_up(client, app_server, parts):
    client.predict(None, [handle_file(str(parts[0][0]))], 1, 0.5, api_name="/inspect")
    assert list((app_server[1] / "work" / "uploads").iterdir()) == []


def test_a_review_decision_goes_to_the_image_the_page_shows_not_the_cursors(client, parts):
    """A held arrow key moved the cursor past the view the page still drew, and `a` decided the cursor's image. The
    image shown travels with the press (a hidden component's value is the page's; a gr.State's is the server's)."""
    good, bad = parts
    session = "test-session-shown"
    client.predict([handle_file(str(p)) for p in good[:2] + bad[:2]], None, session, api_name="/review_score")
    *_, on_screen = client.predict(session, MODEL_RATE, "all", api_name="/review_list")
    for _ in range(2):  # the cursor two images ahead of the page, as after a held key
        *_, ahead = client.predict(session, MODEL_RATE, "all", api_name="/review_next")
    assert ahead != on_screen
    gallery, text, *_ = client.predict(session, MODEL_RATE, "all", on_screen, api_name="/review_accept")
    assert "2 / 4" in text  # on from the image the page showed (1 / 4), not from the cursor's (3 / 4)
    captions = [item["caption"] for item in shown(gallery)]
    assert "✓ accepted" in captions[0] and not any("✓" in caption for caption in captions[1:]), captions


def test_review_flow_persists_and_exports(client, app_server, parts, detector, tmp_path):
    good, bad = parts
    session = "test-session-1"
    files = [handle_file(str(p)) for p in good[:2] + bad[:2]]
    session_out, status = client.predict(files, None, session, api_name="/review_score")
    assert session_out == session and "4 in this review" in status
    gallery, text, image, metrics, scored_by, editor, on_screen = client.predict(session, MODEL_RATE, "all", api_name="/review_list")
    assert len(shown(gallery)) == 4 and "1 / 4" in text and "scored by **stripes**" in scored_by
    captions = [item["caption"].split("\n") for item in shown(gallery)]
    scores = [float(re.search(r"\d+\.\d+", caption[1])[0]) for caption in captions]  # after a ⚠ out of domain, if any
    assert scores == sorted(scores, reverse=True)  # most anomalous first
    assert len({caption[0] for caption in captions}) == 4 and all(c[0].endswith(".png") for c in captions)  # the file names

    gallery, text, image, metrics, *_ = client.predict(session, MODEL_RATE, "all", api_name="/review_accept")
    assert "Reviewed **1** of 4" in metrics and "2 / 4" in text  # moved on to the next image
    assert "✓ accepted" in shown(gallery)[0]["caption"]
    gallery, text, image, metrics, *_ = client.predict(session, MODEL_RATE, "all", api_name="/review_reject")
    assert "Reviewed **2** of 4" in metrics and "3 / 4" in text
    gallery, text, *_ = client.predict(session, MODEL_RATE, "all", api_name="/review_previous")
    assert "2 / 4" in text and "decision: **reject**" in text
    gallery, text, *_ = client.predict(session, MODEL_RATE, "all", api_name="/review_previous")
    assert "1 / 4" in text and "decision: **accept**" in text

    update = client.predict(session, MODEL_RATE, api_name="/review_edit")
    assert update["visible"] is True
    editor = update["value"]
    predicted = np.asarray(Image.open(editor["layers"][0]))[..., 3] > 0
    fresh = rbd.load(app_server[1] / "shipped" / "stripes").predict(Image.open(editor["background"]).convert("L")).mask
    assert fresh.any() and (predicted == fresh).mean() > 0.99  # the model's mask (maps are stored as float16)
    painted = np.zeros((64, 80, 4), np.uint8)
    painted[5:15, 5:25] = (255, 0, 0, 255)
    Image.fromarray(painted).save(tmp_path / "layer.png")
    client.predict({"background": handle_file(editor["background"]), "layers": [handle_file(str(tmp_path / "layer.png"))], "composite": None},
                   session, MODEL_RATE, "all", api_name="/review_save_mask")
    with pytest.raises(Exception, match="press Edit mask"):  # saved once: the editor is closed
        client.predict({"background": handle_file(editor["background"]), "layers": [handle_file(str(tmp_path / "layer.png"))],
                        "composite": None}, session, MODEL_RATE, "all", api_name="/review_save_mask")

    # a restarted app (new objects on the same folder) resumes the same session
    resumed = ReviewSession.open(app_server[1] / "work" / "reviews", session)
    decisions = [resumed.decision(int(i)) for i in review.ordered(resumed, "all")]
    assert [d.decision if d else None for d in decisions][:2] == ["correct", "reject"]

    exported = client.predict(session, MODEL_RATE, api_name="/review_export")
    with zipfile.ZipFile(exported) as z:
        rows = list(csv.DictReader(io.StringIO(z.read("decisions.csv").decode())))
        coco = json.loads(z.read("coco.json"))
        names = z.namelist()
    assert {r["decision"] for r in rows} == {"correct", "reject", ""}
    assert any(n.startswith("masks/") for n in names) and coco["annotations"]

    # the rejected part is out of this tiny model's domain, so no normal image is reviewed yet: a good part accepted
    client.predict(session, MODEL_RATE, "all", api_name="/review_next")
    _, text, *_ = client.predict(session, MODEL_RATE, "all", api_name="/review_next")
    assert "3 / 4" in text and "model says **good**" in text
    client.predict(session, MODEL_RATE, "all", api_name="/review_accept")
    # applied even where it would flag no synthetic defect (the warning itself: test_ui.py)
    rate, info, *_ = client.predict(session, MODEL_RATE, api_name="/review_recalibrate_anyway")  # at the bar's rate
    recalibrated = review.recalibrated(ReviewSession.open(app_server[1] / "work" / "reviews", session))
    assert rate == pytest.approx(MODEL_RATE)
    assert f"raw threshold {recalibrated.threshold:.4f}" in info and "recalibrated" in info  # the model line follows
    *_, metrics, _, _ = client.predict(session, MODEL_RATE, "all", api_name="/review_list")
    assert f"at raw threshold {recalibrated.threshold:.4f}" in metrics  # and so does the review


def test_an_empty_filter_says_so_and_keeps_no_position_past_its_end(client, parts):
    good, bad = parts
    session = "filters"
    client.predict([handle_file(str(p)) for p in good[:3] + bad[:1]], None, session, api_name="/review_score")
    client.predict(session, MODEL_RATE, "all", api_name="/review_list")
    for _ in range(3):
        client.predict(session, MODEL_RATE, "all", api_name="/review_next")
    _, text, *_ = client.predict(session, MODEL_RATE, "defective", api_name="/review_rethreshold")
    assert "1 / 1" in text  # the fourth place of "all" does not exist here
    for _ in range(4):
        client.predict(session, MODEL_RATE, "all", api_name="/review_accept")
    gallery, text, *_ = client.predict(session, MODEL_RATE, "unreviewed", api_name="/review_rethreshold")
    assert shown(gallery) == [] and "No image in this view (**unreviewed**; 4 scored)" in text


def test_review_without_uploads_is_a_clear_message(client):
    with pytest.raises(Exception, match="no image files"):
        client.predict([], None, "empty-session", api_name="/review_score")
    with pytest.raises(Exception, match="nothing to export"):
        client.predict("never-used", 1, api_name="/review_export")


def test_a_review_keeps_its_model_until_rescored_or_replaced(client, app_server, parts, category, detector):
    """After a fine-tune the review still shows (and is judged by) the model that scored it; re-scoring
    brings it to the active model with its decisions, and a new review starts empty."""
    good, bad = parts
    session = "model-change"
    client.predict([handle_file(str(p)) for p in good[:2] + bad[:2]], None, session, api_name="/review_score")
    client.predict(session, MODEL_RATE, "all", api_name="/review_list")
    client.predict(session, MODEL_RATE, "all", api_name="/review_accept")
    files = [handle_file(str(p)) for p in sorted((category / "train" / "good").iterdir())]
    *_, rate, info = client.predict(files, None, False, "", False, 2, 0, "", api_name="/fine_tune")
    name = info.split("**")[1]  # the model line names the new model
    new = rbd.load(next((app_server[1] / "work" / "models" / "private").glob(f"*/{name}")))
    assert new.threshold != detector.threshold

    *_, metrics, scored_by, _, _ = client.predict(session, rate, "all", api_name="/review_list")
    assert "scored by **stripes**" in scored_by and "The active model is **model-" in scored_by
    assert f"at raw threshold {threshold_at(detector.calibration, rate / 100):.4f}" in metrics  # its own model's threshold
    with pytest.raises(Exception, match="scored by stripes: re-score it"):
        client.predict([handle_file(str(good[2]))], None, session, api_name="/review_score")

    (status,) = [client.predict(session, api_name="/review_rescore")]
    assert "Re-scored 4 image(s)" in status and "decisions are kept" in status
    *_, metrics, scored_by, _, _ = client.predict(session, rate, "all", api_name="/review_list")
    assert "scored by **model-" in scored_by and "active model is" not in scored_by and "Reviewed **1** of 4" in metrics
    assert f"at raw threshold {threshold_at(new.calibration, rate / 100):.4f}" in metrics

    fresh, status = client.predict(api_name="/review_new")
    assert fresh != session and "new review" in status
    gallery, text, *_ = client.predict(fresh, rate, "all", api_name="/review_list")
    assert shown(gallery) == [] and "No images to review yet" in text


def test_fine_tune_trains_activates_and_offers_the_model_privately(client, category, app_server):
    files = [handle_file(str(p)) for p in sorted((category / "train" / "good").iterdir())]
    loss, figure, model_zip, choice, status, rate, info = client.predict(files, None, False, "", True, 2, 0, "browser-a",
                                                                         api_name="/fine_tune")
    assert "now the active model" in status and info.startswith("**model-")
    calibrated = re.search(r"; (\d+) calibrate its threshold\)", status)  # the number the model line gives too
    assert calibrated and f"({calibrated[1]} normal images calibrate it" in info
    assert len(loss["data"]) >= 2 and loss["columns"] == ["step", "loss"]
    assert "model.safetensors" in zipfile.ZipFile(model_zip).namelist()
    assert client.predict(api_name="/cancel_training") == "No training is running."  # finished: nothing to cancel
    trained = list((app_server[1] / "work" / "models" / "private" / "browser-a").glob("model-*"))
    assert len(trained) == 1 and choice["value"] == str(trained[0])

    other = Client(app_server[0], verbose=False)  # another browser neither sees nor loads it
    with pytest.raises(Exception, match="neither a listed checkpoint"):
        other.predict(str(trained[0]), "", "", "browser-b", api_name="/load_model")
    rate, info, *_ = client.predict(str(trained[0]), "", "", "browser-a", api_name="/load_model")
    assert trained[0].name in info

    status, choice, rate, info = client.predict("browser-a", api_name="/share_model")
    shared = app_server[1] / "work" / "models" / "shared" / trained[0].name
    assert "every user" in status and choice["value"] == str(shared) and not trained[0].exists()
    assert other.predict(str(shared), "", "", "browser-b", api_name="/load_model")[1].startswith(f"**{trained[0].name}**")
    other.close()


def test_a_new_fine_tune_takes_the_chosen_teacher_and_one_from_the_active_model_keeps_its_own(client, category, app_server):
    files = [handle_file(str(p)) for p in sorted((category / "train" / "good").iterdir())]
    private = app_server[1] / "work" / "models" / "private" / "browser-t"
    for start_current, expected in ((False, "tf_efficientnet_lite2"), (True, "tf_efficientnet_lite0")):
        *_, status, _, info = client.predict(files, None, False, "", start_current, 1, 0, "browser-t", "tf_efficientnet_lite2",
                                             api_name="/fine_tune")
        name = info.split("**")[1]
        assert rbd.load(private / name).config.backbone == expected and f"(teacher {expected})" in status
        client.predict(str(app_server[1] / "shipped" / "stripes"), "", "", "browser-t", api_name="/load_model")  # lite0, active again


def test_fine_tune_on_an_mvtec_zip_trains_on_its_train_good_images_only(client, category, tmp_path):
    """The Evaluate tab's kind of zip, given to Fine-tune: its defects and masks are no normal images."""
    archive = shutil.make_archive(str(tmp_path / "stripes"), "zip", category.parent, category.name)
    normal = len(list((category / "train" / "good").iterdir()))
    *_, status, _, _ = client.predict([handle_file(archive)], None, False, "", True, 1, 0, "browser-m", "tf_efficientnet_lite0",
                                      "stripes line 2", api_name="/fine_tune")
    assert "Trained **stripes-line-2-" in status  # named as asked
    assert f" of {normal} images" in status and "folders left out: only a category's train/good images" in status
    without_train = shutil.make_archive(str(tmp_path / "test_only"), "zip", category, "test")
    with pytest.raises(Exception, match="has test/ or ground_truth/ folders but no train/good/"):
        client.predict([handle_file(without_train)], None, False, "", True, 1, 0, "browser-m", api_name="/fine_tune")


def test_fine_tune_needs_five_images(client, category):
    files = [handle_file(str(p)) for p in sorted((category / "train" / "good").iterdir())[:3]]
    with pytest.raises(Exception, match="at least 5"):
        client.predict(files, None, False, "", True, 1, 0, "", api_name="/fine_tune")


def test_cancel_without_a_training_says_so(client):
    assert client.predict(api_name="/cancel_training") == "No training is running."


def test_evaluate_an_mvtec_zip_and_rejudge_its_rows(client, category, tmp_path):
    archive = shutil.make_archive(str(tmp_path / "stripes"), "zip", category.parent, category.name)
    summary, roc, rows, misranked = client.predict(handle_file(archive), MODEL_RATE, api_name="/evaluate")
    captions = [picture["caption"] for picture in misranked]
    assert len(captions) == 10 and captions[0].startswith("good #1 · score ") and "· test/good/" in captions[0], captions
    assert captions[5].startswith("defective #1 · ") and "· test/hole/" in captions[5] and all(p["image"] for p in misranked)
    assert all(re.search(r" · (ranked right|ranked wrong against \d+ (good|defective)) · test/", c) for c in captions), captions
    metrics = {row[0]: row[1] for row in summary["data"]}
    assert list(metrics) == list(SUMMARY_NAMES.values())  # named for a reader, not as the JSON keys they are
    assert float(metrics["image AUROC"]) >= 0.9 and int(metrics["test images"]) == 10
    assert len(rows["data"]) == 10
    verdict = rows["headers"].index("verdict")
    assert {row[verdict] for row in rows["data"]} == {"good", "defective"}
    rows, judged, *_ = client.predict(30, api_name="/evaluate_rethreshold")
    strict = [row[verdict] for row in rows["data"]]
    assert strict.count("defective") >= 5  # at 30% false alarms more is flagged
    truth, judged = rows["headers"].index("truth"), {row[0]: row[1] for row in judged["data"]}
    found = [row[verdict] == "defective" for row in rows["data"] if row[truth] != "good"]
    recall, threshold = SUMMARY_NAMES["recall"], SUMMARY_NAMES["threshold"]
    assert float(judged[recall]) == pytest.approx(sum(found) / len(found), abs=1e-4)  # the metrics follow the threshold too
    assert float(judged[threshold]) < float(metrics[threshold]) and judged["image AUROC"] == metrics["image AUROC"]
    rows, *_ = client.predict(0.01, api_name="/evaluate_rethreshold")
    assert [row[verdict] for row in rows["data"]].count("defective") <= strict.count("defective")


def test_a_push_after_an_evaluation_lists_its_metrics_in_the_model_card(app_server, category, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    cards = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, repo_id, folder_path, **kwargs:
                        cards.append((folder_path / "README.md").read_text()) or "https://huggingface.co/acme/parts/commit/abc")
    client = Client(app_server[0], verbose=False)  # one browser session: the evaluation is remembered for the push
    client.predict("acme/parts", "hf_x", api_name="/push_to_hub")
    archive = shutil.make_archive(str(tmp_path / "stripes"), "zip", category.parent, category.name)
    summary, *_ = client.predict(handle_file(archive), MODEL_RATE, api_name="/evaluate")
    client.predict("acme/parts", "hf_x", api_name="/push_to_hub")
    image_auroc = next(row[1] for row in summary["data"] if row[0] == "image AUROC")
    assert "image AUROC" not in cards[0]
    assert f"| image AUROC | {float(image_auroc):.4f}" in cards[1] and "image_auroc" not in cards[1]


def test_evaluate_rejects_a_zip_without_mvtec_layout(client, tmp_path, parts):
    archive = tmp_path / "flat.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(parts[0][0], "a.png")
    with pytest.raises(Exception, match="test/good"):
        client.predict(handle_file(str(archive)), 1, api_name="/evaluate")


def test_push_needs_a_token_and_reports_hub_failures(client, hub_cache):
    with pytest.raises(Exception, match=r"a Hugging Face token with write access is needed \(paste one\)"):  # no sign-in off a Space
        client.predict("acme/parts", "", api_name="/push_to_hub")
    with pytest.raises(Exception, match="enter the target repo as owner/name"):  # both boxes empty: the repo's is said first
        client.predict("", "", api_name="/push_to_hub")
    with pytest.raises(Exception, match="cannot push|cannot be reached"):
        client.predict("acme/parts", "hf_fake", api_name="/push_to_hub")


def test_unknown_hub_model_is_a_clear_message(client, app_server, hub_cache):
    shipped = str(app_server[1] / "shipped" / "stripes")
    with pytest.raises(Exception, match="cannot be reached"):
        client.predict(shipped, "acme/does-not-exist", "", "", api_name="/load_model")
    with pytest.raises(Exception, match="cannot be reached.*; nor is checkpoints/stripes one of this app's models"):
        client.predict("checkpoints/stripes", "", "", "", api_name="/load_model")  # a folder typed into the picker
    with pytest.raises(Exception, match="'not a repo' is not a Hub repo id"):  # quoted as typed
        client.predict(shipped, "not a repo", "", "", api_name="/load_model")
    with pytest.raises(Exception, match="is not a Hub repo id"):  # no loading arbitrary server paths
        client.predict(shipped, str(app_server[1] / "work"), "", "", api_name="/load_model")
    with pytest.raises(Exception, match="neither a listed checkpoint"):  # nor through the picker
        client.predict(str(app_server[1] / "work"), "", "", "", api_name="/load_model")


def test_fine_tune_adds_images_accepted_as_good_in_review(client, category, parts):
    good, _ = parts
    session = "reviewed-normals"
    client.predict([handle_file(str(p)) for p in good[:3]], None, session, api_name="/review_score")
    client.predict(session, MODEL_RATE, "all", api_name="/review_list")
    for _ in range(3):  # all three are passed as good by the model; accepting confirms it
        client.predict(session, MODEL_RATE, "all", api_name="/review_accept")
    _, text, *_ = client.predict(session, MODEL_RATE, "all", api_name="/review_next")
    assert "3 / 3" in text  # next stops at the end of the list
    two = [handle_file(str(p)) for p in sorted((category / "train" / "good").iterdir())[:2]]
    with pytest.raises(Exception, match="at least 5"):
        client.predict(two, None, False, session, True, 1, 0, "", api_name="/fine_tune")
    *_, status, _, _ = client.predict(two, None, True, session, True, 1, 0, "", api_name="/fine_tune")
    assert "on 4 of 5 images (1 held out" in status  # 2 uploaded + 3 reviewed, one of the five held out to calibrate
