"""The app's pieces without a server: handlers called as plain functions, the event wiring, and the
rbd helpers behind them (thresholds as rates, folded strips, file names in messages, idle expiry,
private fine-tunes)."""

import ast
import importlib
import json
import os
import re
import warnings
import shutil
import tempfile
import sys
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import rbd
from rbd.anomaly_map import kept_map
from rbd.catalog import Catalog
from rbd.expiry import mark_used, remove_idle
from rbd.thresholds import describe, threshold_at
from rbd.uploads import as_uploaded
from rbd.visualize import colour_scale, fold, folded_shape, unfold


@pytest.fixture
def ctx(checkpoint, tmp_path):
    from ui.context import Context

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    os.symlink(checkpoint, shipped / "stripes")
    return Context(tmp_path / "work", Catalog(shipped, tmp_path / "work" / "models"))


@pytest.fixture
def model(ctx):
    from ui import model_bar

    return model_bar.load_model(ctx, ctx.catalog.default_key(), "", "", "browser-1")["model"]


def test_a_rate_is_each_models_own_raw_threshold(detector):
    calibration = detector.calibration
    assert threshold_at(calibration, calibration.false_alarm_rate) == calibration.threshold  # exactly the stored one
    assert threshold_at(calibration, 0.2) < threshold_at(calibration, 0.01) < threshold_at(calibration, 0.0001)
    assert f"raw threshold {calibration.threshold:.4f} for 0.1% expected false alarms" in describe(calibration, 0.001)


@pytest.mark.parametrize("calibrated, shown", [(0.0, 0.01), (0.00005, 0.01), (0.01, 1.0), (0.5, 30.0)])
def test_a_model_calibrated_outside_the_sliders_range_starts_at_its_nearest_end(calibrated, shown):
    """The API trains at any rate above 0 (a checkpoint saved before 0 was refused holds 0), and Gradio refuses a slider
    value out of its range (every re-judge would fail)."""
    from ui import model_bar

    rate = model_bar.model_rate(rbd.Calibration(threshold=1.0, scale=1.0, false_alarm_rate=calibrated))
    assert rate == pytest.approx(shown)
    low, high = (100 * r for r in model_bar.RATE_RANGE)
    assert low <= rate <= high


def test_long_strips_fold_into_blocks_and_others_stay():
    strip = np.arange(50 * 2000).reshape(50, 2000)
    folded = fold(strip, gap=2, fill=-1)
    assert folded.shape == (4 * 50 + 3 * 2, 500) and folded.shape[1] / folded.shape[0] <= 4
    np.testing.assert_array_equal(folded[52:102], strip[:, 500:1000])  # the second piece below the first
    assert (folded[50:52] == -1).all()
    assert fold(strip.T, gap=2, fill=-1).shape == (500, 206)  # a tall strip: pieces side by side
    for image in (strip, strip.T, strip[:, :1001], strip[:1, :100]):  # unfold undoes fold, also with a shorter last piece
        np.testing.assert_array_equal(unfold(fold(image, gap=2), *image.shape, gap=2), image)
        assert fold(image, gap=2).shape == folded_shape(*image.shape, gap=2)
    square = np.zeros((64, 80, 3))
    assert fold(square) is square
    assert colour_scale(3)[1][0] == 0.5 and all(c.startswith("#") for _, c in colour_scale())


def test_messages_name_uploads_as_the_user_knows_them():
    message = "no usable image among 2 file(s): /srv/work/uploads/tmpa1b2/x.png: not an image; /tmp/gradio/9f8e/sub dir.png"
    assert as_uploaded(message, ["/srv/work/uploads", "/tmp/gradio/"]) == "no usable image among 2 file(s): x.png: not an image; sub dir.png"
    # the upload's own folder, named alone (an evaluation of a category at its top): never the server's path
    assert as_uploaded("/srv/work/uploads/tmpjxf0: image metrics need good images", ["/srv/work/uploads"]) == (
        "the upload: image metrics need good images")
    assert as_uploaded("'/srv/work/uploads/tmpjxf0' is empty", ["/srv/work/uploads"]) == "'the upload' is empty"
    for before, after in (("in /srv/work/uploads/tmpjxf0.", "in the upload."), ("(/srv/work/uploads/tmp_x-1), retry", "(the upload), retry"),
                          ("/srv/work/uploads/tmpjxf0; skipped x.png", "the upload; skipped x.png")):
        assert as_uploaded(before, ["/srv/work/uploads"]) == after  # the punctuation after it is kept


def test_handlers_and_each_step_of_a_streaming_one_run_on_threads_that_end_with_them(monkeypatch):
    import threading

    import gradio as gr

    from rbd.notices import notify
    from ui.wiring import user_errors

    threads = []

    def handler(x):
        threads.append(threading.current_thread())
        return x + 1

    def streaming(n):
        for i in range(n):
            threads.append(threading.current_thread())
            notify(f"step {i}")  # a notice raised on the handler's thread still reaches the request's toasts
            yield i

    assert user_errors(handler)(1) == 2
    warnings = []
    monkeypatch.setattr(gr, "Warning", warnings.append)
    assert list(user_errors(streaming)(3)) == [0, 1, 2]
    assert warnings == ["step 0", "step 1", "step 2"]
    assert len(set(threads)) == 4 and threading.current_thread() not in threads
    assert not any(thread.is_alive() for thread in threads)


def test_an_unexpected_error_is_said_not_swallowed(tmp_path, caplog):
    """Only rbd's errors became messages: anything else reached Gradio, which showed nothing (a checkpoint's
    config nested 200,000 deep: Load model did nothing at all)."""
    import gradio as gr

    from ui.wiring import user_errors

    upload = tmp_path / "uploads" / "tmpab12"

    def broken(path):
        raise RecursionError(f"maximum recursion depth exceeded reading {path} beside /srv/hf/hub/models--a--b/config.json")

    def refused():
        raise gr.Error("said as it is")

    with pytest.raises(gr.Error) as raised:
        user_errors(broken, [tmp_path / "uploads"])(str(upload / "parts" / "a.png"))
    said = raised.value.message
    assert said.startswith("An unexpected error stopped this (RecursionError: maximum recursion depth exceeded reading parts/a.png "
                           "beside config.json)")  # an upload by its name in the upload, any other path by its last part
    assert str(tmp_path) not in said and raised.value.duration is None  # no server path; shown until closed
    assert "unexpected error" in caplog.text and "RecursionError" in caplog.text  # the traceback in the server's log
    with pytest.raises(gr.Error) as raised:
        user_errors(refused)()
    assert raised.value.message == "said as it is"


def test_a_failed_handlers_notices_are_toasts_alone(monkeypatch):
    """A handler that notifies, then fails: its notices are toasts, and were written to the server's log as well (with
    upload paths, each text kept by Python's warning registry for the life of the server)."""
    import gradio as gr

    from rbd.notices import notify
    from ui import wiring

    toasts = []
    monkeypatch.setattr(wiring.gr, "Warning", toasts.append)

    def refused():
        notify("skipped 1 unreadable file(s): a.png: not an image file")
        raise rbd.NoImagesError("only 1 of 2 could be read")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a notice handed on, outside any collector, is a warning
        with pytest.raises(gr.Error, match="only 1 of 2 could be read"):
            wiring.user_errors(refused)()
    assert toasts == ["skipped 1 unreadable file(s): a.png: not an image file"]


def test_idle_folders_are_removed_and_used_ones_kept(tmp_path):
    old, fresh, marked = (tmp_path / name for name in ("old", "fresh", "marked"))
    for folder in (old, fresh, marked):
        folder.mkdir()
    os.utime(old, (time.time() - 100, time.time() - 100))
    os.utime(marked, (time.time() - 100, time.time() - 100))
    mark_used(marked)
    assert remove_idle(tmp_path, 50) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "marked"]
    assert remove_idle(tmp_path / "none", 50) == []


def test_a_review_reopened_while_the_sweep_removes_it_is_gone_not_half_there(ctx, detector, parts, monkeypatch):
    """The sweep judged a review idle and deleted it with no lock shared with `Context.review`: a review reopened in
    that moment was served with its files gone, and the next decision failed with FileNotFoundError."""
    import ui.context

    def idle_review():
        folder = ui.context.ReviewSession.create(ctx.reviews, "old", detector, parts[0][:1]).folder
        (folder / ".last-used").touch()
        os.utime(folder / ".last-used", (time.time() - ctx.idle_s - 60,) * 2)

    idle_review()
    held = ctx.review("old")
    os.utime(held.folder / ".last-used", (time.time() - ctx.idle_s - 60,) * 2)
    assert ctx.remove_idle() == [] and held.folder.is_dir()  # a request still holds it (a long scoring)
    del held

    class SweptWhileRead(ui.context.ReviewSession):  # the sweep runs between the reading and the marking
        def __init__(self, folder):
            super().__init__(folder)
            ctx.remove_idle()

    monkeypatch.setattr(ui.context, "ReviewSession", SweptWhileRead)
    assert ctx.review("old") is None  # expired
    assert list(ctx.reviews.iterdir()) == []  # nothing left aside either
    idle_review()
    assert ctx.review("old", create=True).items == []  # Score into it: a new review, not the old one's images without files


def test_a_second_app_on_one_work_folder_refuses_to_start(ctx):
    """Two apps on one work folder each kept their reviews in memory: one's decisions were not the other's, and images
    both scored into one review wrote over each other's."""
    import subprocess

    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'ab'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(ctx.work / "app.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(SystemExit, match=r"^error: another rbd app serves the work folder .*work: stop it, or give this "
                                             r"one a folder of its own \(RBD_WORK_DIR\)$"):
            ctx.claim()
    finally:
        holder.kill()
        holder.wait()
    ctx.claim()  # once the other has stopped
    ctx.claim()  # and again by this process (a server started again on the folder, as the tests do)


def test_fine_tunes_are_private_until_published(detector, tmp_path):
    catalog = Catalog(tmp_path / "shipped", tmp_path / "models")
    key = catalog.add_trained(detector, "alice")
    assert catalog.entries("alice") == [(f"{Path(key).name} (yours)", key)] and catalog.entries("bob") == []
    assert catalog.get(key, owner="alice") is not None  # (labelled so, not "fine-tuned": a model loaded from a zip is one too)
    with pytest.raises(rbd.CheckpointError, match="neither a listed checkpoint"):
        catalog.get(key, owner="bob")
    with pytest.raises(rbd.CheckpointError, match="is not a fine-tune made in this browser: only those can be shared"):
        catalog.publish(key, "bob")
    with pytest.raises(rbd.CheckpointError) as refused:
        catalog.get(key, owner="bob")
    assert str(tmp_path) not in str(refused.value)  # the model's name, never its server path
    shared = catalog.publish(key, "alice")
    assert catalog.get(shared, owner="bob") is not None and catalog.entries("bob") == [(f"{Path(shared).name} (shared)", shared)]
    assert catalog.get(key, owner="alice") is catalog.get(shared)  # another tab of alice's still on the private key
    for owner in ("alice", "bob"):  # Share pressed again: not "not made in this browser"
        with pytest.raises(rbd.CheckpointError, match=r"is already offered to every user of this app$"):
            catalog.publish(shared, owner)
    with pytest.raises(rbd.InvalidInputError):
        catalog.entries("../alice")


def test_a_model_removed_while_the_list_is_made_is_left_out_of_it(detector, tmp_path, monkeypatch):
    """Another tab deleted, shared or let expire a model between the list's look at its config.json and its date:
    FileNotFoundError, and every control that lists the models failed."""
    catalog = Catalog(tmp_path / "shipped", tmp_path / "models")
    gone, kept = (Path(catalog.add_trained(detector, "alice", name)) for name in ("gone", "kept"))
    is_file = Path.is_file

    def removed_after_the_look(path):
        found = is_file(path)
        if path == gone / "config.json":
            shutil.rmtree(gone)
        return found

    monkeypatch.setattr(Path, "is_file", removed_after_the_look)
    assert catalog.entries("alice") == [(f"{kept.name} (yours)", str(kept))]


def test_a_fine_tune_is_named_by_the_user_kept_to_a_safe_unique_name(detector, tmp_path):
    catalog = Catalog(tmp_path / "shipped", tmp_path / "models")
    named = Path(catalog.add_trained(detector, "alice", "Bolts line 3 / ../x"))
    assert named.parent == catalog.owner_folder("alice") and re.fullmatch(r"Bolts-line-3-x-\d{8}-\d{6}-[0-9a-f]{4}", named.name)
    assert re.fullmatch(r"model-\d{8}-\d{6}-[0-9a-f]{4}", Path(catalog.add_trained(detector, "alice", " ..")).name)
    assert any(label.startswith("Bolts-line-3-x-") for label, _ in catalog.entries("alice"))  # as the model list shows it
    # letters of any script are letters ("Flaschen-Prüfung" was saved as "Flaschen-Pr-fung"), a decomposed é one letter
    for words, kept in (("Flaschen-Prüfung", "Flaschen-Prüfung"), ("瓶子检测", "瓶子检测"), ("Ölwanne_3", "Ölwanne_3"), ("nai\u0308ve", "naïve"),
                        ("हिन्दी लाइन", "हिन्दी-लाइन"), ("น้ำมัน", "น้ำมัน")):  # with their vowel signs ("ह-न-द--ल-इन")
        assert Path(catalog.add_trained(detector, "alice", words)).name.startswith(f"{kept}-20"), words
    # a model downloaded and loaded again is stamped once: also a long name's (its stamp was cut at 40 characters and
    # kept), and a browser's second download of it, "name (1).zip"
    for words in ("bolts-line-3-camera-left-2024", "evil"):
        downloaded = Path(catalog.add_trained(detector, "alice", words)).name
        for again in (downloaded, f"{downloaded} (1)"):
            stamped = Path(catalog.add_trained(detector, "alice", again)).name
            assert re.fullmatch(rf"{words[:40]}-\d{{8}}-\d{{6}}-[0-9a-f]{{4}}", stamped), (again, stamped)
    assert Path(catalog.add_trained(detector, "alice", "line (2)")).name.startswith("line-2-20")  # a name's own brackets stay


def test_folders_left_by_a_crash_are_offered_to_nobody(detector, tmp_path):
    """A publish killed between its copy and its rename leaves `.<name>.tmp` in the shared folder; a save, its staging."""
    catalog = Catalog(tmp_path / "shipped", tmp_path / "models")
    key = catalog.add_trained(detector, "alice")
    shutil.copytree(key, catalog.shared / f".{Path(key).name}.tmp")
    shutil.copytree(key, catalog.owner_folder("alice") / ".model-x.abcd")
    assert catalog.entries("bob") == [] and [k for _, k in catalog.entries("alice")] == [key]


def test_two_requests_sharing_one_model_both_end_with_it_shared(detector, tmp_path):
    import threading

    catalog = Catalog(tmp_path / "shipped", tmp_path / "models")
    key = catalog.add_trained(detector, "alice")
    results, start = [], threading.Barrier(2, timeout=10)

    def share():
        start.wait()
        results.append(catalog.publish(key, "alice"))

    requests = [threading.Thread(target=share) for _ in range(2)]
    for request in requests:
        request.start()
    for request in requests:
        request.join()
    assert len(results) == 2 and results[0] == results[1] == str(catalog.shared / Path(key).name)
    assert [k for _, k in catalog.entries("bob")] == results[:1]


def test_a_share_cut_short_can_be_done_again(detector, tmp_path):
    """Killed after its copy was renamed into place (the private folder left behind), or during the copy
    (its staging left behind): sharing again finishes the job instead of failing on every retry."""
    catalog = Catalog(tmp_path / "shipped", tmp_path / "models")
    key = catalog.add_trained(detector, "alice")
    target = catalog.shared / Path(key).name
    shutil.copytree(key, catalog.shared / f".{Path(key).name}.tmp")  # a copy cut short, then a copy renamed in place
    shutil.copytree(key, target)
    assert catalog.publish(key, "alice") == str(target) and not Path(key).exists()
    assert [p.name for p in catalog.shared.iterdir()] == [target.name]  # the staging left by the first try is gone
    other = catalog.add_trained(detector, "alice")
    staging = catalog.shared / f".{Path(other).name}.tmp"
    staging.mkdir()
    (staging / "config.json").write_text("half")  # a copy cut short
    shared = Path(catalog.publish(other, "alice"))
    assert rbd.load(shared).threshold == detector.threshold and not staging.exists() and not Path(other).exists()


def test_a_shared_copy_is_on_disk_before_the_private_one_goes(detector, tmp_path, monkeypatch):
    """Sharing copied the fine-tune without syncing it, then deleted the private folder: after a power cut the shared
    one could hold empty files, and the model was lost."""
    import rbd.catalog
    import rbd.files

    catalog = Catalog(tmp_path / "shipped", tmp_path / "models")
    key = catalog.add_trained(detector, "alice")
    synced, folders, remove = [], [], shutil.rmtree
    fsync = rbd.files.os.fsync
    monkeypatch.setattr(rbd.files.os, "fsync", lambda fd: synced.append(Path(os.readlink(f"/proc/self/fd/{fd}"))) or fsync(fd))
    monkeypatch.setattr(rbd.catalog, "sync_folder", folders.append)
    monkeypatch.setattr(rbd.catalog.shutil, "rmtree", lambda path, **kw: (synced.append("removed"), remove(path, **kw)))
    shared = Path(catalog.publish(key, "alice"))
    private_removed = len(synced) - 1 - synced[::-1].index("removed")  # (the first removal is of a staging cut short)
    files = sorted(p.name for p in synced[:private_removed] if isinstance(p, Path) and p.parent.name.endswith(".tmp"))
    assert files == sorted(p.name for p in shared.iterdir()) and folders == [catalog.shared]
    assert rbd.load(shared).threshold == detector.threshold


def test_a_rate_moved_on_a_model_deleted_in_another_tab_says_so_on_the_model_line(ctx, detector):
    """The line is refreshed outside the queue with no progress shown: its error was seen nowhere, and the line went on
    naming the deleted model at the rate before the move."""
    from ui import model_bar

    key = ctx.catalog.add_trained(detector, "browser-1")
    model = model_bar.load_model(ctx, key, "", "", "browser-1")["model"]
    assert "for 3% expected false alarms" in model_bar.show(ctx, model, 3.0)["info"]
    ctx.catalog.remove(key, "browser-1")  # from another tab
    line = model_bar.show(ctx, model, 3.0)["info"]
    assert line.startswith("⚠️ ") and "no longer exists" in line and "pick another model" in line


def test_a_page_restores_the_rate_its_tab_set_within_the_sliders_range(ctx, model):
    from ui import model_bar

    assert model_bar.restore(ctx, {**model, "tab_rate": 5.0}, ctx.catalog.default_key(), "browser-1")["rate"] == 5.0
    assert model_bar.restore(ctx, {**model, "tab_rate": 50.0}, ctx.catalog.default_key(), "browser-1")["rate"] == 30.0
    restored = model_bar.restore(ctx, model, ctx.catalog.default_key(), "browser-1")  # none set: the model's own
    assert restored["rate"] == model_bar.model_rate(model_bar.calibration(ctx, model)) and "tab_rate" not in restored["model"]


