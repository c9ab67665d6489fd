"""The app's API, driven by gradio_client against a server launched in-process on a free port.

Every named endpoint is called and its returned values and files are checked. The model is the
session's tiny detector, offered to the app as its only "shipped" checkpoint.
"""

import csv
import io
import json
import shutil
import zipfile

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import rbd
import rbd.detector


@pytest.fixture
def client(app_server, tmp_path):
    c = Client(app_server[0], verbose=False, download_files=str(tmp_path / "downloads"))
    yield c
    c.close()


def test_every_action_is_a_named_endpoint(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/load_model", "/inspect", "/rethreshold", "/review_score", "/review_list", "/review_accept", "/review_reject",
            "/review_edit", "/review_save_mask", "/review_previous", "/review_next", "/review_export",
            "/review_recalibrate", "/fine_tune", "/push_to_hub", "/evaluate"} <= names


def test_load_model_reports_the_threshold(client, app_server, detector):
    key = str(app_server[1] / "shipped" / "stripes")
    threshold, info, low, high = client.predict(key, "", "", api_name="/load_model")
    assert threshold == pytest.approx(detector.threshold)
    assert (low, high) == pytest.approx(detector.calibration.grey_zone(), abs=1e-4) and low < threshold < high
    assert "stripes" in info and f"{detector.threshold:.4f}" in info


def test_inspect_scores_and_draws(client, parts, detector, tmp_path):
    good, bad = parts
    threshold = detector.threshold
    same_name = shutil.copy(good[0], tmp_path / bad[0].name)
    choices, table, summary, overlay, pair, annotated, regions = client.predict(
        None, [handle_file(str(same_name)), handle_file(str(bad[0]))], threshold, 0.5, api_name="/inspect")
    (good_row, bad_row) = table["data"]  # in upload order; the second "000.png" was renamed
    assert good_row[3] == "good" and bad_row[3] == "defective"
    assert bad_row[1] == pytest.approx(detector.predict(bad[0]).score, abs=1e-3)
    assert [c[0] for c in choices["choices"]] == ["000.png", "000_1.png"]
    assert "GOOD" in summary  # the first image is shown in detail
    shown = np.asarray(Image.open(overlay))
    assert shown.shape[:2] == (64, 80)
    assert len(pair) == 2 and np.asarray(Image.open(pair[0])).shape[:2] == (64, 80)
    assert annotated["annotations"][0]["label"] == "defect"


def test_threshold_moves_verdicts_without_rerunning(client, parts, detector, monkeypatch):
    good, bad = parts
    client.predict(None, [handle_file(str(bad[0]))], detector.threshold, 0.5, api_name="/inspect")

    def network(*args, **kwargs):
        raise AssertionError("the network ran")

    monkeypatch.setattr(rbd.detector, "score_images", network)  # the server runs in this process
    table, summary, *_ = client.predict(0, 2.0, 0.5, api_name="/rethreshold")
    assert table["data"][0][3] == "good" and "GOOD" in summary and "0 region(s)" in summary
    table, summary, *_ = client.predict(0, 0.0, 0.5, api_name="/rethreshold")
    assert table["data"][0][3] == "defective"