def test_a_fine_tune_shared_from_another_tab_is_restored_under_its_shared_name(ctx, detector):
    from ui import model_bar

    key = ctx.catalog.add_trained(detector, "browser-1")
    stored = model_bar.load_model(ctx, key, "", "", "browser-1")["model"]
    shared = ctx.catalog.publish(key, "browser-1")  # from another tab of the same browser
    restored = model_bar.restore(ctx, stored, ctx.catalog.default_key(), "browser-1")
    assert restored["model"]["key"] == restored["choice"] == shared  # one of the picker's entries, not a server path
    assert shared in [k for _, k in ctx.catalog.entries("browser-1")]
    # a tab still on it opens the picker: its server path showed there, the model is picked under its shared name
    assert model_bar.listed(ctx, "browser-1", stored)["choice"]["value"] == shared
    shutil.rmtree(shared)  # deleted since (a shared model, by the server): listed by its name, said gone
    opened = model_bar.listed(ctx, "browser-1", stored)["choice"]
    assert "value" not in opened and opened["choices"][-1] == (f"{stored['name']} (no longer there)", stored["key"])
    hub = {"key": "acme/parts", "revision": None, "name": "acme/parts"}
    assert model_bar.listed(ctx, "browser-1", hub)["choice"]["choices"][-1] == ("acme/parts", "acme/parts")


def test_a_fine_tune_can_be_deleted_by_its_own_browser_only_while_it_is_private(detector, tmp_path):
    catalog = Catalog(tmp_path / "shipped", tmp_path / "models")
    key, other = catalog.add_trained(detector, "alice"), catalog.add_trained(detector, "alice")
    with pytest.raises(rbd.CheckpointError, match="not a fine-tune made in this browser: only those can be deleted"):
        catalog.remove(key, "bob")
    shared = catalog.publish(other, "alice")
    with pytest.raises(rbd.CheckpointError, match="offered to every user of this app"):
        catalog.remove(shared, "alice")
    catalog.remove(key, "alice")
    assert not Path(key).exists() and [k for _, k in catalog.entries("alice")] == [shared]
    assert list(catalog.owner_folder("alice").glob(".*deleted")) == []  # nothing left behind
    with pytest.raises(rbd.CheckpointError, match="no longer exists: it was deleted"):  # the cache does not serve it
        catalog.get(key, owner="alice")
    for act in (catalog.remove, catalog.publish):  # from another tab still on it: gone, not "made in another browser"
        with pytest.raises(rbd.CheckpointError, match="no longer exists: it was deleted.*pick another model"):
            act(key, "alice")
    (catalog.shipped / "bottle").mkdir(parents=True)
    with pytest.raises(rbd.CheckpointError, match="bottle comes with the app"):
        catalog.check_removable(str(catalog.shipped / "bottle"), "alice")


def test_delete_asks_first_then_makes_the_default_model_active(ctx, detector, tmp_path, monkeypatch):
    from gradio.processing_utils import save_file_to_cache

    from ui import fine_tune, model_bar

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))  # Gradio's cache: it serves a copy of each file returned

    key = ctx.catalog.add_trained(detector, "browser-1", "bolts")
    model = model_bar.load_model(ctx, key, "", "", "browser-1")["model"]
    assert fine_tune.check_delete(ctx, model, "browser-1") == {}  # deletable: the page asks
    with pytest.raises(rbd.CheckpointError, match="comes with the app"):  # refused before the page asks
        fine_tune.check_delete(ctx, model_bar.load_model(ctx, ctx.catalog.default_key(), "", "", "browser-1")["model"], "browser-1")
    assert fine_tune.delete(ctx, False, model, "browser-1") == {} and Path(key).is_dir()  # the question answered no
    downloads = [Path(fine_tune.download(ctx, model, 1.0)["model_file"]) for _ in range(2)]  # two downloads, two export folders
    kept = Path(fine_tune.download(ctx, model_bar.load_model(ctx, ctx.catalog.default_key(), "", "", "browser-1")["model"], 1.0)["model_file"])
    served = [Path(save_file_to_cache(file, str(tmp_path / "gradio"))) for file in (downloads[0], kept)]  # as Gradio serves them
    result = fine_tune.delete(ctx, True, model, "browser-1")
    assert not any(d.exists() or d.with_suffix("").exists() for d in downloads)  # no copy of its weights left on the server
    assert not served[0].exists()  # nor the copy Gradio served, which a download link would still reach
    assert kept.exists() and served[1].exists()  # another model's download stays
    assert not Path(key).exists() and result["model"]["key"] == ctx.catalog.default_key() == result["choice"]["value"]
    assert key not in [k for _, k in result["choice"]["choices"]]
    assert result["status"].startswith(f"Deleted **{Path(key).name}**; the active model is now **stripes**")
    assert model_bar.listed(ctx, "browser-1")["choice"]["choices"] == result["choice"]["choices"]  # another tab's list, as it opens
    assert result["model_file"] is None  # the deleted model's zip is not offered on


def test_a_private_fine_tune_removed_while_idle_is_said_to_be_gone(ctx, detector):
    from rbd.expiry import remove_idle
    from ui import model_bar

    key = ctx.catalog.add_trained(detector, "browser-1")
    model = model_bar.load_model(ctx, key, "", "", "browser-1")["model"]
    remove_idle(ctx.catalog.private, max_idle_s=-1)  # still in the catalog's cache of loaded models, which must not serve it
    with pytest.raises(rbd.CheckpointError, match=f"'{Path(key).name}' no longer exists: it was deleted, or, kept private") as raised:
        ctx.detector(model)
    assert str(ctx.work) not in str(raised.value)
    key = ctx.catalog.add_trained(detector, "browser-1")  # swept between the model's listing and its marking as used:
    entries = ctx.catalog.entries  # gone, as above (the marking met no folder: a bare FileNotFoundError)
    swept = lambda owner=None: (entries(owner), remove_idle(ctx.catalog.private, -1))[0]  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ctx.catalog, "entries", swept)
        with pytest.raises(rbd.CheckpointError, match="no longer exists"):
            ctx.catalog.get(key, owner="browser-1")
    ctx.catalog.add_trained(detector, "browser-1")
    owner = ctx.catalog.owner_folder("browser-1")
    os.utime(owner / ".last-used", (time.time() - ctx.idle_s - 60,) * 2)
    assert ctx.remove_idle() == [owner] and not owner.exists()  # the app's sweep: the catalog's, under its lock


def test_a_relative_work_folder_lists_the_keys_that_saving_returns(detector, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    catalog = Catalog("shipped", "work/models")
    key = catalog.add_trained(detector, "alice")
    assert [k for _, k in catalog.entries("alice")] == [key] and catalog.get(key, owner="alice") is not None
    assert Path(catalog.publish(key, "alice")).parent == tmp_path / "work" / "models" / "shared"


def test_review_handlers_without_a_server(ctx, model, parts):
    from ui import review

    good, bad = parts
    with pytest.raises(rbd.NoImagesError, match="upload images, a zip or a folder, then press Score"):
        review.score(ctx, [], None, "empty", model, progress=lambda *a, **k: None)  # Score pressed again on emptied boxes
    out = review.score(ctx, [str(p) for p in good[:2] + bad[:2]], None, "", model, progress=lambda *a, **k: None)
    review_id = out["review_id"]
    assert "4 in this review" in out["status"] and list(ctx.uploads.iterdir()) == []
    shown = review.show(ctx, review_id, model, 0.1, "all")
    assert "**1 / 4**" in shown["text"] and len(shown["gallery"]["value"]) == 4
    first = ctx.cursor(None).item
    after = review.decide(ctx, "accept", review_id, model, 0.1, "unreviewed")
    assert "**1 / 3**" in after["text"] and ctx.cursor(None).item != first  # the decided image left the filter
    assert "Reviewed **1** of 4" in after["metrics"]
    opened = review.edit(ctx, review_id, model, 0.1)
    editing = ctx.cursor(None).editing  # the server's record: the page's copy lagged behind a threshold moved at once
    assert editing == {"item": ctx.cursor(None).item, "threshold": review.judged_at(ctx, ctx.review(review_id), model, 0.1)[1],
                       "decided": None}  # the decision it showed: none yet
    assert opened["editor"]["canvas_size"] == (80, 64)
    # the threshold moved while painting: the review is judged anew, the open editor (the inspector's paint) left as it is
    moved = review.rejudged(ctx, review_id, model, 0.2, "unreviewed")
    assert "**1 / 3**" in moved["text"] and not set(moved) & {"editor", "save"} and ctx.cursor(None).editing == editing
    layer = np.zeros((64, 80, 4), np.uint8)
    layer[:5, :5, 3] = 255
    saved = review.save_mask(ctx, {"layers": [layer]}, review_id, model, 0.1, "all")
    session = ctx.review(review_id)
    assert session.decision(editing["item"]).decision == "correct"
    assert "correct** → defective (the mask painted, outlined in magenta)" in saved["text"]
    with pytest.raises(rbd.NoImagesError, match="press Edit mask"):  # the save's view closed the editor
        review.save_mask(ctx, {"layers": [layer]}, review_id, model, 0.1, "all")
    assert review.rejudged(ctx, review_id, model, 0.1, "unreviewed")["editor"]["visible"] is False  # none open: closed as before
    review.edit(ctx, review_id, model, 0.1)
    review.step(ctx, 1, review_id, model, 0.1, "all")  # a view the page asked for closes the editor, as on the page
    with pytest.raises(rbd.NoImagesError, match="press Edit mask"):
        review.save_mask(ctx, {"layers": [layer]}, review_id, model, 0.1, "all")
    review.edit(ctx, review_id, model, 0.1)
    erased = review.save_mask(ctx, {"layers": [np.zeros_like(layer)]}, review_id, model, 0.1, "all")
    assert "correct** → good (the mask erased: no defect)" in erased["text"] and "outlined" not in erased["text"]


def test_an_export_written_while_a_decision_emptied_the_box_is_not_offered(ctx, model, parts, monkeypatch):
    """A decision (or a threshold move) while a large review's zip was written emptied the Export box; the export then
    filled it with the zip of the review before the decision: "Reviewed 2" on the page, one decision in the zip."""
    from rbd.notices import collect
    from ui import review

    good, _ = parts
    review_id = review.score(ctx, [str(p) for p in good[:2]], None, "", model, progress=lambda *a, **k: None)["review_id"]
    tab, other = (types.SimpleNamespace(session_hash=name) for name in ("tab-1", "tab-2"))
    assert zipfile.is_zipfile(review.export(ctx, review_id, model, 0.1, request=tab)["export_file"])
    write = review.rules.export_zip

    def decided_meanwhile(session, *args):
        review.export_taken_away(ctx, request=other)  # another tab's change is no reason
        written = write(session, *args)
        assert review.export_taken_away(ctx, request=tab) == {"export_file": None}
        return written
    monkeypatch.setattr(review.rules, "export_zip", decided_meanwhile)
    with collect() as notes:
        assert review.export(ctx, review_id, model, 0.1, request=tab) == {}
    assert notes == ["the review or its threshold changed while its zip was written: press Export again for a zip of the "
                     "review as it is now"]
    monkeypatch.setattr(review.rules, "export_zip", write)
    assert zipfile.is_zipfile(review.export(ctx, review_id, model, 0.1, request=tab)["export_file"])  # pressed again


def test_a_click_or_key_on_a_view_emptied_meanwhile_redraws_it(ctx, model, parts):
    """`a` on the filter's last unreviewed image, then a thumbnail clicked before the new view came (queued behind the key
    press), or the filter's last images decided in another tab: IndexError, "An unexpected error"."""
    import types

    import gradio as gr

    from ui import review

    good, _ = parts
    tab, other = (types.SimpleNamespace(session_hash=name) for name in ("tab-1", "tab-2"))
    clicked = gr.SelectData(None, {"index": 1, "value": None, "selected": True})
    for press in (lambda review_id: review.select(ctx, review_id, model, 0.1, "unreviewed", clicked, request=tab),
                  lambda review_id: review.step(ctx, 1, review_id, model, 0.1, "unreviewed", request=tab)):
        review_id = review.score(ctx, [str(p) for p in good[:2]], None, "", model, progress=lambda *a, **k: None)["review_id"]
        review.show(ctx, review_id, model, 0.1, "unreviewed", request=tab)
        review.show(ctx, review_id, model, 0.1, "unreviewed", request=other)
        for _ in range(2):  # the other tab decides both
            review.decide(ctx, "accept", review_id, model, 0.1, "unreviewed", request=other)
        assert press(review_id)["text"].startswith("No image in this view")
    assert review.select(ctx, review_id, model, 0.1, "unreviewed", clicked, request=other)["text"].startswith("No image in")


def test_a_threshold_move_that_takes_the_image_painted_out_of_view_says_its_save_still_goes_to_it(ctx, model, parts, monkeypatch):
    from rbd.notices import collect
    from ui import review

    good, bad = parts
    review_id = review.score(ctx, [str(good[0]), str(bad[0])], None, "", model, progress=lambda *a, **k: None)["review_id"]
    review.show(ctx, review_id, model, 0.1, "all")
    session = ctx.review(review_id)
    while session.item(ctx.cursor(None).item).file_name != good[0].name:
        review.step(ctx, 1, review_id, model, 0.1, "all")
    painted = ctx.cursor(None).item
    review.edit(ctx, review_id, model, 0.1)
    with collect() as notes:
        moved = review.rejudged(ctx, review_id, model, 0.1, "defective")  # the page's filter: flagged parts only
        review.rejudged(ctx, review_id, model, 0.11, "defective")  # a dragged threshold: said once
    assert f"**{session.item(1 - painted).file_name.replace('_', chr(92) + '_')}**" in moved["text"] and "editor" not in moved
    assert notes == [f"{good[0].name}, whose mask is being painted, is no longer in this view; Save still stores the mask on it"]
    with monkeypatch.context() as patched:  # a re-judge that fails (the model deleted in another tab) keeps the paint's record
        patched.setattr(review, "judged_at", lambda *a: (_ for _ in ()).throw(rbd.CheckpointError("gone")))
        with pytest.raises(rbd.CheckpointError):
            review.rejudged(ctx, review_id, model, 0.1, "all")
    assert ctx.cursor(None).editing["item"] == painted
    assert f"**{good[0].name}**" in review.rejudged(ctx, review_id, model, 0.1, "all")["text"]  # back on the image painted
    layer = np.zeros((64, 80, 4), np.uint8)
    layer[:5, :5, 3] = 255
    review.save_mask(ctx, {"layers": [layer]}, review_id, model, 0.1, "defective")
    assert session.decision(painted).decision == "correct" and session.decision(1 - painted) is None


def test_a_rejected_good_verdict_asks_where_the_defect_is(ctx, model, parts):
    from ui import review

    good, _ = parts
    review_id = review.score(ctx, [str(good[0])], None, "", model, progress=lambda *a, **k: None)["review_id"]
    assert "model says **good**" in review.show(ctx, review_id, model, 0.1, "all")["text"]
    rejected = review.decide(ctx, "reject", review_id, model, 0.1, "all")["text"]
    assert "→ defective" in rejected and "where is not known: press **e** to paint it" in rejected


def test_requests_opening_one_review_at_once_share_one_session(ctx, model, parts, monkeypatch):
    """After a restart a key press and an export can open a review together; a decision made through a second
    object would never reach the one that later requests get."""
    import threading

    from ui import context, review

    review_id = review.score(ctx, [str(p) for p in parts[0][:2]], None, "", model, progress=lambda *a, **k: None)["review_id"]
    restarted = context.Context(ctx.work, ctx.catalog)
    both_read = threading.Barrier(2, timeout=10)
    read = context.ReviewSession.open

    def read_together(root, session_id):
        session = read(root, session_id)
        both_read.wait()
        return session

    monkeypatch.setattr(context.ReviewSession, "open", staticmethod(read_together))
    opened = []
    requests = [threading.Thread(target=lambda: opened.append(restarted.review(review_id))) for _ in range(2)]
    for request in requests:
        request.start()
    for request in requests:
        request.join()
    assert len(opened) == 2 and opened[0] is opened[1] is restarted.review(review_id)


def test_after_scoring_more_images_the_review_shows_the_first_of_them(ctx, model, parts):
    from ui import review

    good, bad = parts
    quiet = {"progress": lambda *a, **k: None}
    review_id = review.score(ctx, [str(p) for p in bad[:2]], None, "", model, **quiet)["review_id"]
    review.show(ctx, review_id, model, 0.1, "all")
    review.step(ctx, 1, review_id, model, 0.1, "all")  # on the second defect when more are added
    review.score(ctx, [str(p) for p in good[:2]], None, review_id, model, **quiet)
    session = ctx.review(review_id)
    first_new = max(session.items[2:], key=lambda item: item.score)
    assert first_new.score < min(item.score for item in session.items[:2])  # below both defects: not the review's top
    shown = review.show(ctx, review_id, model, 0.1, "all")
    assert f"**3 / 4** · **{first_new.file_name}**" in shown["text"] and ctx.cursor(None).item == first_new.id
    shown = review.show(ctx, review_id, model, 0.1, "defective")  # a filter that hides it: its first image instead
    assert "**1 / " in shown["text"]


def test_a_reloaded_page_or_a_restarted_server_resumes_the_review_at_its_first_unreviewed_image(ctx, model, parts):
    import types

    from ui import context, review

    good, bad = parts
    review_id = review.score(ctx, [str(p) for p in good[:2] + bad[:2]], None, "", model,
                             progress=lambda *a, **k: None)["review_id"]
    tab = types.SimpleNamespace(session_hash="tab-1")
    review.show(ctx, review_id, model, 0.1, "all", request=tab)
    for _ in range(2):
        review.decide(ctx, "accept", review_id, model, 0.1, "all", request=tab)
    review.step(ctx, -2, review_id, model, 0.1, "all", request=tab)  # back on the first, to look again
    reloaded = types.SimpleNamespace(session_hash="tab-2")  # a reload is a new Gradio session
    assert "**3 / 4**" in review.show(ctx, review_id, model, 0.1, "all", request=reloaded)["text"]
    restarted = context.Context(ctx.work, ctx.catalog)
    assert "**3 / 4**" in review.show(restarted, review_id, model, 0.1, "all", request=reloaded)["text"]
    for _ in range(2):
        review.decide(restarted, "accept", review_id, model, 0.1, "all", request=reloaded)
    assert "**1 / 4**" in review.show(ctx, review_id, model, 0.1, "all", request=tab)["text"]  # where tab-1 was
    done = review.show(restarted, review_id, model, 0.1, "all", request=types.SimpleNamespace(session_hash="tab-3"))
    assert "**1 / 4**" in done["text"]  # all reviewed: from the top


def test_a_decision_goes_to_the_image_the_page_shows_when_a_held_key_left_it_behind_the_cursor(ctx, model, parts):
    """After a held arrow key every press had moved the cursor, but the page still drew an earlier view: the next
    decision went to the cursor's image, which the user had never seen, and the one on screen stayed unreviewed."""
    import types

    from ui import review

    good, bad = parts
    review_id = review.score(ctx, [str(p) for p in good[:2] + bad[:2]], None, "", model,
                             progress=lambda *a, **k: None)["review_id"]
    tab = types.SimpleNamespace(session_hash="tab-1")
    on_page = review.show(ctx, review_id, model, 0.1, "all", request=tab)["shown"]
    assert on_page["item"] == ctx.cursor(tab).item
    for _ in range(2):
        ahead = review.step(ctx, 1, review_id, model, 0.1, "all", request=tab)["shown"]  # views the page has not drawn yet
    assert ahead["item"] == ctx.cursor(tab).item != on_page["item"]
    review.edit(ctx, review_id, model, 0.1, on_page, request=tab)
    assert ctx.cursor(tab).editing["item"] == on_page["item"]  # the editor too opens on the image on screen
    after = review.decide(ctx, "accept", review_id, model, 0.1, "all", on_page, request=tab)["shown"]
    session = ctx.review(review_id)
    assert session.decision(on_page["item"]).decision == "accept" and session.decision(ahead["item"]) is None
    assert after["item"] == ctx.cursor(tab).item  # on to the image after it
    assert review.decide(ctx, "reject", review_id, model, 0.1, "all", request=tab)["shown"] != after  # an API call: the cursor's
    assert session.decision(after["item"]).decision == "reject"
    review.decide(ctx, "accept", review_id, model, 0.1, "all", ahead["item"], request=tab)  # an API call naming the id alone
    assert session.decision(ahead["item"]).decision == "accept"


def test_two_tabs_of_a_browser_that_score_their_first_images_score_into_one_review(ctx, model, parts):
    """Gradio reads the browser's store when a page loads only: a second tab opened before the first scored made a
    review of its own, and after a reload both tabs showed the one written last, the other out of reach."""
    import os
    import time

    from rbd.notices import collect
    from ui import model_bar, review

    good, bad = parts
    quiet = {"progress": lambda *a, **k: None}
    upload = [str(bad[0])]
    # the browser's first review: its id made before the Score runs, the page's and the browser's at once (a reload during
    # a first Score lost every image scored: the page learnt the id only once scoring ended)
    first = review.joined_review(ctx, upload, None, "", "browser-1", model)["review_id"]
    assert ctx.browser_review("browser-1") == first and ctx.review(first) is None  # no image yet
    assert review.score(ctx, [str(good[0])], None, first, model, **quiet)["review_id"] == first
    with collect() as notes:
        joined = review.joined_review(ctx, upload, None, "", "browser-1", model)  # the other tab: no review id yet
    assert joined == {"review_id": first} and notes == ["these images join the review another tab of this browser scored "
                                                        "into: the two tabs share it"]
    assert review.joined_review(ctx, None, None, "", "browser-1", model) == {}  # Score on empty boxes: nothing joins
    assert review.joined_review(ctx, upload, None, "own", "browser-1", model) == {}  # a tab with a review scores into it
    second = review.joined_review(ctx, upload, None, "", "browser-2", model)["review_id"]  # another browser: a review of its own
    assert second != first and ctx.browser_review("browser-2") == second and ctx.browser_review("browser-1") == first
    assert review.joined_review(ctx, upload, None, "", "../x", model)["review_id"] not in (first, second)  # an id the browser sent: checked
    review.remember_review(ctx, "../x", "browser-1")  # and so is the review's
    started = review.new_review(ctx)["review_id"]  # Start a new review: the browser's at once, before any Score, so that
    review.remember_review(ctx, started, "browser-1")  # a tab with none never joins the review it closed
    assert review.joined_review(ctx, upload, None, "", "browser-1", model) == {"review_id": started}
    record = ctx.browsers / "browser-1"
    os.utime(record, (time.time() - ctx.idle_s - 60,) * 2)
    ctx.remove_idle()
    assert not record.exists() and review.joined_review(ctx, upload, None, "", "browser-1", model)["review_id"] not in (first, started)  # swept with the idle records
    review.remember_review(ctx, first, "browser-1")
    other = model_bar.load_model(ctx, _another_model(ctx, model), "", "", "browser-1")["model"]  # this tab's model scored
    assert review.joined_review(ctx, upload, None, "", "browser-1", other)["review_id"] != first  # none of it: a review of its own, not
    # the other tab's, where Score failed and the error's advice (Re-score) re-scored the other tab's review


def test_a_decision_on_a_verdict_that_changed_since_the_page_drew_it_records_nothing(ctx, model, parts):
    """Another tab re-scored the review (or the threshold moved) after the page drew an image "defective": an accept
    recorded the new verdict, "good", which the inspector never saw, so the label came out reversed."""
    import types

    from rbd.notices import collect
    from ui import review

    good, bad = parts
    review_id = review.score(ctx, [str(bad[0])], None, "", model, progress=lambda *a, **k: None)["review_id"]
    tab = types.SimpleNamespace(session_hash="tab-1")
    drawn = review.show(ctx, review_id, model, 0.1, "all", request=tab)["shown"]
    assert drawn == {"item": 0, "verdict": "defective", "decided": None}
    session = ctx.review(review_id)
    with collect() as notes:  # as a re-score that now finds it good: the page still shows "defective"
        again = review.decide(ctx, "accept", review_id, model, 0.1, "all", {**drawn, "verdict": "good"}, request=tab)
    assert session.decision(0) is None and again["shown"] == drawn and "decision: **not reviewed**" in again["text"]
    assert notes == [f"{bad[0].name}: the model's verdict changed since it was drawn (the review was re-scored, or the threshold "
                     "moved): it is now defective, and nothing was decided; look again"]
    review.decide(ctx, "accept", review_id, model, 0.1, "all", again["shown"], request=tab)  # on what the page shows now
    assert session.decision(0).decision == "accept" and session.labels[0] == 1.0


def test_a_decision_on_an_image_another_tab_decided_since_records_nothing(ctx, model, parts):
    """Two tabs on one review, both showing the first unreviewed image: tab A accepted it, tab B (drawn before) rejected
    it, and A's decision was replaced unseen; B then went on to the second image of the view, skipping the first."""
    import types

    from rbd.notices import collect
    from ui import review

    good, bad = parts
    review_id = review.score(ctx, [str(p) for p in bad[:3]], None, "", model, progress=lambda *a, **k: None)["review_id"]
    a, b = types.SimpleNamespace(session_hash="tab-a"), types.SimpleNamespace(session_hash="tab-b")
    drawn_a = review.show(ctx, review_id, model, 0.1, "unreviewed", request=a)["shown"]
    drawn_b = review.show(ctx, review_id, model, 0.1, "unreviewed", request=b)["shown"]
    assert drawn_a == drawn_b
    first, session = drawn_a["item"], ctx.review(review_id)
    review.decide(ctx, "accept", review_id, model, 0.1, "unreviewed", drawn_a, request=a)
    with collect() as notes:
        again = review.decide(ctx, "reject", review_id, model, 0.1, "unreviewed", drawn_b, request=b)
    assert session.decision(first).decision == "accept"  # A's stands
    assert notes == [f"{session.item(first).file_name}: another tab decided it (accept) since it was drawn here, and nothing "
                     "was decided; look again"]
    assert again["shown"]["item"] != first  # out of B's view now: its first unreviewed image, the one A's view moved on to
    moved_on = review.show(ctx, review_id, model, 0.1, "unreviewed", request=a)["shown"]["item"]
    assert again["shown"]["item"] == moved_on
    after = review.decide(ctx, "reject", review_id, model, 0.1, "unreviewed", {"item": first, "verdict": "defective"}, request=b)
    assert session.decision(first).decision == "reject"  # an API call that names no decision seen decides as before, and
    assert after["shown"]["item"] == moved_on  # the view goes to its first unreviewed image: it skipped to the second
    # this tab's own second key, pressed before the page drew the first one's view (the same view sent twice): no other
    # tab's decision, so it replaces the first, as the inspector meant
    drawn = review.show(ctx, review_id, model, 0.1, "all", request=a)["shown"]
    review.decide(ctx, "accept", review_id, model, 0.1, "all", drawn, request=a)
    review.decide(ctx, "reject", review_id, model, 0.1, "all", drawn, request=a)
    assert session.decision(drawn["item"]).decision == "reject"
    # the mask editor opened in B, the image decided in A meanwhile: Save says so first, keeping the paint, then stores it
    review.show(ctx, review_id, model, 0.1, "all", request=b)
    review.step(ctx, 0, review_id, model, 0.1, "all", request=b)
    painted = review.edit(ctx, review_id, model, 0.1, request=b)
    item = ctx.cursor(b).editing["item"]
    review.decide(ctx, "accept", review_id, model, 0.1, "all", {"item": item, "verdict": "defective"}, request=a)
    layer = np.zeros((*painted["editor"]["canvas_size"][::-1], 4), np.uint8)
    layer[:5, :5, 3] = 255
    with pytest.raises(rbd.InvalidInputError, match="another tab decided it .accept. since this editor opened: press Save again"):
        review.save_mask(ctx, {"layers": [layer]}, review_id, model, 0.1, "all", request=b)
    assert session.decision(item).decision == "accept"
    review.save_mask(ctx, {"layers": [layer]}, review_id, model, 0.1, "all", request=b)
    assert session.decision(item).decision == "correct"


def test_a_page_left_open_across_a_restart_decides_nothing_on_a_guess(ctx, model, parts):
    """The server keeps which image a tab shows; one restarted since (or a tab left for a day) does not know it. A
    click on a thumbnail of page 2 chose page 1's, and a key decided on another image than the one on screen: now the
    press is not applied and the review is drawn again; the editor says to reload."""
    import types

    import gradio as gr

    from ui import context, review

    good, bad = parts
    review_id = review.score(ctx, [str(p) for p in good[:2] + bad[:2]], None, "", model,
                             progress=lambda *a, **k: None)["review_id"]
    tab = types.SimpleNamespace(session_hash="tab-1")
    review.show(ctx, review_id, model, 0.1, "all", request=tab)
    review.decide(ctx, "reject", review_id, model, 0.1, "all", request=tab)
    review.step(ctx, 2, review_id, model, 0.1, "all", request=tab)  # on the fourth image; the first is rejected
    restarted = context.Context(ctx.work, ctx.catalog)
    before = [d.decision if d else None for d in map(restarted.review(review_id).decision, range(4))]
    clicked = gr.SelectData(None, {"index": 3, "value": None, "selected": True})
    for press in (lambda: review.decide(restarted, "accept", review_id, model, 0.1, "all", request=tab),
                  lambda: review.step(restarted, 1, review_id, model, 0.1, "all", request=tab),
                  lambda: review.select(restarted, review_id, model, 0.1, "all", clicked, request=tab)):
        fresh = context.Context(ctx.work, ctx.catalog)  # each press the first since a restart
        restarted = fresh
        with pytest.warns(UserWarning, match="this page's place in the review was lost .*not applied"):
            shown = press()
        assert "**2 / 4**" in shown["text"]  # drawn again at its first unreviewed image
    assert [d.decision if d else None for d in map(restarted.review(review_id).decision, range(4))] == before
    assert "**3 / 4**" in review.decide(restarted, "accept", review_id, model, 0.1, "all", request=tab)["text"]  # then as ever
    for editor in (lambda c: review.edit(c, review_id, model, 0.1, request=tab),
                   lambda c: review.save_mask(c, {"layers": []}, review_id, model, 0.1, "all", request=tab)):
        with pytest.raises(rbd.InvalidInputError, match="lost .*: reload the page"):
            editor(context.Context(ctx.work, ctx.catalog))


def test_a_picked_folder_and_a_zip_keep_their_folders_in_review_and_inspect(ctx, model, parts, tmp_path):
    from ui import inspection, review

    good, bad = parts
    uploaded = []  # as a browser uploads a picked folder: each file under its name alone
    for i, source in enumerate([good[0], bad[0]]):
        (tmp_path / str(i)).mkdir()
        uploaded.append(shutil.copy(source, tmp_path / str(i) / "000.png"))
    picked = [["line/good/000.png", good[0].stat().st_size], ["line/broken/000.png", bad[0].stat().st_size]]
    review_id = review.score(ctx, None, uploaded, "", model, picked, progress=lambda *a, **k: None)["review_id"]
    assert sorted(item.file_name for item in ctx.review(review_id).items) == ["line/broken/000.png", "line/good/000.png"]
    unpicked = review.score(ctx, None, uploaded, "", model, progress=lambda *a, **k: None)["review_id"]  # no record: by name
    assert sorted(item.file_name for item in ctx.review(unpicked).items) == ["000.png", "000_1.png"]

    archive = tmp_path / "line.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(good[0], "good/000.png")
        z.write(bad[0], "broken/000.png")
    inspected = inspection.inspect_images(ctx, None, [str(archive)], model, 0.1, 0.5, None)["results"].data
    assert sorted(inspected["image"]) == ["line/broken/000.png", "line/good/000.png"]


def test_the_app_says_which_images_are_out_of_the_models_domain(ctx, model, parts, tmp_path):
    from ui import inspection, review

    yy, xx = np.mgrid[:64, :80]
    checkerboard = ((((yy // 8) + (xx // 8)) % 2) * 255).astype(np.uint8)  # not the striped parts the model knows
    other = tmp_path / "other.png"
    Image.fromarray(np.stack([checkerboard, 255 - checkerboard, checkerboard], axis=-1)).save(other)
    good, _ = parts
    review_id = review.score(ctx, [str(good[0]), str(other)], None, "", model, progress=lambda *a, **k: None)["review_id"]
    shown = review.show(ctx, review_id, model, 0.1, "out-of-domain")
    assert "**1** of them looks unlike" in shown["scored_by"]
    assert "**1 / 1**" in shown["text"] and "other.png" in shown["text"] and "Out of domain" in shown["text"]
    assert shown["gallery"]["value"][0][1].startswith("other.png\n⚠ ")
    score = ctx.review(review_id).items[1].score  # to Inspect's four places, not three
    assert shown["gallery"]["value"][0][1].startswith(f"other.png\n⚠ {score:.4f} ")
    everything = review.show(ctx, review_id, model, 0.1, "all")
    assert [caption.startswith("other.png") for _, caption in everything["gallery"]["value"] if "⚠" in caption] == [True]
    inspected = inspection.inspect_images(ctx, None, [str(good[0]), str(other)], model, 0.1, 0.5, None)["results"].data
    assert dict(zip(inspected["image"], inspected["out of domain"])) == {good[0].name: "", "other.png": "⚠"}


def test_a_review_scored_before_familiarity_was_recorded_says_a_re_score_checks_it(ctx, model, parts):
    from ui import review
    from ui.context import Context

    good, _ = parts
    review_id = review.score(ctx, [str(p) for p in good[:2]], None, "", model, progress=lambda *a, **k: None)["review_id"]
    path = ctx.review(review_id).folder / "items.json"
    data = json.loads(path.read_text())
    for record in data["items"]:
        del record["familiarity"]
    path.write_text(json.dumps({**data, "format_version": 4}))  # as rbd wrote it before format 5
    restarted = Context(ctx.work, ctx.catalog)  # the app started again, on the old review
    assert "2 of them were scored before rbd checked" in review.show(restarted, review_id, model, 0.1, "all")["scored_by"]
    review.rescore(restarted, review_id, model, progress=lambda *a, **k: None)
    assert "scored before rbd checked" not in review.show(restarted, review_id, model, 0.1, "all")["scored_by"]


def test_inference_events_share_one_limit_and_review_views_are_drawn_in_turn(app_server):
    import app as app_module

    demo = app_module.build_app(app_server[1] / "work-wiring", Catalog(app_server[1] / "shipped", app_server[1] / "work-wiring" / "m"))
    fns = list(demo.fns.values())
    inference = {fn.concurrency_limit for fn in fns if fn.concurrency_id == "inference"}
    assert inference == {8}  # the lowest limit of a group wins: every member states the same one
    # two views finished together could reach the browser out of order: every event that draws the review runs alone
    drawing = [fn for fn in fns if any(getattr(block, "elem_id", None) == "review-text" for block in fn.outputs)]
    assert len(drawing) >= 8 and {(fn.concurrency_id, fn.concurrency_limit) for fn in drawing} == {("review-view", 1)}
    decisions = {fn.api_name for fn in drawing} & {"review_accept", "review_reject", "review_next", "review_previous"}
    assert len(decisions) == 4
    # a re-judge triggered while another is pending runs after it: dropped (Gradio's "once"), two quick model picks
    # left Inspect showing the first model's verdicts under the second one's name
    loads = {i for i, fn in demo.fns.items() if fn.name in ("load_pressed", "picked")}  # the Load button, a pick in the list
    assert len(loads) == 2
    rejudges = [fn for fn in fns if fn.trigger_after in loads and fn.trigger_only_on_success]
    assert sorted(fn.name for fn in rejudges) == sorted(["rescore", "rejudged", "rows", "of_another", "export_taken_away"] * len(loads))  # and Review's zip goes
    assert {fn.trigger_mode for fn in rejudges if fn.name != "export_taken_away"} == {"always_last"}


def test_an_upload_boxs_own_events_leave_the_status_of_the_buttons_reading_it_alone(app_server):
    """A button pressed while its box uploads waits for the upload, then both events go: one of the box's own that
    finished after the button's failed event set the status it shares to complete, and the error badge was gone."""
    import gradio as gr

    import app as app_module

    demo = app_module.build_app(app_server[1] / "work-boxes", Catalog(app_server[1] / "shipped", app_server[1] / "work-boxes" / "m"))
    fns = list(demo.fns.values())
    pressed = [fn for fn in fns if any(target[1] == "click" for target in fn.targets)]
    boxes = {box._id: box for fn in pressed for box in fn.inputs if isinstance(box, (gr.File, gr.Image))}
    assert {"inspect-image", "inspect-files", "eval-zip"} <= {box.elem_id for box in boxes.values()}
    for fn in pressed:
        shown = {block._id for block in fn.show_progress_on or fn.outputs}
        for own in [other for other in fns if any(target[0] in boxes for target in other.targets)]:
            if any(box._id in [target[0] for target in own.targets] for box in fn.inputs):
                assert not shown & {block._id for block in own.outputs}, (fn.name, own.name)


def test_fine_tunes_actions_empty_their_status_line_first(app_server):
    """A refusal is a message: the line kept an earlier success standing as if it were this click's ("Pushed: …" after
    a push that failed, or a push of another model)."""
    import app as app_module

    demo = app_module.build_app(app_server[1] / "work-afresh", Catalog(app_server[1] / "shipped", app_server[1] / "work-afresh" / "m"))
    actions = {fn.name: fn for fn in demo.fns.values() if fn.name in ("share", "check_delete", "upload_model", "push")}
    assert len(actions) == 4
    for name, fn in actions.items():
        first = demo.fns[fn.trigger_after]
        lines = [block for block in fn.outputs if getattr(block, "elem_id", None) in ("train-status", "train-push-status")]
        assert first.name == "emptied" and first.outputs == lines and len(lines) == 1, name


def test_a_closed_tab_cancels_and_forgets_its_training(app_server):
    """Gradio drops a closed tab's queued events, so the tab's `pending` entry would stay for good."""
    import gradio as gr
    from gradio.helpers import special_args

    import app as app_module
    from ui import fine_tune

    demo = app_module.build_app(app_server[1] / "work-unload", Catalog(app_server[1] / "shipped", app_server[1] / "work-unload" / "m"))
    ctx = demo.rbd_context
    unload = [fn for fn in demo.fns.values() if any(target[1] == "unload" for target in fn.targets)]
    assert len(unload) == 1
    queued, started = types.SimpleNamespace(session_hash="tab-q"), types.SimpleNamespace(session_hash="tab-s")
    fine_tune.pressed(ctx, queued)
    fine_tune.pressed(ctx, started)
    cancels = []
    ctx.jobs["tab-s"]["job"] = types.SimpleNamespace(cancel=lambda: cancels.append("tab-s"))
    waiting = ctx.jobs["tab-q"]
    inputs, *_ = special_args(unload[0].fn, [], request=gr.Request(session_hash="tab-q"))  # as Gradio calls it
    unload[0].fn(*inputs)
    assert "tab-q" not in ctx.jobs and waiting["cancelled"] and "tab-s" in ctx.jobs
    fine_tune.closed(ctx, started)
    assert ctx.jobs == {} and cancels == ["tab-s"]
    fine_tune.closed(ctx, queued)  # closed again, or a tab that never trained: nothing to do


def test_a_fine_tune_asks_zerogpu_for_its_time_budget():
    from ui.fine_tune import training_seconds

    assert training_seconds(None, None, None, False, "s", False, 30, 5, {}, "") == 360
    assert training_seconds(None, None, None, False, "s", False, 30, 0, {}, "") == 600  # no budget
    assert training_seconds(files=None, minutes=2.5) == 210


def test_on_a_space_gpu_work_runs_inside_spaces_gpu(monkeypatch):
    """On a ZeroGPU Space `gpu` is `spaces.GPU`; a recording stand-in shows what each handler asks for."""
    requests = []

    def GPU(fn=None, duration=None):
        requests.append(duration)
        return fn if fn is not None else (lambda fn: fn)

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    modules = ["ui.wiring", "ui.inspection", "ui.review", "ui.fine_tune", "ui.evaluation"]
    try:
        for name in modules:
            importlib.reload(importlib.import_module(name))
        from ui.fine_tune import training_seconds

        assert requests.count(training_seconds) == 1  # the fine-tune
        assert requests.count(None) == 4  # inspect, review scoring and re-scoring, evaluation: the default duration
    finally:
        monkeypatch.delitem(sys.modules, "spaces")
        for name in modules:
            importlib.reload(importlib.import_module(name))



def test_the_active_model_can_be_downloaded_as_it_judges_at_any_time(ctx, model, tmp_path):
    """Not only when its training ends: after a reload the fine-tune's download was gone."""
    from ui import fine_tune

    own = ctx.detector(model).calibration
    rate = 100 * own.false_alarm_rate
    recalibrated = {**model, "calibration": {**own.to_dict(), "threshold": own.threshold + 1.0, "normal_scores": [0.1, 0.2, 0.3]}}
    for state, threshold in ((model, own.threshold), (recalibrated, own.threshold + 1.0)):
        archive = Path(fine_tune.download(ctx, state, rate)["model_file"])
        shutil.unpack_archive(archive, tmp_path / archive.stem)
        loaded = rbd.load(tmp_path / archive.stem)
        assert loaded.calibration.threshold == pytest.approx(threshold) and loaded.config == ctx.detector(model).config
        assert archive.parent.parent == ctx.exports  # a fresh export folder, cleared after a day


def test_a_download_judges_at_the_bars_rate(ctx, model, parts, tmp_path):
    """The model's own threshold was saved whatever the bar's rate: `rbd predict` on the download judged otherwise than
    the app had. The bar's threshold is saved as one set by hand: the calibration stays the model's, so the copy is
    the same model (a review it scored is still its own), and the bar starts at that rate when it is loaded again."""
    from rbd.thresholds import set_by_hand
    from ui import fine_tune, model_bar

    own = ctx.detector(model).calibration
    for rate in (5.0, 100 * own.false_alarm_rate):
        archive = Path(fine_tune.download(ctx, model, rate)["model_file"])
        shutil.unpack_archive(archive, tmp_path / f"{rate}")
        loaded = rbd.load(tmp_path / f"{rate}")
        assert loaded.threshold == model_bar.threshold(ctx, model, rate) and loaded.calibration == own
        assert model_bar.model_rate(set_by_hand(loaded.calibration, loaded.threshold)) == pytest.approx(rate)
    assert loaded.threshold == own.threshold


def test_the_last_trainings_plots_and_a_download_go_once_another_model_is_active(ctx, model):
    """Another model loaded (its zip, the picker) left the last training's calibration (another threshold than the model
    line's) and "Download the model", which gave the model before."""
    from ui import fine_tune

    made_for = fine_tune.download(ctx, model, 1.0)["made_for"]
    assert fine_tune.of_another(ctx, made_for, model, 1.0) == {} and fine_tune.of_another(ctx, None, model, 1.0) == {}  # kept
    # the bar judging at another threshold (a rate moved, a review's recalibration): the download alone goes, which
    # judged otherwise than the bar; the training's loss and calibration stay, of this model still
    for moved, rate in ((model, 10.0), (_recalibrated(ctx, model), 1.0)):
        gone = fine_tune.of_another(ctx, made_for, moved, rate)
        assert gone["model_file"] is None and "loss" not in gone and gone["made_for"]["threshold"] is None
    other = {**model, "key": _another_model(ctx, model)}
    assert fine_tune.of_another(ctx, made_for, other, 1.0) == {"loss": None, "calibration": None, "model_file": None, "made_for": None}


def test_a_models_zip_loads_as_this_browsers_own_model_active_at_once(ctx, model, parts, tmp_path):
    """A model trained on the command line reached the app only through the Hub."""
    from ui import fine_tune

    archive = Path(fine_tune.download(ctx, model, 1.0)["model_file"])
    given = Path(shutil.copy(archive, tmp_path / "bolts line.zip"))
    loaded = fine_tune.upload_model(ctx, str(given), "browser-1")
    key = loaded["model"]["key"]
    assert Path(key).parent == ctx.catalog.owner_folder("browser-1") and Path(key).name.startswith("bolts-line-")
    assert loaded["status"].startswith(f"Loaded **{Path(key).name}** from bolts line.zip. It is now the active model, yours only")
    assert loaded["choice"]["value"] == key and key in [k for _, k in ctx.catalog.entries("browser-1")]
    assert key not in [k for _, k in ctx.catalog.entries("browser-2")]  # private, as a fine-tune is
    _, bad = parts
    assert ctx.detector(loaded["model"]).predict(bad[0]).score == ctx.detector(model).predict(bad[0]).score
    (tmp_path / "notes.zip").write_bytes(b"not a zip")
    with pytest.raises(rbd.CheckpointError, match="notes.zip is not a readable zip file"):
        fine_tune.upload_model(ctx, str(tmp_path / "notes.zip"), "browser-1")
    with pytest.raises(rbd.CheckpointError, match="model.onnx: a model is loaded from a zip of its checkpoint folder"):
        fine_tune.upload_model(ctx, str(tmp_path / "model.onnx"), "browser-1")
    with pytest.raises(rbd.InvalidInputError, match="invalid browser session id"):
        fine_tune.upload_model(ctx, str(given), "../x")
    again = Path(shutil.copy(archive, tmp_path / f"{Path(key).name}.zip"))  # the download of the loaded model, loaded again
    assert re.fullmatch(r"bolts-line-\d{8}-\d{6}-[0-9a-f]{4}", Path(fine_tune.upload_model(ctx, str(again), "browser-1")["model"]["key"]).name)


def test_a_models_zip_is_served_on_the_apps_device(ctx, model, tmp_path, monkeypatch):
    """It was read onto the CPU, and that copy was what the catalog kept and served on a GPU server."""
    from ui import fine_tune

    archive = Path(fine_tune.download(ctx, model, 1.0)["model_file"])
    devices, load = [], rbd.load
    monkeypatch.setattr(rbd, "load", lambda *args, **kwargs: devices.append(kwargs.get("device")) or load(*args, **kwargs))
    monkeypatch.setattr(ctx.catalog, "device", torch.device("cpu", 0))  # (a device of its own, as a GPU's would be)
    fine_tune.upload_model(ctx, str(archive), "browser-1")
    assert devices[0] == ctx.catalog.device, devices


def test_exports_a_day_old_go_with_the_hourly_sweep_not_with_each_export(ctx):
    """Every export swept the whole export folder, and Inspect makes one on every threshold move."""
    old, fresh = ctx.export_folder(), ctx.export_folder("a mask's key")
    os.utime(old, (time.time() - 90000, time.time() - 90000))
    ctx.export_folder()
    assert old.exists()  # an export leaves the others alone
    ctx.remove_idle()
    assert not old.exists() and fresh.exists()


def test_an_upload_folder_left_by_a_killed_request_goes_with_the_sweep(ctx):
    """Each request's upload folder goes as the request ends; one whose request the app was killed in stayed for good."""
    with ctx.upload_folder() as live:
        left = Path(tempfile.mkdtemp(dir=ctx.uploads))
        (left / "a.png").write_bytes(b"an upload")
        os.utime(left, (time.time() - 90000, time.time() - 90000))
        ctx.remove_idle()
        assert not left.exists() and live.exists()


@pytest.mark.parametrize("value", ["abc", "", "nan", "0", "-1"])
def test_a_bad_idle_time_is_refused_by_name(value):
    """Text failed the app's start with a bare "could not convert string to float"; 0, -1 or nan removed every review
    and private model at the first sweep."""
    from ui.context import idle_days

    with pytest.raises(rbd.InvalidInputError, match=f"RBD_IDLE_DAYS must be a number of days above 0 \\(inf: never\\), got '{value}'"):
        idle_days(value)
    assert idle_days("2.5") == 2.5 and idle_days("inf") == float("inf")


def test_a_push_shares_the_model_as_the_bar_judges_by_it(ctx, model, monkeypatch):
    """After a review's recalibration the bar judges by the new threshold: a push uploads that one."""
    from ui import fine_tune

    pushed = []
    monkeypatch.setattr(rbd, "push_to_hub", lambda detector, repo_id, **kwargs: pushed.append(detector) or f"https://hf.co/{repo_id}")
    own = ctx.detector(model).calibration
    rate = 100 * own.false_alarm_rate
    assert fine_tune.push(ctx, model, "acme/parts", "hf_x", None, rate)["push_status"] == (
        f"Pushed: https://hf.co/acme/parts (judging at raw threshold {own.threshold:.4f}, {rate:g}% expected false alarms)")
    recalibrated = {**model, "calibration": {**own.to_dict(), "threshold": own.threshold + 1.0, "normal_scores": [0.1, 0.2, 0.3]}}
    status = fine_tune.push(ctx, recalibrated, "acme/parts", "hf_x", None, rate)["push_status"]
    assert status.endswith(f"{rate:g}% expected false alarms, recalibrated from the review)")
    assert pushed[0].calibration is own and pushed[1].calibration.threshold == own.threshold + 1.0
    assert pushed[1].calibration.normal_scores == [0.1, 0.2, 0.3] and pushed[1].model is pushed[0].model
    assert ctx.detector(model).calibration is own  # the loaded model itself is unchanged



def test_a_push_puts_on_the_card_the_verdicts_at_the_threshold_it_shares(ctx, model, category, tmp_path, monkeypatch):
    """Evaluated at the model's own threshold and pushed at 30 %: the card gave false alarms and recall at the former,
    beside a "Threshold: ..., set by hand" line of the latter."""
    from ui import evaluation, fine_tune, model_bar

    archive = shutil.make_archive(str(tmp_path / "stripes"), "zip", category.parent, category.name)
    evaluated = evaluation.evaluate(ctx, archive, model, 1.0, progress=lambda *a, **k: None)["evaluated"]
    cards = []
    monkeypatch.setattr(rbd, "push_to_hub", lambda detector, repo_id, **kwargs: cards.append((detector, kwargs["metrics"])) or "")
    fine_tune.push(ctx, model, "acme/parts", "hf_x", evaluated, 30.0)
    pushed, metrics = cards[0]
    loose = model_bar.threshold(ctx, model, 30.0)
    assert pushed.threshold == metrics["threshold"] == loose != evaluated["metrics"]["threshold"]
    judged = rbd.metrics.at_threshold([r["label"] for r in evaluated["rows"]], [r["score"] for r in evaluated["rows"]], loose)
    assert (metrics["false_alarm_rate"], metrics["recall"]) == (judged["false_alarm_rate"], judged["recall"])
    assert metrics["image_auroc"] == evaluated["metrics"]["image_auroc"]


def test_a_recalibration_of_a_model_calibrated_outside_the_slider_keeps_the_slider_in_range(ctx, model, parts):
    """The API calibrates at any rate (here 50 %); a slider set out of its range fails every event that reads it."""
    from ui import model_bar, review

    detector = ctx.detector(model)
    calibration = rbd.Calibration.from_dict({**detector.calibration.to_dict(), "false_alarm_rate": 0.5})
    key = ctx.catalog.add_trained(rbd.Detector(detector.model, calibration, detector.training), "browser-1")
    wide = model_bar.load_model(ctx, key, "", "", "browser-1")["model"]
    good, _ = parts
    review_id = review.score(ctx, [str(p) for p in good[:3]], None, "", wide, progress=lambda *a, **k: None)["review_id"]
    review.show(ctx, review_id, wide, 30.0, "all")
    for _ in range(3):
        review.decide(ctx, "accept", review_id, wide, 30.0, "all")
    applied = review.recalibrate_anyway(ctx, review_id, wide, 30.0)
    assert applied["rate"] == 30.0 and "for 30% expected false alarms" in applied["info"]


def test_sharing_a_recalibrated_fine_tune_keeps_its_recalibration(ctx, model):
    from ui import fine_tune, model_bar

    key = _another_model(ctx, model)
    mine = model_bar.load_model(ctx, key, "", "", "browser-1")["model"]
    recalibration = {**ctx.detector(mine).calibration.to_dict(), "threshold": 123.0}
    shared = fine_tune.share(ctx, {**mine, "calibration": recalibration}, "browser-1")
    assert shared["model"]["key"] != key
    assert rbd.Calibration.from_dict(shared["model"]["calibration"]) == rbd.Calibration.from_dict(recalibration)
    assert "recalibrated" in shared["info"] and "raw threshold 123.0000" in shared["info"]


def test_load_model_with_nothing_chosen_is_a_clear_error(ctx):
    from ui import model_bar

    with pytest.raises(rbd.CheckpointError):
        model_bar.load_model(ctx, None, "", "", "browser-1")

def test_the_beginning_of_a_name_typed_into_the_picker_picks_that_model(ctx, tmp_path):
    """Typing "str" and clicking away gave an error toast ("'str' is neither a listed checkpoint..."), where Enter
    loaded the model the list showed for it; the picker then named what was loaded."""
    from ui import model_bar

    stripes = ctx.catalog.default_key()
    loaded = model_bar.load_pressed(ctx, " STR", "", "", "browser-1")
    assert loaded["model"]["key"] == loaded["choice"] == stripes
    os.symlink(stripes, tmp_path / "shipped" / "stencils")
    with pytest.raises(rbd.CheckpointError, match=r"'st' begins the names of stencils \(shipped\), stripes \(shipped\): pick one"):
        model_bar.load_pressed(ctx, "st", "", "", "browser-1")
    with pytest.raises(rbd.CheckpointError, match="'x' is neither a listed checkpoint nor a Hub repo id"):
        model_bar.load_pressed(ctx, "x", "", "", "browser-1")
    assert model_bar.load_pressed(ctx, "stripes (", "", "", "browser-1")["choice"] == stripes
    os.symlink(stripes, tmp_path / "shipped" / "stripes-2")  # a fine-tune named "stripes" is listed so too
    assert model_bar.load_pressed(ctx, "Stripes", "", "", "browser-1")["choice"] == stripes  # the name whole: that model


def test_a_second_reviews_recalibration_keeps_the_first_ones_images_in_the_bar(ctx, model, parts):
    """Review A's recalibration applied in the bar, then review B's: A's images were dropped (B's started from the
    model's own calibration)."""
    from ui import model_bar, review

    good, _ = parts
    rate = 100 * ctx.detector(model).calibration.false_alarm_rate
    for review_id, images in (("review-a", good[:2]), ("review-b", good[2:3])):
        review.score(ctx, [str(p) for p in images], None, review_id, model, progress=lambda *a, **k: None)
        for item in ctx.review(review_id).items:
            ctx.review(review_id).decide(item.id, "accept" if item.verdict == "good" else "reject", item.score + 1)
        model = review.recalibrate(ctx, review_id, model, rate, confirmed=True)["model"]
    both = model_bar.recalibrated_by_review(ctx, model)
    assert [count for _, count in both.reviews] == [2, 1]
    assert len(both.normal_scores) == len(ctx.detector(model).calibration.normal_scores) + 3


def test_a_recalibration_that_catches_no_synthetic_defect_waits_for_confirmation(ctx, model, parts):
    """Defective parts marked good by mistake (their "defective" verdict rejected) push the threshold above every synthetic defect:
    the app says so and keeps the old threshold until the user applies it anyway."""
    from ui import review

    _, bad = parts
    # this tiny model finds its defective parts unlike anything it learned (out of domain), which would keep them out of
    # a recalibration; here its memory calls every patch familiar, as a real model does for most defects
    ctx.detector(model).model.memory.familiar_distance.fill_(float("inf"))
    review_id = review.score(ctx, [str(p) for p in bad[:3]], None, "", model, progress=lambda *a, **k: None)["review_id"]
    review.show(ctx, review_id, model, 0.1, "unreviewed")
    for _ in range(3):
        review.decide(ctx, "reject", review_id, model, 0.1, "unreviewed")
    rate = 100 * ctx.detector(model).calibration.false_alarm_rate
    held = review.recalibrate(ctx, review_id, model, rate)
    assert "model" not in held  # not applied
    assert "none of the synthetic defects" in held["warning"]["value"] and held["anyway"]["visible"]
    assert "3 image(s) accepted as good score like the synthetic defects: " in held["warning"]["value"]  # named, with their scores
    applied = review.recalibrate_anyway(ctx, review_id, model, rate)
    assert applied["model"]["calibration"]["threshold"] > model_threshold(ctx, model)
    assert applied["warning"]["visible"] is False
    loose = review.recalibrate_anyway(ctx, review_id, model, 20.0)  # at the bar's rate: it went back to the model's own
    assert loose["rate"] == 20.0 and loose["model"]["calibration"]["false_alarm_rate"] == 0.2
    assert loose["model"]["calibration"]["threshold"] < applied["model"]["calibration"]["threshold"]


def _another_model(ctx, model) -> str:
    """The key of a model like `model` but retrained: its calibration's normal scores differ."""
    detector = ctx.detector(model)
    calibration = rbd.Calibration.from_dict({**detector.calibration.to_dict(), "normal_scores": [0.1, 0.2, 0.3]})
    return ctx.catalog.add_trained(rbd.Detector(detector.model, calibration, detector.training), "browser-1")


def test_load_reads_a_listed_folder_again_as_it_is_on_disk_now(ctx, model, tmp_path):
    """`rbd train --out checkpoints/parts` while the app ran: Load (or a reload of the page) kept serving the model
    before, its threshold and weights, until the app restarted."""
    from ui import model_bar

    folder = Path(shutil.copytree(ctx.catalog.shipped / "stripes", ctx.catalog.shipped / "parts"))
    first = model_bar.load_pressed(ctx, str(folder), "", "", "browser-1")["model"]
    before = ctx.detector(first)
    retrained = rbd.Detector(before.model, rbd.Calibration.from_dict({**before.calibration.to_dict(),
                                                                      "normal_scores": [0.1, 0.2, 0.3]}), before.training)
    rbd.save(retrained, folder)
    assert ctx.detector(first) is before  # the model in use changes only when it is loaded again
    again = model_bar.load_pressed(ctx, str(folder), "", "", "browser-1")["model"]
    assert model_bar.identity(ctx, again) == retrained.calibration.fingerprint != before.calibration.fingerprint


def model_bar_calibration(ctx, model):
    return ctx.detector(model).calibration


def model_threshold(ctx, model) -> float:
    return ctx.detector(model).calibration.threshold


def test_key_presses_apply_one_at_a_time_each_from_where_the_last_left():
    import threading
    import time

    from ui.context import Cursor

    cursor, inside, overlaps = Cursor(item=0), [0], []

    def move():
        inside[0] += 1
        overlaps.append(inside[0])
        item = cursor.item
        time.sleep(0.01)  # without the lock, the other presses would start here, from the same place
        cursor.item = item + 1
        inside[0] -= 1
        return {"text": str(cursor.item)}

    threads = [threading.Thread(target=cursor.press, args=(move,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert cursor.item == 8 and max(overlaps) == 1

    def failing():
        raise ValueError("no image")

    with pytest.raises(ValueError):
        cursor.press(failing)
    assert cursor.press(move) == {"text": "9"}  # a failed press leaves the cursor usable


def test_the_browser_state_secret_survives_a_restart_and_is_the_servers_alone(ctx, monkeypatch):
    from ui.context import Context

    monkeypatch.delenv("RBD_STATE_SECRET", raising=False)
    secret = ctx.state_secret
    path = ctx.work / "browser-state-secret"
    assert len(secret) == 32 and (path.stat().st_mode & 0o777) == 0o600
    assert Context(ctx.work, ctx.catalog).state_secret == secret


def _unreadable(folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    (folder / "text.png").write_text("not an image")
    return [folder / "text.png"]


def _copies(folder: Path, names: list[str], sources: list[Path]) -> list[Path]:
    """Each of `sources` copied into `folder` under the name beside it."""
    for name, source in zip(names, sources):
        (folder / name).write_bytes(source.read_bytes())
    return [folder / name for name in names]


def test_inspect_names_what_it_leaves_out_and_a_second_press_keeps_its_images(ctx, model, parts, tmp_path, monkeypatch):
    from ui import inspection

    good, bad = parts
    monkeypatch.setattr(inspection, "MAX_IMAGES", 2)
    named = _copies(tmp_path, ["b.png", "a.png", "z.png"], good[:2] + bad[:1])
    with pytest.warns(UserWarning) as shown:  # gr.Warning outside a request warns
        out = inspection.inspect_images(ctx, None, [str(p) for p in named], model, 0.1, 0.5, None)
    assert sorted(item["name"] for item in out["held"]) == ["a.png", "b.png"]
    message = next(str(w.message) for w in shown if "holds 2 images" in str(w.message))
    assert "left out: z.png." in message
    # the same upload again, with an unreadable file: the held images stay, the bad file is named, nothing breaks
    monkeypatch.setattr(inspection, "MAX_IMAGES", 3)
    uploads = [str(p) for p in named[:2] + _unreadable(tmp_path / "junk")]
    with pytest.warns(UserWarning):
        again = inspection.inspect_images(ctx, None, uploads, model, 0.1, 0.5, out["held"])
    assert [item["name"] for item in again["held"]] == [item["name"] for item in out["held"]]
    assert "text.png: not an image" in again["summary"] and str(ctx.uploads) not in again["summary"]


def test_an_unreadable_file_leaves_its_place_to_the_next_image(ctx, model, parts, tmp_path, monkeypatch):
    """The cap was cut before the files were read: one unreadable file among 21 left 19 images held, and the message
    named a readable one as left out."""
    from ui import inspection

    good, bad = parts
    monkeypatch.setattr(inspection, "MAX_IMAGES", 2)
    named = _copies(tmp_path, ["b.png", "c.png", "d.png"], good[:2] + bad[:1])
    (tmp_path / "a.png").write_bytes(b"not an image")  # first by name
    with pytest.warns(UserWarning) as shown:
        out = inspection.inspect_images(ctx, None, [str(tmp_path / "a.png"), *map(str, named)], model, 0.1, 0.5, None)
    assert sorted(item["name"] for item in out["held"]) == ["b.png", "c.png"]
    messages = [str(w.message) for w in shown]
    assert any("kept the first 2 of 4 by name; left out: d.png." in m for m in messages), messages
    assert any("a.png: not an image" in m for m in messages), messages


def test_files_that_all_fail_to_read_are_counted_over_every_batch(ctx, model, tmp_path, monkeypatch):
    """Past the cap each unreadable file's place went to the next batch, and the error counted the last batch only:
    "no usable image among 1 file(s)" for 3 unreadable files."""
    from ui import inspection

    monkeypatch.setattr(inspection, "MAX_IMAGES", 2)
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(f"{name} is not an image".encode())  # bytes of its own: not taken once
    with pytest.raises(rbd.NoImagesError, match=r"no usable image among 3 file\(s\): .*a\.png.*b\.png.*c\.png"):
        inspection.inspect_images(ctx, None, [str(tmp_path / n) for n in ("a.png", "b.png", "c.png")], model, 0.1, 0.5, None)


def test_images_of_one_name_get_downloads_of_their_own(ctx, model, parts, tmp_path):
    """a.jpg and a.png (or lot/good/000.jpg in a zip and a loose lot_good_000.jpg) both downloaded as a_mask.png: a good
    image's mask could pass for a defective one's. Numbered as `rbd predict` numbers its files: never onto another
    file's own name (a_1.png's)."""
    import shutil

    from ui import inspection

    good, bad = parts
    loose = {"a.jpg": good[0], "a.png": bad[0], "a_1.png": good[1], "lot_good_000.png": bad[1]}
    for name, source in loose.items():
        (tmp_path / name).write_bytes(source.read_bytes())
    (tmp_path / "lot" / "good").mkdir(parents=True)
    shutil.copy(good[2], tmp_path / "lot" / "good" / "000.png")
    archive = shutil.make_archive(str(tmp_path / "lot"), "zip", tmp_path, "lot")
    out = inspection.inspect_images(ctx, None, [*(str(tmp_path / name) for name in loose), archive], model, 0.1, 0.5, None)
    calibration = ctx.detector(model).calibration
    names = {item["name"]: Path(inspection.mask_file(ctx, item, inspection._judged(calibration, item, 0.1))).name
             for item in out["held"]}
    assert names == {"a.jpg": "a_mask.png", "a.png": "a_2_mask.png", "a_1.png": "a_1_mask.png",
                     "lot/good/000.png": "lot_good_000_mask.png", "lot_good_000.png": "lot_good_000_1_mask.png"}, names


def test_uploads_keep_the_names_they_have_on_the_users_disk(ctx, model, parts, tmp_path):
    """Gradio stores an upload under its name less `<>:"|?*!$`{}` (and the page sent `"` as %22): a review and its
    export named `part 1.png` for `part {1}!$.png`, a file the user does not have; Inspect showed it so too. The page
    sends each file's own name beside it (`orig_name`), which the boxes now hand over."""
    from gradio.data_classes import FileData, ListFiles

    from ui import inspection, review
    from ui.wiring import NamedFiles

    stored = tmp_path / "part 1.png"  # as Gradio stored it
    stored.write_bytes(parts[1][0].read_bytes())
    own = 'part {1}!$"q".png'
    files = NamedFiles(file_count="multiple").preprocess(ListFiles([FileData(path=str(stored), orig_name=own)]))
    review_id = review.score(ctx, files, None, "", model, progress=lambda *a, **k: None)["review_id"]
    assert [item.file_name for item in ctx.review(review_id).items] == [own]
    held = inspection.inspect_images(ctx, None, files, model, 0.1, 0.5, None)["held"]
    single = inspection.ImageFile().preprocess(FileData(path=str(stored), orig_name=own))  # the single image box
    assert [item["name"] for item in held] == [own] == [item["name"] for item in
                                                      inspection.inspect_images(ctx, single, None, model, 0.1, 0.5, None)["held"]]
    assert NamedFiles(file_count="multiple").preprocess(None) is None and review.uploaded_names(None) == []


def test_an_image_held_before_shows_under_the_name_it_is_uploaded_by_now(ctx, model, parts, tmp_path):
    from ui import inspection

    first = inspection.inspect_images(ctx, None, [str(parts[1][0])], model, 0.1, 0.5, None)
    renamed = tmp_path / "line7_part42.png"
    renamed.write_bytes(parts[1][0].read_bytes())
    again = inspection.inspect_images(ctx, None, [str(renamed)], model, 0.1, 0.5, first["held"])
    assert [item["name"] for item in again["held"]] == ["line7_part42.png"] and r"**line7\_part42.png**" in again["summary"]  # as it is, not Markdown


def test_a_portrait_image_gets_its_region_boxes_as_a_landscape_one(ctx, model, parts, tmp_path):
    """fold() handed a tall image back as a transposed view, which the boxes took for a folded strip."""
    from ui import inspection

    image = np.asarray(Image.open(parts[1][0]))
    layers = {}
    for name, pixels in (("landscape.png", image), ("portrait.png", np.ascontiguousarray(np.swapaxes(image, 0, 1)))):
        Image.fromarray(pixels).save(tmp_path / name)
        out = inspection.inspect_images(ctx, None, [str(tmp_path / name)], model, 0.1, 0.5, None)
        layers[name] = [label for _, label in out["annotated"][1]]
        assert len(out["regions"]) >= 1
    assert layers["portrait.png"] == layers["landscape.png"] and "region 1" in layers["portrait.png"]


def test_a_threshold_moved_while_inspect_ran_judges_its_images_once_it_ends(ctx, model, parts):
    """The move's own re-judge saw the images held before; the Inspect answer was judged at its click's rate."""
    from ui import inspection, model_bar

    out = inspection.inspect_images(ctx, None, [str(parts[1][0])], model, 0.1, 0.5, None)
    assert inspection.judged_again(ctx, None, None, out["held"], 0, model, 0.1, 0.5) == {}  # not moved: nothing drawn twice
    again = inspection.judged_again(ctx, None, None, out["held"], 0, model, 30.0, 0.5)
    moved = model_bar.threshold(ctx, model, 30.0)
    assert moved != model_bar.threshold(ctx, model, 0.1) and f"raw threshold {moved:.4f}" in again["summary"]
    # a review's recalibration applied meanwhile keeps the rate and the model, and moves the threshold
    recalibrated = _recalibrated(ctx, model)
    again = inspection.judged_again(ctx, None, None, out["held"], 0, recalibrated, 0.1, 0.5)
    assert f"raw threshold {model_bar.threshold(ctx, recalibrated, 0.1):.4f}" in again["summary"]


def test_a_threshold_moved_after_the_images_were_freed_says_so(ctx, model, parts):
    """An hour after the last Inspect, Gradio frees the held images; a threshold moved then changed nothing shown, and the
    page went on showing verdicts at the threshold before."""
    from ui import inspection

    assert inspection.rescore(ctx, None, None, [], None, model, 30.0, 0.5) == {}  # nothing inspected yet
    freed = inspection.rescore(ctx, None, None, [], 0, model, 30.0, 0.5)  # an image still picked on the page
    assert freed["summary"] == inspection.FREED and freed["held"] == [] and freed["heat"] is None
    assert "freed 1 hour after the last Inspect" in inspection.FREED


def _recalibrated(ctx, model) -> dict:
    """`model` as a review's recalibration leaves it: the same model and rate, another threshold."""
    from ui import model_bar

    calibration = ctx.detector(model).calibration
    recalibration = rbd.calibrate([score * 0.5 for score in calibration.normal_scores], calibration.synthetic_scores,
                                  calibration.false_alarm_rate)
    return model_bar.recalibrated(ctx, model, recalibration)


def test_a_model_picked_while_inspect_ran_scores_its_images_once_it_ends(ctx, model, parts):
    """The pick's own re-score saw nothing held yet; the Inspect answer came from the model of its click."""
    from ui import inspection

    files = [str(parts[1][0])]
    out = inspection.inspect_images(ctx, None, files, model, 0.1, 0.5, None)
    other = {**model, "key": _another_model(ctx, model), "name": "other"}
    again = inspection.judged_again(ctx, None, files, out["held"], 0, other, 0.1, 0.5)
    assert [item["model"] for item in out["held"]] == [inspection.model_bar.identity(ctx, model)] != [inspection.model_bar.identity(ctx, other)]
    assert [item["model"] for item in again["held"]] == [inspection.model_bar.identity(ctx, other)]
    assert inspection.judged_again(ctx, None, files, again["held"], 0, other, 0.1, 0.5) == {}  # scored by it: nothing twice


def test_a_row_of_inspects_table_clicked_shows_that_image(ctx, model, parts):
    import gradio as gr

    from ui import inspection

    good, bad = parts
    out = inspection.inspect_images(ctx, None, [str(good[0]), str(bad[0])], model, 0.1, 0.5, None)
    clicked = gr.SelectData(None, {"index": [1, 0], "value": out["held"][1]["name"], "selected": True})
    shown = inspection.shown_row(ctx, out["held"], model, 0.1, 0.5, clicked)
    assert shown["picked"]["value"] == 1 and out["held"][1]["name"] in shown["summary"]


def test_examples_name_their_model_and_an_image_of_nothing_familiar_says_none():
    from ui import inspection

    assert inspection.example_label(Path("examples/ksdd_crack.jpg")) == "ksdd crack (ksdd model)"
    assert "**Out of domain**: none of this image looks like" in inspection.out_of_domain_note(0.002)
    assert "or a defect over much of the part" in inspection.out_of_domain_note(0.002)  # not "the verdict says little" alone
    assert "only 12% of this image" in inspection.out_of_domain_note(0.12)


def test_an_example_makes_the_shipped_model_it_names_active_but_never_replaces_ones_own(ctx, model, checkpoint, tmp_path):
    """Under another product's model an example is one red region; a model of the user's own stays (they may be trying it)."""
    from ui import inspection, model_bar

    os.symlink(checkpoint, ctx.catalog.shipped / "ksdd")
    example = str(tmp_path / "gradio" / "abc" / "ksdd_crack.jpg")  # where Gradio serves it from
    out = inspection.example_model(ctx, example, model, "browser-1")
    key = str(ctx.catalog.shipped / "ksdd")
    assert out["model"]["key"] == key and out["choice"] == key and out["held"] == [] and "ksdd" in out["info"]
    assert out["picked"]["value"] is None  # else the model's new rate's re-judge took the held images for freed ones
    assert inspection.rescore(ctx, None, None, out["held"], out["picked"]["value"], out["model"], out["rate"], 0.5) == {}
    assert out["rate"] == model_bar.model_rate(ctx.catalog.get(key).calibration)
    assert inspection.example_model(ctx, example, out["model"], "browser-1") == {}  # already active
    assert inspection.example_model(ctx, str(tmp_path / "weld_good.jpg"), model, "browser-1") == {}  # no such shipped model
    own = {**model, "key": str(tmp_path / "work" / "models" / "shared" / "mine")}
    assert inspection.example_model(ctx, example, own, "browser-1") == {}
    recalibrated = {**model, "calibration": ctx.catalog.get(model["key"]).calibration.to_dict(), "recalibrated_from": "review"}
    assert inspection.example_model(ctx, example, recalibrated, "browser-1") == {}  # a review's threshold is the user's own
    assert inspection.example_model(ctx, None, model, "browser-1") == {}
    assert inspection.example_model(ctx, example, None, "browser-1") == {}  # no model at all (nothing shipped)


def test_an_inspect_runs_answer_gives_way_to_an_example_clicked_while_it_ran(ctx, model, parts, monkeypatch):
    """The example, inspected on its own and shown first, was replaced by the run's answer: the box's files, judged by
    the example's model."""
    from ui import inspection

    uploads = [str(path) for path in parts[0][:2]]
    assert len(inspection.inspect_clicked(ctx, None, uploads, model, 0.1, 0.5, None)["held"]) == 2  # none clicked: shown
    inspect_images = inspection.inspect_images

    def example_clicked_meanwhile(*args, **kwargs):
        shown = inspect_images(*args, **kwargs)
        inspection.example_model(ctx, None, model, "browser-1")  # the click's first step (no image: no model to switch)
        return shown

    monkeypatch.setattr(inspection, "inspect_images", example_clicked_meanwhile)
    assert inspection.inspect_clicked(ctx, None, uploads, model, 0.1, 0.5, None) == {}  # nothing changed: the example stays


def test_inspect_cleared_when_a_new_model_has_nothing_to_score(ctx, model, parts):
    from ui import inspection

    held = inspection.inspect_images(ctx, None, [str(parts[0][0])], model, 0.1, 0.5, None)["held"]
    copy = ctx.catalog.add_trained(ctx.detector(model), "browser-1")  # the same model by another key (shared, downloaded)
    kept = inspection.rescore(ctx, None, None, held, 0, {**model, "key": copy}, 0.1, 0.5)  # not scored again: kept
    assert "held" not in kept and kept["summary"] != inspection.UPLOADS_GONE
    other = {**model, "key": _another_model(ctx, model)}
    out = inspection.rescore(ctx, None, None, held, 0, other, 0.1, 0.5)
    assert out["held"] == [] and out["heat"] is None and out["pair"] is None and out["annotated"] is None
    assert out["regions"].empty and out["results"].empty and out["picked"]["choices"] == []
    assert out["summary"] == inspection.UPLOADS_GONE  # said, not the page's first words as if nothing had happened
    # another image dropped, not inspected: not scored (an example clicked beside a zip not yet inspected was merged
    # into it), and with none of the images shown left, nothing is shown
    out = inspection.rescore(ctx, None, [str(parts[0][1])], held, 0, other, 0.1, 0.5)
    assert out["held"] == [] and out["summary"] == inspection.UPLOADS_GONE
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same image beside it: it alone scored again, without a word
        out = inspection.rescore(ctx, None, [str(parts[0][0]), str(parts[0][1])], held, 0, other, 0.1, 0.5)
    assert [item["name"] for item in out["held"]] == [parts[0][0].name]
    both = inspection.inspect_images(ctx, None, [str(parts[0][0]), str(parts[0][1])], model, 0.1, 0.5, None)["held"]
    with pytest.warns(UserWarning, match=r"the new model scored the 1 image\(s\) shown that the upload boxes still hold; 1 shown before are no longer there"):
        out = inspection.rescore(ctx, None, [str(parts[0][1])], both, 0, other, 0.1, 0.5)
    assert [item["name"] for item in out["held"]] == [parts[0][1].name]



def test_inspect_keeps_the_image_looked_at_in_view_when_another_model_scores_them(ctx, model, parts):
    """It gave way to the new model's most anomalous image."""
    from ui import inspection

    uploads = [str(path) for path in (parts[0][0], parts[1][0], parts[1][1])]
    held = inspection.inspect_images(ctx, None, uploads, model, 0.1, 0.5, None)["held"]
    viewed = len(held) - 1  # the least anomalous, looked at
    out = inspection.rescore(ctx, None, uploads, held, viewed, {**model, "key": _another_model(ctx, model)}, 0.1, 0.5)
    at = out["picked"]["value"]
    assert out["held"][at]["digest"] == held[viewed]["digest"] and out["picked"]["choices"] == [(item["name"], i) for i, item in enumerate(out["held"])]
    assert f"**{held[viewed]['name']}**" in out["summary"]


def test_inspect_scores_again_when_the_same_key_names_a_retrained_model(ctx, model, parts):
    """A Hub branch loaded again after a push names another model under the same key and revision: the
    held scores are its predecessor's, and judging them by its threshold would be wrong."""
    from ui import inspection

    image = str(parts[0][0])
    held = inspection.inspect_images(ctx, None, [image], model, 0.1, 0.5, None)["held"]
    retrained = _another_model(ctx, model)
    ctx.catalog._cache[(model["key"], None)] = ctx.catalog.get(retrained, None, "browser-1")  # the same key, another model
    out = inspection.rescore(ctx, image, None, held, 0, model, 0.1, 0.5)
    assert out["held"][0]["model"] != held[0]["model"]  # scored again by the model the key names now

# an evaluation's per-image rows, as rbd.evaluate makes them
ROW_A = {"file": "test/good/a.png", "defect": "good", "label": 0, "score": 1.0, "normalized_score": 0.4, "verdict": "good"}
ROW_B = {"file": "test/crack/b.png", "defect": "crack", "label": 1, "score": 2.5, "normalized_score": 0.7, "verdict": "defective"}


def test_an_evaluation_is_cleared_once_another_model_is_active(ctx, model):
    from ui import evaluation

    evaluated = {"model": evaluation.model_bar.identity(ctx, model), "name": model["name"], "metrics": {},
                 "rows": [ROW_A]}
    kept = evaluation.rows(ctx, evaluated, model, 1.0)
    assert set(kept) == {"rows", "summary"}  # the same model: re-judged, kept
    # headed for a reader, the verdict in a narrow window's sight: `label` repeats the truth
    assert kept["rows"].data.columns.tolist() == ["file", "truth", "score", "normalised", "verdict"]
    assert kept["rows"].data[["file", "truth", "score", "verdict"]].iloc[0].tolist() == ["test/good/a.png", "good", 1.0, "good"]
    copy = ctx.catalog.add_trained(ctx.detector(model), "browser-1")  # the same model by another key (shared, downloaded)
    assert set(evaluation.rows(ctx, evaluated, {**model, "key": copy}, 1.0)) == {"rows", "summary"}
    cleared = evaluation.rows(ctx, evaluated, {**model, "key": _another_model(ctx, model), "name": "another"}, 1.0)
    assert cleared["evaluated"] is None and cleared["roc"] is None and cleared["misranked"] is None and cleared["rows"].empty
    retrained = _another_model(ctx, model)  # a Hub branch loaded again names another model: the same key and revision
    ctx.catalog._cache[(model["key"], None)] = ctx.catalog.get(retrained, None, "browser-1")
    assert evaluation.rows(ctx, evaluated, model, 1.0)["evaluated"] is None  # its metrics were re-judged, then pushed in its card
    # it stays shown while other models become active, so it names none of them
    assert cleared["summary"]["value"].tolist() == [f"the evaluation of {model['name']} was cleared as another model became "
                                                    "active: press Evaluate to evaluate the active model"]
    assert tuple(cleared["rows"].columns) == tuple(evaluation.SHOWN_COLUMNS.values())  # headed by its columns, not 1, 2, 3


def test_an_evaluation_is_of_the_model_that_ran_it_when_its_branch_moves_meanwhile(ctx, model, category, tmp_path, monkeypatch):
    """Its identity was taken once it ended: another browser loading the same Hub branch meanwhile (a retrained
    model) had the old model's metrics tagged as the new one's, re-judged and pushed in its card."""
    from ui import evaluation

    archive = shutil.make_archive(str(tmp_path / "stripes"), "zip", category.parent, category.name)
    retrained = ctx.catalog.get(_another_model(ctx, model), None, "browser-1")
    evaluate = rbd.evaluate

    def branch_moved_meanwhile(detector, *args, **kwargs):
        result = evaluate(detector, *args, **kwargs)
        ctx.catalog._cache[(model["key"], None)] = retrained  # the key names the retrained model from now on
        return result

    monkeypatch.setattr(rbd, "evaluate", branch_moved_meanwhile)
    out = evaluation.evaluate(ctx, archive, model, 1.0, progress=lambda *a, **k: None)
    assert not evaluation.is_of(ctx, out["evaluated"], model)


def test_an_evaluations_notices_stay_under_its_metrics(ctx, model, category, tmp_path):
    """A toast fades: a notice on what the metrics rest on (a defect without its mask, a set of another product) was gone
    by the time the metrics were read."""
    from ui import evaluation

    copy = shutil.copytree(category, tmp_path / "stripes")
    next((copy / "ground_truth").rglob("*_mask.png")).unlink()
    archive = shutil.make_archive(str(tmp_path / "stripes"), "zip", tmp_path, "stripes")
    with pytest.warns(UserWarning, match="1 defective image"):  # a toast, as before
        out = evaluation.evaluate(ctx, archive, model, 1.0, progress=lambda *a, **k: None)
    for shown in (out, evaluation.rows(ctx, out["evaluated"], model, 30.0)):  # a threshold moved: still there
        notes = [row for row in shown["summary"]["metric"] if row.startswith("note: ")]
        assert len(notes) == 1 and notes[0].startswith("note: 1 defective image(s) have no mask (test/") and str(tmp_path) not in notes[0]


def test_a_failed_evaluation_still_names_the_files_it_could_not_read(ctx, model, category, tmp_path):
    """Every defective image unreadable: the error said "only 10 of 20 could be read", and the notice naming them and
    why was dropped with the failed block's notes."""
    from rbd.notices import collect
    from ui import evaluation

    copy = shutil.copytree(category, tmp_path / "stripes")
    broken = [path for path in (copy / "test").rglob("*.png") if path.parent.name != "good"]
    for path in broken:
        path.write_bytes(b"not an image")
    archive = shutil.make_archive(str(tmp_path / "stripes"), "zip", tmp_path, "stripes")
    with collect() as notes, pytest.raises(rbd.RBDError, match="all of one class"):
        evaluation.evaluate(ctx, archive, model, 1.0, progress=lambda *a, **k: None)
    assert len(notes) == 1 and f"skipped {len(broken)} unreadable file(s)" in notes[0] and broken[0].name in notes[0], notes


def test_a_rate_or_model_changed_while_evaluate_ran_judges_its_answer_once_it_ends(ctx, model):
    """The change's own re-judge saw no evaluation yet; the answer came judged as at the click."""
    from ui import evaluation

    evaluated = {"model": evaluation.model_bar.identity(ctx, model), "name": model["name"], "metrics": {},
                 "judged_at": evaluation.model_bar.threshold(ctx, model, 1.0), "rows": [ROW_A]}
    assert evaluation.judged_again(ctx, evaluated, model, 1.0) == {}  # nothing changed: nothing drawn twice
    recalibrated = _recalibrated(ctx, model)  # a review's recalibration applied meanwhile: the rate kept, not the threshold
    summary = evaluation.judged_again(ctx, evaluated, recalibrated, 1.0)["summary"]
    assert dict(zip(summary["metric"], summary["value"]))["threshold (raw score)"] == \
        f"{evaluation.model_bar.threshold(ctx, recalibrated, 1.0):.4f}"
    moved = evaluation.judged_again(ctx, evaluated, model, 30.0)
    summary = dict(zip(moved["summary"]["metric"], moved["summary"]["value"]))
    assert summary["threshold (raw score)"] == f"{evaluation.model_bar.threshold(ctx, model, 30.0):.4f}"
    assert summary["threshold (raw score)"] != f"{evaluation.model_bar.threshold(ctx, model, 1.0):.4f}"
    assert evaluation.judged_again(ctx, evaluated, {**model, "key": _another_model(ctx, model), "name": "another"}, 1.0)["evaluated"] is None


def test_evaluation_tables_show_every_metric_to_four_places_and_times_to_one(ctx, model):
    """A perfect AUROC read "1" beside "0.9876"; the tables keep numbers (they sort as numbers) but show 4 places."""
    from ui import evaluation

    evaluated = {"model": evaluation.model_bar.identity(ctx, model), "name": model["name"], "metrics": {"image_auroc": 1.0, "images": 2, "ms_per_image": 21.33},
                 "rows": [ROW_A, ROW_B]}
    shown = evaluation.rows(ctx, evaluated, model, 1.0)
    summary = dict(zip(shown["summary"]["metric"], shown["summary"]["value"]))
    assert summary["image AUROC"] == "1.0000" and summary["images"] == "2"  # a key without a name keeps its own
    assert summary["ms per image"] == "21.3"  # a time to 0.1 ms, as the command line and the model card show it
    html = shown["rows"].to_html()
    assert "1.0000" in html and "2.5000" in html and shown["rows"].data["score"].tolist() == [1.0, 2.5]


def test_layout_hints_hold_no_angle_brackets_that_a_toast_would_take_for_html(tmp_path):
    from rbd.errors import DatasetLayoutError
    from rbd.uploads import find_mvtec_root

    with pytest.raises(DatasetLayoutError) as raised:
        find_mvtec_root(tmp_path)
    assert "test/DEFECT/" in str(raised.value) and "<" not in str(raised.value)


def test_review_keys_with_nothing_on_screen_do_nothing(ctx, model, parts):
    from ui import review

    good, bad = parts
    review_id = review.score(ctx, [str(good[0])], None, "", model, progress=lambda *a, **k: None)["review_id"]
    review.show(ctx, review_id, model, 0.1, "all")
    review.decide(ctx, "accept", review_id, model, 0.1, "all")  # the only image: now reviewed
    empty = review.show(ctx, review_id, model, 0.1, "unreviewed")
    assert "No image in this view (**unreviewed**" in empty["text"]
    assert "No image in this view (**unreviewed**" in review.decide(ctx, "reject", review_id, model, 0.1, "unreviewed")["text"]
    assert ctx.review(review_id).decision(0).decision == "accept"  # not turned into a reject


def test_a_caption_says_what_the_decision_made_of_the_image(ctx, model, parts):
    from ui import review

    good, _ = parts
    review_id = review.score(ctx, [str(good[0])], None, "", model, progress=lambda *a, **k: None)["review_id"]
    review.show(ctx, review_id, model, 0.1, "all")
    shown = review.decide(ctx, "accept", review_id, model, 0.1, "all")
    assert shown["gallery"]["value"][0][1].endswith("good · ✓ accepted → good") and "→ good" in shown["text"]
    review.show(ctx, review_id, model, 0.1, "all")
    rejected = review.decide(ctx, "reject", review_id, model, 0.1, "all")  # the verdict "good" was wrong: a defect
    assert rejected["gallery"]["value"][0][1].endswith("good · ✗ rejected → defective")


def test_recalibrating_without_an_image_reviewed_as_good_is_refused(ctx, model, parts):
    from ui import review

    _, bad = parts
    review_id = review.score(ctx, [str(bad[0])], None, "", model, progress=lambda *a, **k: None)["review_id"]
    with pytest.raises(rbd.NoImagesError, match="nothing to recalibrate"):
        review.recalibrate(ctx, review_id, model, 1.0)


def test_a_failed_load_puts_the_active_model_back_in_the_picker(ctx, model):
    from ui import model_bar

    assert model_bar.active_choice(ctx, model) == {"choice": model["key"], "hub_id": "", "revision": ""}
    hub = {**model, "key": "owner/parts", "revision": "v2", "name": "owner/parts@v2"}
    assert model_bar.active_choice(ctx, hub) == {"choice": "owner/parts", "hub_id": "owner/parts", "revision": "v2"}
    assert model_bar.active_choice(ctx, None) == {}


def test_loading_a_hub_repo_again_fetches_what_its_branch_names_now(ctx, checkpoint, hub_cache, tmp_path):
    """Someone pushed to main since: Load model must not keep serving the commit it loaded first."""
    from test_checkpoint import _cached_repo
    from ui import model_bar

    _cached_repo(hub_cache, "acme/parts", checkpoint.iterdir(), "main", "a" * 40)
    first = model_bar.load_model(ctx, "", "acme/parts", "", "browser-1")["model"]
    assert ctx.detector(first).threshold == rbd.load(checkpoint).threshold
    pushed = shutil.copytree(checkpoint, tmp_path / "pushed")
    config = json.loads((pushed / "config.json").read_text())
    (pushed / "config.json").write_text(json.dumps({**config, "threshold": 123.0}))
    _cached_repo(hub_cache, "acme/parts", pushed.iterdir(), "main", "b" * 40)  # main moved to commit b
    again = model_bar.load_model(ctx, "", "acme/parts", "", "browser-1")["model"]
    assert ctx.detector(again).threshold == 123.0


def test_load_names_the_hub_repo_it_loaded_in_the_picker(ctx, model, checkpoint, hub_cache):
    """The picker still named the model active before, while the model line named the repo (a reload showed the repo)."""
    from test_checkpoint import _cached_repo
    from ui import model_bar

    _cached_repo(hub_cache, "acme/parts", checkpoint.iterdir(), "v1", "a" * 40)
    loaded = model_bar.load_pressed(ctx, model["key"], "acme/parts", "v1", "browser-1")
    assert (loaded["choice"], loaded["hub_id"], loaded["revision"]) == ("acme/parts", "acme/parts", "v1")
    assert loaded["model"]["key"] == "acme/parts" and loaded["info"].startswith("**acme/parts@v1**")
    shipped = model_bar.load_pressed(ctx, model["key"], "", "", "browser-1")  # a listed model: the Hub boxes emptied
    assert (shipped["choice"], shipped["hub_id"], shipped["revision"]) == (model["key"], "", "")


def test_a_recalibration_stops_judging_once_another_browser_loads_a_retrained_commit(ctx, checkpoint, hub_cache, tmp_path,
                                                                                     monkeypatch):
    """The loaded model is shared by every browser: a recalibration made for commit a must not judge commit b's scores,
    nor be pushed with it."""
    from test_checkpoint import _cached_repo
    from ui import fine_tune, model_bar

    _cached_repo(hub_cache, "acme/parts", checkpoint.iterdir(), "main", "a" * 40)
    first = model_bar.load_model(ctx, "", "acme/parts", "", "browser-2")["model"]
    own = ctx.detector(first).calibration
    recalibration = rbd.Calibration(own.threshold + 5, own.scale, own.false_alarm_rate, [s + 5 for s in own.normal_scores])
    judged = model_bar.recalibrated(ctx, first, recalibration)
    assert model_bar.threshold(ctx, judged, 100 * own.false_alarm_rate) == own.threshold + 5
    retrained = shutil.copytree(checkpoint, tmp_path / "retrained")
    config = json.loads((retrained / "config.json").read_text())
    scores = [s * 2 for s in config["calibration"]["normal_scores"]]
    config["calibration"] = {**config["calibration"], "normal_scores": scores, "threshold": 77.0}
    (retrained / "config.json").write_text(json.dumps({**config, "threshold": 77.0}))
    _cached_repo(hub_cache, "acme/parts", retrained.iterdir(), "main", "b" * 40)
    model_bar.load_model(ctx, "", "acme/parts", "", "browser-1")  # another browser loads main again: commit b
    assert model_bar.threshold(ctx, judged, 100 * own.false_alarm_rate) == 77.0  # commit b's own threshold
    assert "recalibrated" not in model_bar.info(ctx, judged, 100 * own.false_alarm_rate)
    pushed = []
    monkeypatch.setattr(rbd, "push_to_hub", lambda detector, repo_id, **kwargs: pushed.append(detector) or f"https://hf.co/{repo_id}")
    assert fine_tune.push(ctx, judged, "acme/copy", "hf_x", None, 100 * own.false_alarm_rate)["push_status"].startswith(
        "Pushed: https://hf.co/acme/copy (judging at raw threshold 77.0000")
    assert pushed[0].threshold == 77.0  # commit b as it judges on its own


def test_a_threshold_saved_by_hand_is_the_one_the_app_starts_at_and_returns_to(ctx, detector, tmp_path):
    """`Detector.threshold` set and saved: the app judges as `rbd.load(...).predict` does, and its card says so."""
    from ui import model_bar

    hand_set = rbd.load(rbd.save(detector, tmp_path / "a"))
    hand_set.threshold = detector.calibration.threshold * 1.5
    saved = rbd.save(hand_set, ctx.catalog.shipped / "hand-set")
    loaded = model_bar.load_model(ctx, str(saved), "", "", "browser-1")
    assert model_bar.threshold(ctx, loaded["model"], loaded["rate"]) == hand_set.threshold
    assert model_bar.reset(ctx, loaded["model"])["rate"] == loaded["rate"]
    assert f"raw threshold {hand_set.threshold:.4f}" in loaded["info"]
    expected = detector.calibration.expected_false_alarm_rate(hand_set.threshold)
    assert loaded["rate"] == pytest.approx(max(100 * expected, 0.01), abs=0.005)  # to the slider's step, within its range
    card = (saved / "README.md").read_text()
    assert f"- Threshold: {hand_set.threshold:.5f}, set by hand (under 0.01% false alarms expected at it; the threshold " \
           f"{detector.calibration.threshold:.5f} was calibrated for a {100 * detector.calibration.false_alarm_rate:g}% " \
           "false-alarm rate" in card and expected < 1e-4


def test_a_calibration_made_by_hand_for_a_rate_outside_the_slider_loads_and_judges_at_its_threshold(ctx, detector, tmp_path):
    """No normal scores and a 50% rate: the slider's nearest end, 30%, has no threshold of it, and the model could not be
    loaded at all; it loads at its own threshold, and another rate is refused by name."""
    import dataclasses

    from ui import model_bar

    by_hand = rbd.Detector(detector.model, dataclasses.replace(detector.calibration, normal_scores=[], interval=None,
                                                               false_alarm_rate=0.5, threshold=4.0))
    loaded = model_bar.load_model(ctx, str(rbd.save(by_hand, ctx.catalog.shipped / "by-hand")), "", "", "browser-1")
    assert loaded["rate"] == 30.0 and model_bar.threshold(ctx, loaded["model"], loaded["rate"]) == 4.0
    assert "raw threshold 4.0000" in loaded["info"]
    with pytest.raises(rbd.InvalidInputError, match="its threshold is known only for the 50% false-alarm rate it was made for"):
        model_bar.threshold(ctx, loaded["model"], 10.0)


def _hub_repo_with_v1(checkpoint, hub_cache, tmp_path) -> None:
    """acme/parts in the offline Hub cache: main is `checkpoint`, v1 the same model at threshold 123."""
    from test_checkpoint import _cached_repo

    older = shutil.copytree(checkpoint, tmp_path / "older")
    config = json.loads((older / "config.json").read_text())
    (older / "config.json").write_text(json.dumps({**config, "threshold": 123.0}))
    _cached_repo(hub_cache, "acme/parts", checkpoint.iterdir(), "main", "a" * 40)
    _cached_repo(hub_cache, "acme/parts", older.iterdir(), "v1", "b" * 40)


def test_the_name_the_app_gives_a_hub_model_loads_it_in_the_hub_box(ctx, checkpoint, hub_cache, tmp_path):
    from ui import model_bar

    _hub_repo_with_v1(checkpoint, hub_cache, tmp_path)
    loaded = model_bar.load_model(ctx, "", "acme/parts@v1", "", "browser-1")["model"]
    assert (loaded["key"], loaded["revision"], loaded["name"]) == ("acme/parts", "v1", "acme/parts@v1")
    assert ctx.detector(loaded).threshold == 123.0
    assert model_bar.load_model(ctx, "", "acme/parts@", "", "browser-1")["model"]["revision"] is None


def test_the_picker_left_on_the_active_model_changes_nothing(ctx, model, checkpoint, hub_cache, tmp_path):
    """Gradio sends the picker's input at every blur: clicking into it and away reloaded the active model, which reset
    the threshold, dropped a review's recalibration and took a Hub model at v1 to main."""
    from ui import model_bar

    name = model_bar.model_name(model["key"])
    for choice in (model["key"], name[:3]):  # as picked, or the beginning of its name as typed
        assert model_bar.picked(ctx, choice, "browser-1", {**model, "calibration": {"a": "review's"}}) == {
            "choice": model["key"], "hub_id": "", "revision": ""}  # no model, rate or info: the threshold stays
    _hub_repo_with_v1(checkpoint, hub_cache, tmp_path)
    hub = model_bar.load_pressed(ctx, "", "acme/parts", "v1", "browser-1")["model"]
    for choice in ("acme/parts", "acme/parts@v1"):  # its key, listed under its name; and that name typed
        assert model_bar.picked(ctx, choice, "browser-1", hub) == {"choice": "acme/parts", "hub_id": "acme/parts", "revision": "v1"}
    main = model_bar.picked(ctx, "acme/parts@main", "browser-1", hub)  # another revision, named as the picker names one
    assert (main["model"]["key"], main["model"]["revision"]) == ("acme/parts", "main") and ctx.detector(main["model"]).threshold != 123.0
    shipped = model_bar.picked(ctx, model["key"], "browser-1", hub)  # another model: loaded, at its own threshold
    assert shipped["model"]["key"] == model["key"] and (shipped["hub_id"], shipped["revision"]) == ("", "")
    assert model_bar.picked(ctx, "acme/parts@v1", "browser-1", shipped["model"])["model"]["revision"] == "v1"
    key = ctx.catalog.add_trained(ctx.detector(model), "browser-1")  # a fine-tune, active, then shared from another tab:
    mine = model_bar.load_model(ctx, key, "", "", "browser-1")["model"]  # the opened picker names it by its shared key
    shared = ctx.catalog.publish(key, "browser-1")
    assert model_bar.picked(ctx, shared, "browser-1", mine) == {"choice": shared, "hub_id": "", "revision": ""}


def test_the_hub_box_quotes_what_was_typed_and_refuses_two_revisions(ctx):
    from ui import model_bar

    for typed, revision, message in [("../../etc/passwd", "", "'../../etc/passwd' is not a Hub repo id"),
                                     ("acme/parts@v1.2", "dev", "'acme/parts@v1.2' names a revision, and so does the revision box ('dev')"),
                                     ("@v1", "", "'@v1' names a revision but no repo: owner/name@revision")]:  # not the picker's model
        with pytest.raises(rbd.CheckpointError, match=re.escape(message)):
            model_bar.load_model(ctx, "", typed, revision, "browser-1")


def test_a_rate_typed_beyond_the_slider_is_taken_at_its_nearest_end_and_the_box_set_to_it():
    """Gradio failed every event that read the slider (the threshold line kept the old rate beside the typed one)."""
    import gradio as gr

    from ui import model_bar

    slider = model_bar.RateSlider(0.01, 30, value=1.0, step=0.01)
    assert [slider.preprocess(typed) for typed in (55, -3, 2.5)] == [30, 0.01, 2.5]
    assert [slider.clamp_typed(typed) for typed in (55, -3)] == [30, 0.01]
    assert isinstance(slider.clamp_typed(2.5), type(gr.skip()))
    assert isinstance(slider.clamp_typed(None), type(gr.skip()))
    with pytest.raises(gr.Error, match="no threshold rate given: send a number from 0.01 to 30"):  # an API call's: a TypeError before
        slider.preprocess(None)


def test_a_page_load_restores_the_model_the_browser_left_active_or_says_why_not(ctx, model, hub_cache):
    from rbd.notices import collect
    from ui import model_bar

    default = ctx.catalog.default_key()
    recalibrated = {**model, "calibration": {**ctx.detector(model).calibration.to_dict(), "false_alarm_rate": 0.05}}
    with collect() as notes:
        restored = model_bar.restore(ctx, recalibrated, default, "browser-1")
        fresh = model_bar.restore(ctx, None, default, "browser-1")
        gone = model_bar.restore(ctx, {**model, "key": "owner/gone", "name": "owner/gone"}, default, "browser-1")
        expired = model_bar.restore(ctx, {**model, "key": str(ctx.catalog.private / "model-gone"), "name": "model-gone"}, default,
                                    "browser-1")
    assert restored["model"] == recalibrated and restored["rate"] == pytest.approx(5.0)  # a review's recalibration survives
    assert "recalibrated" in restored["info"] and restored["choice"] == model["key"]
    made_for = model_bar.recalibrated(ctx, model, rbd.Calibration.from_dict(recalibrated["calibration"]))
    assert model_bar.restore(ctx, made_for, default, "browser-1")["model"] == made_for  # for this very model: kept
    with collect() as moved_on:  # made for the model a Hub branch named before it moved on
        other = model_bar.restore(ctx, {**made_for, "recalibrated_from": "0" * 16}, default, "browser-1")
    assert other["model"]["calibration"] is None and "judged by its own threshold again" in moved_on[0]
    assert other["rate"] == pytest.approx(100 * ctx.detector(model).calibration.false_alarm_rate)
    for result in (fresh, gone, expired):  # nothing stored, or a Hub model out of reach: the default, at its own rate
        assert result["model"]["key"] == default and result["model"]["calibration"] is None
        assert result["rate"] == pytest.approx(100 * ctx.detector(model).calibration.false_alarm_rate)
    assert len(notes) == 2 and notes[0].startswith("owner/gone, the model active before, could not be loaded again (")
    assert notes[1] == "model-gone, the model active before, could not be loaded again; the default model is active"  # no server path


def test_a_fine_tune_trains_for_its_budget_and_needs_one(ctx, model, monkeypatch):
    from ui import fine_tune

    made = []

    class Started(Exception):
        """Training would start here: the test needs only the settings it was given."""

    def start(pictures, model_config, config, start_from):
        made.append(config)
        assert start_from is ctx.detector(model) and model_config == start_from.config.with_default_map()  # today's map
        raise Started

    monkeypatch.setattr(fine_tune, "BackgroundTraining", start)
    monkeypatch.setattr(fine_tune, "model_pictures", lambda images, config: [torch.zeros(3, 8, 8)] * 6)
    monkeypatch.setattr(fine_tune, "gather_images", lambda uploaded, folder, names=(): [Path(folder) / f"{i}.png" for i in range(6)])
    with pytest.raises(Started):
        next(fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 5, model, "browser-1"))
    assert made[0].epochs is None and made[0].max_minutes == 5  # the form's defaults: the budget ends training
    with pytest.raises(rbd.InvalidInputError, match=r"set a time budget \(minutes\) or a number of epochs"):  # the form's words
        list(fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 0, model, "browser-1"))



def test_a_fine_tune_holds_its_images_at_model_resolution_not_full_size(ctx, model, tmp_path, monkeypatch):
    """200 phone photos at full size would need tens of GB: each is resized as it is read, exactly as a
    prediction resizes it."""
    from rbd.train import resized
    from ui import fine_tune

    given = []

    class Started(Exception):
        pass

    def start(pictures, model_config, config, start_from):
        given.extend(pictures)
        raise Started

    photos = []
    for i in range(6):
        photos.append(tmp_path / f"{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (300, 450, 3), dtype=np.uint8)).save(photos[-1])
    monkeypatch.setattr(fine_tune, "BackgroundTraining", start)
    monkeypatch.setattr(fine_tune, "gather_images", lambda uploaded, folder, names=(): [Path(shutil.copy(p, folder)) for p in photos])
    with pytest.raises(Started):
        next(fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 5, model, "browser-1"))
    config = ctx.detector(model).config
    expected = resized(np.asarray(Image.open(photos[0]), np.float32) / 255, config).permute(1, 2, 0).numpy()
    assert len(given) == 6 and given[0].shape == expected.shape == (config.image_size, config.image_size * 3 // 2, 3)
    np.testing.assert_array_equal(given[0], expected)

def test_cancel_reaches_a_training_still_in_the_queue_and_its_own_stream_says_so(ctx, model, monkeypatch):
    from ui import fine_tune

    request = types.SimpleNamespace(session_hash="tab-1")
    assert fine_tune.cancel(ctx, request) == {"status": "No training is running."}
    # Train clicked: the training waits in the queue, and the last run's loss, calibration and model file go with its message
    assert fine_tune.pressed(ctx, request) == {"status": "", "loss": None, "calibration": None, "model_file": None}
    assert fine_tune.pressed(ctx, request) == {}  # clicked again while it waits (or runs): nothing shown is cleared
    assert fine_tune.cancel(ctx, request) == {"status": fine_tune.cancelled(0)}
    monkeypatch.setattr(fine_tune, "gather_images", lambda *args: pytest.fail("a cancelled training reads no images"))
    stream = list(fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 5, model, "browser-1", request=request))
    assert stream == [{"status": fine_tune.cancelled(0)}] and "tab-1" not in ctx.jobs
    assert model["name"] not in stream[0]["status"]  # the model of Train's click: another may be active by now, and this
    fine_tune.pressed(ctx, request)  # last word said it was the active one, replacing Cancel's
    assert ctx.jobs["tab-1"] == fine_tune.pending()  # a later Train is not cancelled by the earlier Cancel



def test_a_fine_tune_says_when_it_calibrates_after_its_last_step(ctx, model, monkeypatch):
    """Calibration takes a while after the last step: progress sat at 100 % with a stale "training… step 11"."""
    from rbd.train import Progress
    from ui import fine_tune

    class Job:
        def __init__(self, *args, **kwargs):
            pass

        def updates(self):
            yield from (Progress(step, step / 3, step / 3, 0.5, step) for step in (1, 2, 3))

        def result(self):
            trained = ctx.detector(model)
            facts = {**trained.training, "train_images_left_out": 3, "copies_left_out": 2,  # a budget too short for the set; copies
                     "memory_patches_left_out": trained.model.memory.size - 5}  # and for the memory's choice
            return rbd.Detector(trained.model, trained.calibration, facts, trained.metrics)  # a new model

    monkeypatch.setattr(fine_tune, "BackgroundTraining", Job)
    monkeypatch.setattr(fine_tune, "gather_images", lambda uploaded, folder, names=(): [Path(folder) / f"{i}.png" for i in range(6)])
    monkeypatch.setattr(fine_tune, "model_pictures", lambda images, config: [torch.zeros(3, 8, 8)] * 6)
    described, records = [], []
    statuses = []
    for out in fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 5, model, "browser-1",
                                   progress=lambda *a, desc=None, **k: described.append(desc)):
        statuses.append(out["status"])
        records.append(list(ctx.trainings.iterdir()))  # while the request is open: a restart now would find these
    assert [len(found) for found in records] == [1, 1, 0]  # saved: a restart said "no model was saved" of the model made
    assert statuses[:2] == ["training…", "trained 3 steps · calibrating the threshold…"] and "now the active model" in statuses[2]
    read = ctx.detector(model).training["train_images"]  # the notice of a thread the request cannot hear, as training said it
    assert f"let the teacher read {read} of the {read + 3} training images: trained on those, a random sample" in statuses[2]
    assert f"let the patch memory choose 5 of its {ctx.detector(model).model.memory.size} patches" in statuses[2]
    assert "2 of the images were exact copies of others: each was trained on once" in statuses[2]
    assert re.search(r"on \d+ of \d+ distinct images", statuses[2])  # the count after the copies went
    assert described[-1] == "step 3 done · calibrating the threshold on normal images"
    assert list(ctx.trainings.iterdir()) == []  # saved: no record of a training cut off is left
    made = Path(ctx.catalog.entries("browser-1")[-1][1])
    assert f"; fine-tuned from {model['name']}" in (made / "README.md").read_text()  # started from the active model


def test_a_fine_tune_cut_off_by_a_restart_is_said_once_when_its_browser_comes_back(ctx, model, monkeypatch):
    """A restart in the middle of a fine-tune saved nothing, and the page it reloaded said nothing of it."""
    from rbd.notices import collect
    from ui import fine_tune
    from ui.context import Context

    class Endless:  # trains until its request is closed
        def __init__(self, *args, **kwargs):
            pass

        def updates(self):
            while True:
                yield rbd.Progress(step=1, epoch=0.1, fraction=0.1, loss=0.5, elapsed_s=1.0)

        def cancel(self):
            pass

    monkeypatch.setattr(fine_tune, "BackgroundTraining", Endless)
    monkeypatch.setattr(fine_tune, "gather_images", lambda uploaded, folder, names=(): [Path(folder) / f"{i}.png" for i in range(6)])
    monkeypatch.setattr(fine_tune, "model_pictures", lambda images, config: [torch.zeros(3, 8, 8)] * 6)
    stream = fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 5, model, "browser-1", progress=lambda *a, **k: None)
    assert next(stream)["status"] == "training…"
    with collect() as notes:  # it runs on this server: a page of the browser opened now (another, or its own reloaded) is
        said = fine_tune.cut_off(ctx, "browser-1")  # told in the status line alone (a reload stops it, and said nothing)
    assert said == {"status": "A fine-tune of this browser (started under a minute ago) was training as this page opened. It "
                              "goes on while the page that started it stays open; if that was this page before a reload, it "
                              "stopped, and no model was saved."} and notes == []
    assert fine_tune.cut_off(ctx, "browser-2") == {}
    restarted = Context(ctx.work, ctx.catalog)  # a new server on the same work folder: the first one died mid-training
    assert fine_tune.cut_off(restarted, "browser-2") == {} and fine_tune.cut_off(restarted, "") == {}
    with collect() as notes:
        said = fine_tune.cut_off(restarted, "browser-1")["status"]
    assert said == ("The app restarted while your fine-tune was training (started under a minute ago): it was stopped and "
                    "no model was saved. Press Train to train again.") and notes == [said]
    assert fine_tune.cut_off(restarted, "browser-1") == {}  # said once
    stream.close()  # a training that ends (here its tab closed) leaves no record
    with pytest.raises(rbd.InvalidInputError):  # nor does one that fails
        list(fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 0, model, "browser-1"))
    assert list(ctx.trainings.iterdir()) == []
    again = fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 5, model, "browser-1", progress=lambda *a, **k: None)
    next(again)
    record = next(ctx.trainings.iterdir())
    os.utime(record, (time.time() - 31 * 86400, time.time() - 31 * 86400))
    restarted.remove_idle()  # a browser that never comes back: its record goes with the idle sweep
    assert not record.exists()
    again.close()
    # a record that is not what a training writes is still one that never ended; an id no training takes writes none
    (ctx.trainings / "browser-1.x.json").write_text("[]")
    assert fine_tune.cut_off(restarted, "browser-1")["status"].startswith("The app restarted while your fine-tune was training: ")
    assert fine_tune.cut_off(restarted, "../x") == {} and list(ctx.trainings.iterdir()) == []
    with fine_tune.running_record(ctx, "browser-1"):  # two trainings of one browser: one ends, not the other's record
        with fine_tune.running_record(ctx, "browser-1"):
            assert len(list(ctx.trainings.iterdir())) == 2
        assert len(list(ctx.trainings.iterdir())) == 1


def test_a_fine_tune_of_reviewed_images_alone_says_when_the_review_has_none(ctx, model):
    from ui import fine_tune

    with pytest.raises(rbd.NoImagesError, match=r"upload some \(this browser's review has no image accepted as good\)"):
        list(fine_tune.fine_tune(ctx, None, None, True, "", True, 0, 5, model, "browser-1"))


def test_reviewed_images_asked_for_and_none_found_are_said_beside_the_uploads(ctx, model, parts, monkeypatch):
    """Ticked with no review (expired, or none accepted as good) and 5 uploads: it trained on the uploads without a word."""
    from ui import fine_tune

    def stop(*args, **kwargs):  # the images read: no need to train
        raise rbd.TrainingCancelled("stopped here")

    monkeypatch.setattr(fine_tune, "BackgroundTraining", stop)
    good, bad = parts
    with pytest.warns(UserWarning, match="this browser's review has no image accepted as good: trained on the uploads alone"):
        list(fine_tune.fine_tune(ctx, [str(p) for p in good + bad], None, True, "gone", True, 0, 5, model, "browser-1"))


def test_a_train_refused_for_its_settings_leaves_no_entry_to_cancel_the_next(ctx, model):
    from ui import fine_tune

    request = types.SimpleNamespace(session_hash="tab-1")
    fine_tune.pressed(ctx, request)
    stream = fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 0, model, "browser-1", request=request)
    # the status line keeps the reason once its message is closed (it showed a bare "Error")
    assert next(stream)["status"].startswith("Not trained: set a time budget (minutes) or a number of epochs")
    with pytest.raises(rbd.InvalidInputError, match="set a time budget"):  # no epochs and no minutes
        next(stream)
    assert "tab-1" not in ctx.jobs and fine_tune.cancel(ctx, request) == {"status": "No training is running."}

def test_a_wrong_browser_id_is_refused_before_training(ctx, model, monkeypatch):
    """An API client's `browser` was checked as the trained model was saved: minutes of training, then thrown away."""
    from ui import fine_tune

    monkeypatch.setattr(fine_tune, "gather_images", lambda *args: pytest.fail("a refused training reads no images"))
    with pytest.raises(rbd.InvalidInputError, match="invalid browser session id 'my laptop'"):
        list(fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 5, model, "my laptop"))


def test_a_cancelled_training_still_queued_stays_cancelled_when_train_is_pressed_again(ctx, model, monkeypatch):
    """Its run takes the tab's entry when it starts: a fresh entry made by the second click would let it train."""
    from ui import fine_tune

    request = types.SimpleNamespace(session_hash="tab-1")
    fine_tune.pressed(ctx, request)
    fine_tune.cancel(ctx, request)
    # Train again while the first run still waits in the queue: Gradio drops this click, which starts nothing, so it says so
    assert "still waits for its turn" in fine_tune.pressed(ctx, request)["status"]
    ctx.jobs["tab-1"]["started"] = True  # reading its images: it stops at its next step
    assert "still stops at its next step and ends then: press Train again" in fine_tune.pressed(ctx, request)["status"]
    ctx.jobs["tab-1"]["started"] = False
    monkeypatch.setattr(fine_tune, "gather_images", lambda *args: pytest.fail("a cancelled training reads no images"))
    stream = list(fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 5, model, "browser-1", request=request))
    assert stream == [{"status": fine_tune.cancelled(0)}] and "tab-1" not in ctx.jobs