def test_bad_uploads_are_clear_messages(client, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(Exception, match="no image files"):
        client.predict(None, [handle_file(str(tmp_path / "notes.txt"))], 0.5, 0.5, api_name="/inspect")
    with pytest.raises(Exception, match="no usable image among 1 file.*broken.png"):
        client.predict(None, [handle_file(str(tmp_path / "broken.png"))], 0.5, 0.5, api_name="/inspect")
    with pytest.raises(Exception, match="upload an image"):
        client.predict(None, None, 0.5, 0.5, api_name="/inspect")


def test_huge_image_is_scored_downscaled_with_a_notice(client, tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (10000, 10000), 128).save(path)
    _, _, summary, overlay, *_ = client.predict(None, [handle_file(str(path))], 0.5, 0.5, api_name="/inspect")
    assert "10000x10000" in summary and "downscaled" in summary
    assert max(Image.open(overlay).size) == 4096


def test_zip_with_traversal_names_never_writes_outside(client, app_server, parts, tmp_path):
    good, _ = parts
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(good[0], "nested/deeper/a.png")
        z.writestr(zipfile.ZipInfo("../escape.png"), good[1].read_bytes())
        z.writestr(zipfile.ZipInfo("/abs/escape.png"), good[2].read_bytes())
        z.writestr("readme.txt", "not an image")
    _, table, *_ = client.predict(None, [handle_file(str(archive))], 0.5, 0.5, api_name="/inspect")
    assert [row[0] for row in table["data"]] == ["a.png"]
    root = app_server[1]
    assert not list(root.parent.rglob("escape.png")) and not (root / "work" / "escape.png").exists()
    assert not list(root.parent.rglob("abs")), "an absolute member name was recreated somewhere"


def test_uploads_do_not_pile_up(client, app_server, parts):
    client.predict(None, [handle_file(str(parts[0][0]))], 0.5, 0.5, api_name="/inspect")
    assert list((app_server[1] / "work" / "uploads").iterdir()) == []


def test_review_flow_persists_and_exports(client, app_server, parts, detector, tmp_path):
    good, bad = parts
    session = "test-session-1"
    files = [handle_file(str(p)) for p in good[:2] + bad[:2]]
    session_out, status = client.predict(files, None, session, api_name="/review_score")
    assert session_out == session and "4 in this review" in status
    gallery, text, image, editor, metrics = client.predict(session, detector.threshold, "all", 0, 1, api_name="/review_list")
    assert len(gallery) == 4 and "1 / 4" in text
    scores = [float(item["caption"].split(" · ")[0]) for item in gallery]
    assert scores == sorted(scores, reverse=True)  # most anomalous first

    gallery, text, image, editor, metrics = client.predict(session, detector.threshold, "all", 0, 1, api_name="/review_accept")
    assert "Reviewed **1** of 4" in metrics and "2 / 4" in text  # moved on to the next image
    gallery, text, image, editor, metrics = client.predict(session, detector.threshold, "all", 0, 1, api_name="/review_reject")
    assert "Reviewed **2** of 4" in metrics and "3 / 4" in text
    text, image, editor = client.predict(session, detector.threshold, api_name="/review_previous")
    assert "2 / 4" in text and "decision: **reject**" in text
    text, image, editor = client.predict(session, detector.threshold, api_name="/review_previous")
    assert "1 / 4" in text and "decision: **accept**" in text

    update = client.predict(session, detector.threshold, api_name="/review_edit")
    assert update["visible"] is True
    editor = update["value"]
    predicted = np.asarray(Image.open(editor["layers"][0]))[..., 3] > 0
    fresh = rbd.load(app_server[1] / "shipped" / "stripes").predict(Image.open(editor["background"]).convert("L")).mask
    assert fresh.any() and (predicted == fresh).mean() > 0.99  # the model's mask (maps are stored as float16)
    painted = np.zeros((64, 80, 4), np.uint8)
    painted[5:15, 5:25] = (255, 0, 0, 255)
    Image.fromarray(painted).save(tmp_path / "layer.png")
    client.predict({"background": handle_file(editor["background"]), "layers": [handle_file(str(tmp_path / "layer.png"))], "composite": None},
                   session, detector.threshold, "all", 0, 1, api_name="/review_save_mask")

    # a restarted app (new objects on the same folder) resumes the same session
    from rbd import review
    from rbd.review import ReviewSession
    resumed = ReviewSession.open(app_server[1] / "work" / "reviews", session)
    decisions = [resumed.decision(int(i)) for i in review.ordered(resumed, "all")]
    assert [d.decision if d else None for d in decisions][:2] == ["correct", "reject"]

    exported = client.predict(session, detector.threshold, api_name="/review_export")
    with zipfile.ZipFile(exported) as z:
        rows = list(csv.DictReader(io.StringIO(z.read("decisions.csv").decode())))
        coco = json.loads(z.read("coco.json"))
        names = z.namelist()
    assert {r["decision"] for r in rows} == {"correct", "reject", ""}
    assert any(n.startswith("masks/") for n in names) and coco["annotations"]

    new_threshold, low, high = client.predict(session, api_name="/review_recalibrate")
    recalibrated = review.recalibrated(ReviewSession.open(app_server[1] / "work" / "reviews", session))
    assert new_threshold == pytest.approx(recalibrated.threshold)
    assert (low, high) == pytest.approx(recalibrated.grey_zone(), abs=1e-4)  # the grey zone moves with it


def test_review_without_uploads_is_a_clear_message(client):
    with pytest.raises(Exception, match="no image files"):
        client.predict([], None, "empty-session", api_name="/review_score")
    with pytest.raises(Exception, match="nothing to export"):
        client.predict("never-used", 0.5, api_name="/review_export")


def test_fine_tune_trains_activates_and_offers_the_model(client, category, app_server):
    files = [handle_file(str(p)) for p in sorted((category / "train" / "good").iterdir())]
    loss, figure, model_zip, choice, status = client.predict(files, None, False, "", True, 2, 0, api_name="/fine_tune")
    assert "now the active model" in status
    assert len(loss["data"]) >= 2 and loss["columns"] == ["step", "loss"]
    assert zipfile.ZipFile(model_zip).namelist() and "model.safetensors" in zipfile.ZipFile(model_zip).namelist()
    trained = list((app_server[1] / "work" / "models").iterdir())
    assert trained and choice["value"] == str(trained[0])


def test_fine_tune_needs_five_images(client, category):
    files = [handle_file(str(p)) for p in sorted((category / "train" / "good").iterdir())[:3]]
    with pytest.raises(Exception, match="at least 5"):
        client.predict(files, None, False, "", True, 1, 0, api_name="/fine_tune")


def test_evaluate_an_mvtec_zip(client, category, detector, tmp_path):
    archive = shutil.make_archive(str(tmp_path / "stripes"), "zip", category.parent, category.name)
    summary, roc, rows = client.predict(handle_file(archive), api_name="/evaluate")
    metrics = {row[0]: row[1] for row in summary["data"]}
    assert set(metrics) == {"image_auroc", "pixel_auroc", "aupro", "image_f1max", "n_images", "ms_per_image"}
    assert float(metrics["image_auroc"]) >= 0.9 and int(metrics["n_images"]) == 10
    assert len(rows["data"]) == 10


def test_a_push_after_an_evaluation_lists_its_metrics_in_the_model_card(app_server, category, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    cards = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, repo_id, folder_path, **kwargs:
                        cards.append((folder_path / "README.md").read_text()) or "https://huggingface.co/acme/parts/commit/abc")
    client = Client(app_server[0], verbose=False)  # one browser session: the evaluation is remembered for the push
    client.predict("acme/parts", "hf_x", api_name="/push_to_hub")
    archive = shutil.make_archive(str(tmp_path / "stripes"), "zip", category.parent, category.name)
    summary, _, _ = client.predict(handle_file(archive), api_name="/evaluate")
    client.predict("acme/parts", "hf_x", api_name="/push_to_hub")
    image_auroc = next(row[1] for row in summary["data"] if row[0] == "image_auroc")
    assert "## Metrics" not in cards[0]
    assert f"| image_auroc | {float(image_auroc):.4f} |" in cards[1] and "| n_images | 10 |" in cards[1]


def test_evaluate_rejects_a_zip_without_mvtec_layout(client, tmp_path, parts):
    archive = tmp_path / "flat.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(parts[0][0], "a.png")
    with pytest.raises(Exception, match="test/good"):
        client.predict(handle_file(str(archive)), api_name="/evaluate")


def test_push_needs_a_token_and_reports_hub_failures(client, hub_cache):
    with pytest.raises(Exception, match="token"):
        client.predict("acme/parts", "", api_name="/push_to_hub")
    with pytest.raises(Exception, match="cannot push"):
        client.predict("acme/parts", "hf_fake", api_name="/push_to_hub")


def test_unknown_hub_model_is_a_clear_message(client, app_server, hub_cache):
    shipped = str(app_server[1] / "shipped" / "stripes")
    with pytest.raises(Exception, match="cannot be reached"):
        client.predict(shipped, "acme/does-not-exist", "", api_name="/load_model")
    with pytest.raises(Exception, match="neither a listed checkpoint nor a Hub repo id"):
        client.predict(shipped, "not a repo", "", api_name="/load_model")
    with pytest.raises(Exception, match="neither a listed checkpoint"):  # no loading arbitrary server paths
        client.predict(shipped, str(app_server[1] / "work"), "", api_name="/load_model")


def test_fine_tune_adds_images_accepted_as_good_in_review(client, category, parts, detector):
    good, _ = parts
    session = "reviewed-normals"
    client.predict([handle_file(str(p)) for p in good[:3]], None, session, api_name="/review_score")
    client.predict(session, detector.threshold, "all", 0, 1, api_name="/review_list")
    for _ in range(3):  # all three are passed as good by the model; accepting confirms it
        client.predict(session, detector.threshold, "all", 0, 1, api_name="/review_accept")
    text, _, _ = client.predict(session, detector.threshold, api_name="/review_next")
    assert "3 / 3" in text  # next stops at the end of the list
    two = [handle_file(str(p)) for p in sorted((category / "train" / "good").iterdir())[:2]]
    with pytest.raises(Exception, match="at least 5"):
        client.predict(two, None, False, session, True, 1, 0, api_name="/fine_tune")
    *_, status = client.predict(two, None, True, session, True, 1, 0, api_name="/fine_tune")
    assert "on 4 images" in status  # 2 uploaded + 3 reviewed, one of the five held out to calibrate


def test_a_fine_tune_asks_zerogpu_for_its_time_budget():
    import app as app_module

    assert app_module.training_seconds(None, None, False, "s", False, 30, 5, ["m", None]) == 360
    assert app_module.training_seconds(None, None, False, "s", False, 30, 0, ["m", None]) == 600  # no budget
    assert app_module.training_seconds(files=None, minutes=2.5) == 210


def test_on_a_space_the_fine_tune_asks_for_its_budget(app_server, tmp_path, monkeypatch):
    """On a ZeroGPU Space `gpu` is `spaces.GPU`; a recording stand-in shows what each handler asks for."""
    import app as app_module
    from rbd.catalog import Catalog

    requests = []

    def GPU(fn=None, duration=None):
        requests.append(duration)
        return fn if fn is not None else (lambda fn: fn)

    monkeypatch.setattr(app_module, "gpu", GPU)
    app_module.build_app(tmp_path / "work", Catalog(app_server[1] / "shipped", tmp_path / "work" / "models"))
    assert requests.count(app_module.training_seconds) == 1  # the fine-tune
    assert requests.count(None) >= 3  # inspect, review scoring, evaluation: the default duration