def test_a_cancelled_trainings_plot_keeps_every_step_it_trained(ctx, model, monkeypatch):
    """The plot is drawn every fifth step: cancelled after four, it showed one point and said "after 4 step(s)"."""
    from ui import fine_tune

    class CancelledAfterFour:
        def __init__(self, *args, **kwargs):
            pass

        def updates(self):
            yield from (rbd.Progress(step=step, epoch=0.1, fraction=0.1 * step, loss=1.0 / step, elapsed_s=1.0) for step in (1, 2, 3, 4))

        def result(self):
            raise rbd.TrainingCancelled("cancelled")

    monkeypatch.setattr(fine_tune, "BackgroundTraining", CancelledAfterFour)
    monkeypatch.setattr(fine_tune, "gather_images", lambda uploaded, folder, names=(): [Path(folder) / f"{i}.png" for i in range(6)])
    monkeypatch.setattr(fine_tune, "model_pictures", lambda images, config: [torch.zeros(3, 8, 8)] * 6)
    request = types.SimpleNamespace(session_hash="tab-1")
    fine_tune.pressed(ctx, request)
    stream = list(fine_tune.fine_tune(ctx, ["upload.zip"], None, False, "", True, 0, 5, model, "browser-1", request=request,
                                      progress=lambda *a, **k: None))
    assert len(stream[0]["loss"]) == 1  # drawn at the first step
    assert stream[-1]["status"] == fine_tune.cancelled(4) and list(stream[-1]["loss"]["step"]) == [1, 2, 3, 4]


def test_a_cancel_after_the_last_step_saves_nothing_as_it_said(ctx, model, detector, category, monkeypatch):
    """Cancel pressed while the trained model is calibrated says the active model is unchanged: so it must stay."""
    from ui import fine_tune

    request = types.SimpleNamespace(session_hash="tab-1")

    class CancelledWhileCalibrating:
        def __init__(self, *args, **kwargs):
            pass

        def updates(self):
            yield rbd.Progress(step=1, epoch=1.0, fraction=1.0, loss=0.5, elapsed_s=1.0)
            assert fine_tune.cancel(ctx, request) == {"status": fine_tune.cancelled(1)}

        def cancel(self):
            pass

        def result(self):
            return detector  # the training finished its steps before the cancel reached it

    monkeypatch.setattr(fine_tune, "BackgroundTraining", CancelledWhileCalibrating)
    fine_tune.pressed(ctx, request)
    files = [str(p) for p in sorted((category / "train" / "good").iterdir())]
    stream = list(fine_tune.fine_tune(ctx, files, None, False, "", True, 0, 1, model, "browser-1", request=request,
                                      progress=lambda *a, **k: None))
    assert stream[-1]["status"] == fine_tune.cancelled(1)
    assert stream[-1]["loss"].to_dict("records") == [{"step": 1, "loss": 0.5}]  # the plot keeps the steps trained
    assert not any("yours" in label for label, _ in ctx.catalog.entries("browser-1"))



def test_a_review_closed_while_in_use_is_served_by_the_object_in_use(ctx, model, parts, monkeypatch):
    """More reviews opened meanwhile close the least recent one; a request still using it (a long scoring)
    keeps its object, and every other request on that review must get the same one."""
    from ui import context, review

    monkeypatch.setattr(context, "OPEN_REVIEWS", 1)
    good, _ = parts
    first = review.score(ctx, [str(good[0])], None, "", model, progress=lambda *a, **k: None)["review_id"]
    in_use = ctx.review(first)
    review.score(ctx, [str(good[1])], None, "", model, progress=lambda *a, **k: None)  # another review closes the first
    assert first not in ctx._open and ctx.review(first) is in_use

def test_a_large_image_is_shown_and_edited_at_a_bounded_size(ctx, model, parts, monkeypatch):
    from ui import review

    monkeypatch.setattr("rbd.visualize.SHOWN_PIXELS", 32 * 40)
    good, _ = parts  # 64 x 80 parts: "large" here, shown at half their size
    review_id = review.score(ctx, [str(good[0])], None, "", model, progress=lambda *a, **k: None)["review_id"]
    assert review.show(ctx, review_id, model, 0.1, "all")["image"].shape == (32, 40, 3)
    opened = review.edit(ctx, review_id, model, 0.1)
    assert opened["editor"]["canvas_size"] == (40, 32) and opened["editor"]["value"]["background"].shape == (32, 40, 3)
    layer = np.zeros((32, 40, 4), np.uint8)
    layer[:4, :4, 3] = 255
    review.save_mask(ctx, {"layers": [layer]}, review_id, model, 0.1, "all")
    session = ctx.review(review_id)
    saved = session.read_mask(session.decision(0).mask)
    assert saved.shape == (64, 80) and saved[:8, :8].all() and saved.sum() == 64  # at the image's size, where painted
    # opened at one threshold, saved at another: what was painted over is taken against the mask the editor opened
    # with, the model's at the first (against the second's, an untouched save stored neither mask but a mix of the two)
    review_id = review.score(ctx, [str(good[1])], None, "", model, progress=lambda *a, **k: None)["review_id"]
    review.edit(ctx, review_id, model, 0.1)
    opened_at = ctx.cursor(None).editing["threshold"]
    taken_at, painted_mask = [], review.rules.painted_mask
    monkeypatch.setattr(review.rules, "painted_mask", lambda *args: taken_at.append(args[-1]) or painted_mask(*args))
    review.save_mask(ctx, {"layers": [layer]}, review_id, model, 30, "all")
    assert taken_at == [opened_at] != [review.judged_at(ctx, ctx.review(review_id), model, 30)[1]]


def test_inspect_draws_a_large_image_smaller_and_keeps_regions_in_its_pixels(ctx, model, parts, monkeypatch):
    from ui import inspection

    _, bad = parts
    full = inspection.inspect_images(ctx, None, [str(bad[0])], model, 0.1, 0.5, None)
    monkeypatch.setattr("rbd.visualize.SHOWN_PIXELS", 32 * 40)  # the 64 x 80 part is "large": drawn at every 2nd pixel
    held = inspection.inspect_images(ctx, None, [str(bad[0])], model, 0.1, 0.5, None)["held"]
    assert held[0]["image"].shape == (32, 40, 3) and held[0]["map"].shape == (64, 80)  # the picture held as drawn
    np.testing.assert_array_equal(held[0]["map"], kept_map(rbd.load(model["key"]).predict(bad[0]).anomaly_map))  # as a review keeps it
    small = inspection.redraw(ctx, held, 0, model, 0.1, 0.5)
    k = inspection._enlargement(32, 40)  # a small picture is enlarged for its regions' boxes (the test below)
    assert small["pair"][1].shape == (32, 40, 3) and small["annotated"][0].shape == (32 * k, 40 * k, 3)
    np.testing.assert_array_equal(small["pair"][1], full["pair"][1][::2, ::2])
    assert np.asarray(Image.open(small["heat"])).shape == (32, 40, 3)  # the overlay's file, as drawn
    assert small["regions"].equals(full["regions"])  # the table in the image's own pixels
    *boxes, (mask, _) = small["annotated"][1]
    assert mask.shape == (32 * k, 40 * k) and boxes
    b = inspection.BOX_BORDER
    for (box, _), row in zip(boxes, full["regions"]["box (x0, y0, x1, y1)"]):
        x0, y0 = (k * (v // 2) for v in ast.literal_eval(row)[:2])
        x1, y1 = (k * -(-v // 2) for v in ast.literal_eval(row)[2:])
        assert box == (max(0, x0 - b), max(0, y0 - b), min(40 * k, x1 + b), min(32 * k, y1 + b))
    written = Path(small["mask_file"])  # the download: at the image's own size, not as drawn
    assert written.name == f"{bad[0].stem}_mask.png"
    np.testing.assert_array_equal(np.asarray(Image.open(written)) > 0, (mask[::k, ::k] > 0).repeat(2, axis=0).repeat(2, axis=1))


def test_a_tiny_images_region_box_lies_around_its_mask_not_over_it(ctx, model, tmp_path):
    """Gradio draws a box's border inside it, 3 pixels wide, and tints the rest: on an 8 x 8 image, or around a region of
    two pixels, the box hid the mask. The picture is enlarged, each box drawn outside its region, and the mask on top."""
    from ui import inspection

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "tiny.png")
    out = inspection.inspect_images(ctx, None, [str(tmp_path / "tiny.png")], model, 30.0, 0.5, None)  # 30 %: flagged
    picture, layers = out["annotated"]
    *boxes, (mask, label) = layers  # the mask drawn last, over the boxes' tint
    assert label == "defect" and boxes and picture.shape[:2] == mask.shape == (256, 256)  # 8 x 8, enlarged 32 times
    np.testing.assert_array_equal(mask[::32, ::32], mask[16::32, 16::32])  # whole pixels, not smoothed
    # a region of 2 x 2 pixels: its box's border (3 pixels inside the box) lies around it, not over it
    x0, y0, x1, y1 = inspection._outset((10, 20, 12, 22), 1, (100, 100))
    b = inspection.BOX_BORDER
    assert (x0 + b, y0 + b, x1 - b, y1 - b) == (10, 20, 12, 22)
    assert inspection._outset((0, 0, 8, 8), 32, (256, 256)) == (0, 0, 256, 256)  # within the picture


def test_a_defective_verdict_whose_map_stays_below_the_threshold_masks_the_hottest_pixels_in_inspect_too(ctx, model, parts):
    """The held map is rounded up to float16: with the threshold within one step above the map's peak (set by hand, or by
    a review), a few rounded pixels reached it, and Inspect's mask was those 5 pixels where rbd predict's is the map's
    hottest 1 %."""
    from rbd.anomaly_map import kept_map
    from rbd.detector import defect_mask
    from ui import inspection

    _, bad = parts
    held = inspection.inspect_images(ctx, None, [str(bad[0])], model, 0.1, 0.5, None)["held"][0]
    amap = np.linspace(0, 9.9041, 64 * 80, dtype=np.float32).reshape(64, 80)
    threshold = float(np.nextafter(np.float32(9.9041), np.float32(np.inf)))  # above the peak, below its float16 rounding
    item = {**held, "map": kept_map(amap), "peak": float(amap.max()), "score": 10.29}
    assert (item["map"].astype(np.float32) >= threshold).any()  # the rounded map reaches it
    judged = inspection._judged(ctx.detector(model).calibration, item, threshold)
    np.testing.assert_array_equal(judged.mask, defect_mask(amap, 10.29, threshold))
    assert judged.mask.sum() == pytest.approx(0.01 * amap.size, abs=2)


def test_inspects_mask_download_lies_on_the_file_as_scored_and_follows_the_threshold(ctx, model, parts):
    from ui import inspection, model_bar

    _, bad = parts
    held = inspection.inspect_images(ctx, None, [str(bad[0])], model, 0.1, 0.5, None)["held"]
    ramp = np.linspace(0, 2 * model_bar.threshold(ctx, model, 0.01), 64 * 80).reshape(64, 80)  # from 0 to twice the highest threshold
    held = [{**held[0], "map": ramp.astype(np.float16), "score": float(ramp.max())}]  # defective at every rate
    calibration = model_bar.calibration(ctx, model)
    masks = {}
    for rate in (0.01, 30.0):
        shown = inspection.redraw(ctx, held, 0, model, rate, 0.5)
        p = inspection._judged(calibration, held[0], model_bar.threshold(ctx, model, rate))
        masks[rate] = np.asarray(Image.open(shown["mask_file"]))
        np.testing.assert_array_equal(masks[rate], p.mask.astype(np.uint8) * 255)
    assert 0 < masks[0.01].sum() < masks[30.0].sum() < 255 * ramp.size  # a lower threshold marks more, never all
    photo = {**held[0], "size": (128, 160)}  # a photo past the largest side, scored on a copy of half its size
    at_file = np.asarray(Image.open(inspection.mask_file(ctx, photo, p)))
    assert at_file.shape == (128, 160)
    np.testing.assert_array_equal(at_file[::2, ::2], masks[30.0])
    assert inspection.cleared()["mask_file"] is None
    # made once for an image, model and threshold; named with the folders of the upload, so two 000.png stay apart
    exports = len(list(ctx.exports.iterdir()))
    again = inspection.redraw(ctx, held, 0, model, 30.0, 0.5)["mask_file"]
    assert again == shown["mask_file"] and len(list(ctx.exports.iterdir())) == exports
    named = {Path(inspection.mask_file(ctx, {**held[0], "output": inspection._output_base(f"{folder}/000.png")}, p)).name
             for folder in ("good", "bad")}
    assert named == {"good_000_mask.png", "bad_000_mask.png"}


def test_a_tiff_in_the_image_box_is_said_to_be_scored_though_the_browser_shows_none(ctx):
    from rbd.notices import collect
    from ui import inspection

    with collect() as notes:
        for name in ("scan 16.TIFF", "part.png", None, "camera.pgm"):
            assert inspection.unseen_preview(ctx, name) == {}
    assert notes == [f"{name}: browsers do not show {kind} pictures, so the box shows none; Inspect scores the file as it is "
                     "and draws it with its results" for name, kind in (("scan 16.TIFF", "TIFF"), ("camera.pgm", "PGM"))]


def test_inspects_overlay_downloads_named_after_its_file_not_as_image_jpeg(ctx, model, parts):
    from ui import inspection

    _, bad = parts
    item = inspection.inspect_images(ctx, None, [str(bad[0])], model, 0.1, 0.5, None)["held"][0]
    for name, named in (("good/000.png", "good_000_overlay.jpg"), ("bad/000.png", "bad_000_overlay.jpg")):
        shown = inspection.redraw(ctx, [{**item, "name": name, "output": inspection._output_base(name)}], 0, model, 0.1, 0.5)
        assert Path(shown["heat"]).name == named
        picture = np.asarray(Image.open(shown["heat"])).astype(np.float32)
        assert picture.shape == shown["pair"][1].shape and np.abs(picture - shown["pair"][1]).mean() < 4  # JPEG's loss alone



def test_inspect_says_why_a_good_image_shows_warm_spots_and_gives_max_scores_to_the_maps_precision(ctx, model):
    """The verdict takes the image's hottest pixels together, so a few pixels may pass the threshold on a good image;
    the held map is float16, so a region's max score is shown to 3 digits (17.375 read as exact)."""
    from rbd.detector import Prediction
    from ui import inspection

    calibration = ctx.detector(model).calibration
    anomaly_map = np.zeros((40, 40), np.float32)
    anomaly_map[5:7, 5:7] = np.float16(17.38)
    item = {"name": "a.png", "output": "a", "image": np.zeros((40, 40, 3), np.uint8), "notice": "", "size": (40, 40)}
    lines = lambda score: inspection._detail(ctx, item, Prediction(score, 0.0, 10.0, anomaly_map, 1.0), calibration, 0.5)  # noqa: E731
    good, defective = lines(1.0), lines(12.0)
    assert "GOOD" in good["summary"] and "Some pixels reach the threshold" in good["summary"]
    assert "DEFECTIVE" in defective["summary"] and "Some pixels" not in defective["summary"]
    assert defective["regions"]["max score"].tolist() == [17.4]


def test_inspect_tells_the_regions_of_a_photo_scored_downscaled_in_the_files_pixels(ctx, model, parts, tmp_path):
    """A photo past MAX_SIDE is scored on a downscaled copy; its region table is in the photo's own
    pixels: the connected parts of the mask laid on the file, as a review exports it."""
    from scipy import ndimage

    from rbd.images import MAX_SIDE, mask_at_size
    from ui import inspection

    _, bad = parts
    photo = tmp_path / "photo.png"
    Image.open(bad[0]).resize((MAX_SIDE + 64, (MAX_SIDE + 64) * 4 // 5), Image.Resampling.NEAREST).save(photo)
    out = inspection.inspect_images(ctx, None, [str(photo)], model, 0.1, 0.5, None)
    item = out["held"][0]
    assert item["size"] == ((MAX_SIDE + 64) * 4 // 5, MAX_SIDE + 64) and max(item["map"].shape) == MAX_SIDE
    judged = inspection._judged(model_bar_calibration(ctx, model), item, model_threshold(ctx, model))
    labels, count = ndimage.label(mask_at_size(judged.mask, item["size"]), structure=np.ones((3, 3)))
    laid = {(int((labels == k).sum()), str((xs.start, ys.start, xs.stop, ys.stop)))
            for k, (ys, xs) in enumerate(ndimage.find_objects(labels), start=1)}
    assert count >= 1 and set(zip(out["regions"]["area px"], out["regions"]["box (x0, y0, x1, y1)"])) == laid

def test_an_opacity_change_draws_only_the_two_heat_pictures_and_draws_them_as_a_full_redraw_does(ctx, model, parts, monkeypatch):
    from ui import inspection

    _, bad = parts
    monkeypatch.setattr("rbd.visualize.SHOWN_PIXELS", 32 * 40)  # drawn from every 2nd pixel of the held map
    held = inspection.inspect_images(ctx, None, [str(bad[0])], model, 0.1, 0.5, None)["held"]
    full = inspection.redraw(ctx, held, 0, model, 0.1, 0.8)
    restyled = inspection.restyle(ctx, held, 0, model, 0.1, 0.8)
    assert set(restyled) == {"heat", "pair"}  # no regions, mask or tables: an opacity does not change them
    assert restyled["heat"] == full["heat"]  # the same picture: the same file
    np.testing.assert_array_equal(restyled["pair"][1], full["pair"][1])
    np.testing.assert_array_equal(restyled["pair"][0], held[0]["image"])
    assert not np.array_equal(inspection.restyle(ctx, held, 0, model, 0.1, 0.2)["pair"][1], full["pair"][1])
    assert inspection.restyle(ctx, [], 0, model, 0.1, 0.5) == {}


def test_inspect_sends_its_pictures_as_jpeg_and_an_opacity_change_only_the_two_it_changes(app_server):
    import app as app_module

    demo = app_module.build_app(app_server[1] / "work-wiring", Catalog(app_server[1] / "shipped", app_server[1] / "work-wiring" / "m"))
    blocks = {getattr(block, "label", None): block for block in demo.blocks.values()}
    heat, pair, annotated = blocks["Heat-map overlay"], blocks["Original / overlay"], blocks["Predicted mask and regions"]
    assert heat.format == pair.format == annotated.format == "jpeg"  # PNG's encoding cost a second a redraw (BENCHMARKS.md)
    opacity = blocks["Heat-map opacity"]
    fns = [fn for fn in demo.fns.values() if any(block_id == opacity._id for block_id, _ in fn.targets)]
    assert len(fns) == 1 and list(fns[0].outputs) == [heat, pair]


def test_recalibrating_with_only_out_of_domain_good_images_says_so(ctx, model, parts, tmp_path):
    from ui import review

    yy, xx = np.mgrid[:64, :80]
    checkerboard = ((((yy // 8) + (xx // 8)) % 2) * 255).astype(np.uint8)
    other = tmp_path / "other.png"
    Image.fromarray(np.stack([checkerboard] * 3, axis=-1)).save(other)
    review_id = review.score(ctx, [str(other)], None, "", model, progress=lambda *a, **k: None)["review_id"]
    review.show(ctx, review_id, model, 0.1, "all")
    decision = "accept" if ctx.review(review_id).items[0].verdict == "good" else "reject"
    review.decide(ctx, decision, review_id, model, 0.1, "all")  # reviewed as good, but another product
    with pytest.raises(rbd.NoImagesError, match="1 image.s. reviewed as good are all out of this model's domain"):
        review.recalibrate(ctx, review_id, model, 1.0)


def test_a_fine_tunes_status_names_the_files_it_skipped(ctx, model, detector, category, tmp_path, monkeypatch):
    """A toast fades: the final status keeps the note of an unreadable upload."""
    from ui import fine_tune

    class Finished:
        def __init__(self, *args, **kwargs):
            pass

        def updates(self):
            yield rbd.Progress(step=1, epoch=1.0, fraction=1.0, loss=0.5, elapsed_s=1.0)

        def result(self):
            return detector

    monkeypatch.setattr(fine_tune, "BackgroundTraining", Finished)
    broken = tmp_path / "broken_part.png"
    broken.write_bytes(b"\x89PNG truncated")
    files = [str(p) for p in sorted((category / "train" / "good").iterdir())] + [str(broken)]
    stream = list(fine_tune.fine_tune(ctx, files, None, False, "", True, 0, 1, model, "browser-1", progress=lambda *a, **k: None))
    status = stream[-1]["status"]
    assert status.startswith("Trained") and r"broken\_part.png" in status.split("\n\n", 1)[1]  # as it is, not Markdown


@pytest.mark.parametrize("name", ["__cam1__ 0042.jpg", "star [x](y).jpg", "a*b*_c_ `d` <e> #1 |~! \\f.png"])
def test_a_file_name_shows_as_it_is_in_markdown_and_a_message_in_a_toast(name):
    """`__cam1__ 0042.jpg` showed bold without its underscores, and a warning lost `<defect>/<name>_mask.png` as tags."""
    import html

    from markdown_it import MarkdownIt

    from ui.wiring import as_markdown, as_toast

    assert MarkdownIt().renderInline(as_markdown(name)) == html.escape(name, quote=False)
    assert "<" not in as_toast(f"{name} <defect>") and html.unescape(as_toast(f"{name} <defect>")) == f"{name} <defect>"
