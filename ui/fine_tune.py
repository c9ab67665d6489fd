"""Fine-tune: train on uploaded normal images in the background, then share or push the model.

A fine-tune is private to the browser that made it until it is shared with every user of the
app or pushed to the Hub. Cancel stops training at its next step, or at the next image of the
teacher's first pass (a fraction of a second either way), and says that the active model is
unchanged; one pressed while the trained model is calibrated lets that finish and saves nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

import rbd
from rbd import review as rules
from rbd.backbones import offline_backbones
from rbd.catalog import model_name
from rbd.datasets import normal_uploads
from rbd.files import atomic_write
from rbd.notices import collect, notify
from rbd.plots import calibration_figure
from rbd.train import MIN_IMAGES, BackgroundTraining, budget_notes, model_pictures
from rbd.uploads import as_uploaded, gather_images, picked_names

from . import evaluation, model_bar
from .wiring import (REJUDGE_MODE, NamedFiles, as_markdown, forget_picked, gpu, on, paths, stored_name, told_again, uploaded_names,
                     with_picked)

ON_SPACES = os.environ.get("SYSTEM") == "spaces"
# bench.curve on the five development sets, 2-core CPU (BENCHMARKS.md, "Time to quality")
TRAINING_TIME_ADVICE = ("On a 2-core CPU one minute already ranked images within 0.02 AUROC of ten (the patch memory "
                        "needs no training); maps sharpened up to ten minutes and twenty added little.")
# BENCHMARKS.md, "Teachers": lite2 against the default lite0
TEACHER_ADVICE = ("For a new model (starting from the active model keeps its teacher). tf_efficientnet_lite2 "
                  "localised ksdd's thin cracks better (AUPRO 0.80-0.82 against 0.73-0.75 over three trainings), ranked weld's "
                  "images under mixed lighting slightly worse (-0.006 AUROC) and costs 1.05-1.3x the time per image.")

UPLOAD_BOX_HEIGHT = 240  # pixels

# Delete's `js`: its first input, whether the user said yes
DELETE_QUESTION = ("(confirmed, ...values) => [window.confirm('Delete the active fine-tune? It cannot be undone (download it "
                   "first to keep a copy).'), ...values]")


@dataclass
class FineTune:
    files: gr.File
    folder: gr.File
    picked: gr.JSON
    use_reviewed: gr.Checkbox
    start_current: gr.Checkbox
    epochs: gr.Number
    minutes: gr.Number
    teacher: gr.Dropdown
    name: gr.Textbox
    train: gr.Button
    cancel: gr.Button
    status: gr.Markdown
    loss: gr.LinePlot
    calibration: gr.Plot
    model_file: gr.File
    made_for: gr.State  # the model the loss, calibration and download above are of, and the download's threshold (`outputs_of`)
    download: gr.Button
    upload: gr.UploadButton
    share: gr.Button
    delete: gr.Button
    confirmed: gr.Checkbox
    repo_id: gr.Textbox
    token: gr.Textbox
    push: gr.Button
    push_status: gr.Markdown


def training_seconds(*args, **kwargs) -> int:
    """The GPU time a fine-tune asks ZeroGPU for (its default of 60 s is too short): the time
    budget plus a minute to load and calibrate, or ten minutes when there is no budget."""
    minutes = kwargs.get("minutes", args[7] if len(args) > 7 else None)
    return int(60 * float(minutes)) + 60 if minutes else 600


def _owner(browser: str, request: gr.Request | None) -> str:
    """Whose fine-tunes these are: the browser's id, or for an API client its session's."""
    return browser or (request.session_hash if request is not None else "") or "anonymous"


@gpu(duration=training_seconds)
def fine_tune(ctx, files, folder, use_reviewed: bool, review_id: str, start_current: bool, epochs: int, minutes: float,
              model: dict, browser: str, teacher: str = rbd.ModelConfig.backbone, name: str = "", picked: list | None = None,
              request: gr.Request = None, progress=gr.Progress()):
    """Train on uploaded normal images in the background; stream progress and losses; cancellable.
    A new model gets `teacher`; one started from the active model keeps the active model's settings but for the map's,
    which are today's (`ModelConfig.with_default_map`). `picked` is what the
    page recorded of the folders picked into the folder box (`rbd.uploads.picked_names`), so that their files keep
    their paths: an MVTec-layout folder then gives its train/good images only."""
    key = request.session_hash if request is not None else object()
    running = ctx.jobs.setdefault(key, pending())  # Train's click made it, or an API client calls directly
    running["started"] = True  # out of the queue
    losses = []  # each step's, for the plot
    with running_record(ctx, browser) as saved:  # until saved: a restart cuts a training off without a word otherwise
        try:  # from here on, whatever happens, `finally` forgets this training (a stale entry would cancel the next)
            if not epochs and not minutes:
                raise rbd.InvalidInputError("set a time budget (minutes) or a number of epochs: with neither, training would not end")
            ctx.catalog.owner_folder(_owner(browser, request))  # checked now: an API client's wrong id failed the save, after training
            config = rbd.TrainConfig(epochs=int(epochs) if epochs else None, max_minutes=float(minutes) if minutes else None)
            # a fine-tune keeps the active model's student settings and gets the map the app trains today
            model_config = ctx.detector(model).config.with_default_map() if start_current else rbd.ModelConfig(backbone=teacher)
            if running["cancelled"]:  # Cancel pressed while it waited in the queue
                raise rbd.TrainingCancelled("cancelled before it started")
            progress(0, desc="reading the images")
            with ctx.upload_folder() as upload, collect() as notes:  # skipped files: a toast now, and a line in the status
                loose, picked_files = paths(files), paths(folder)
                names = uploaded_names(files) + picked_names(picked_files, picked, stored_name)
                images = normal_uploads(gather_images(loose + picked_files, upload, names), upload) if loose + picked_files else []
                session = ctx.review(review_id)
                reviewed = rules.normal_images(session) if use_reviewed and session is not None else []
                images += reviewed
                if use_reviewed and not reviewed and images:  # ticked, and nothing came of it: said, not passed over
                    notify("this browser's review has no image accepted as good: trained on the uploads alone")
                if not images:
                    none_reviewed = " (this browser's review has no image accepted as good)" if use_reviewed else ""
                    raise rbd.NoImagesError(f"fine-tuning needs at least {MIN_IMAGES} normal images: upload some{none_reviewed}")
                # at model resolution as they are read: a set of large photos is never held at full size
                pictures = [picture.permute(1, 2, 0).numpy() for picture in model_pictures(images, model_config)]
            notes = told_again(ctx, notes)  # a toast now, and a line in the status
            if len(pictures) < MIN_IMAGES:
                raise rbd.NoImagesError(f"fine-tuning needs at least {MIN_IMAGES} readable normal images, got {len(pictures)}")
            progress(0, desc=f"preparing to train on {len(pictures)} images")
            running["job"] = job = BackgroundTraining(pictures, model_config, config, start_from=ctx.detector(model) if start_current else None)
            if running["cancelled"]:  # Cancel pressed while queued, reading or preparing
                job.cancel()
            for update in job.updates():  # a closed request closes this generator, which stops the job
                losses.append({"step": update.step, "loss": update.loss})
                running["step"] = update.step
                if update.fraction >= 1.0:  # the last step: the threshold is calibrated next, which takes a while
                    progress(1.0, desc=f"step {update.step} done · calibrating the threshold on normal images")
                    yield {"loss": pd.DataFrame(losses),
                           "status": f"trained {update.step} step{'' if update.step == 1 else 's'} · calibrating the threshold…"}
                    continue
                progress(update.fraction, desc=f"step {update.step} · epoch {update.epoch:.1f} · loss {update.loss:.4f}")
                if update.step % 5 == 1:  # the progress bar counts the steps (a count here lagged it by up to four)
                    yield {"loss": pd.DataFrame(losses), "status": "training…"}
            detector = job.result()
            if running["cancelled"]:  # pressed after the last step, while the model was calibrated: Cancel said "unchanged"
                raise rbd.TrainingCancelled("cancelled while calibrating")
        except rbd.TrainingCancelled:  # the plot shows every step trained (it is drawn every fifth step as they come)
            yield {"status": cancelled(running["step"]), **({"loss": pd.DataFrame(losses)} if losses else {})}
            return
        except rbd.RBDError as err:  # said in a message too, which stays until closed; the status line keeps it after that
            yield {"status": f"Not trained: {as_uploaded(str(err), ctx.upload_folders)}"}
            raise
        finally:  # a finished training is no longer this browser's to cancel
            if ctx.jobs.get(key) is running:
                del ctx.jobs[key]
        owner = _owner(browser, request)
        if start_current:  # its card says what it was fine-tuned from
            detector.training = {**detector.training, "started_from": model["name"]}
        key = ctx.catalog.add_trained(detector, owner, name)
        saved()  # a restart from here on cut nothing off (it said "no model was saved" of a model in the list)
        archive = shutil.make_archive(str(ctx.export_folder() / export_name(model_name(key))), "zip", key)
        loaded = model_bar.load_model(ctx, key, "", "", owner)
        yield {"loss": pd.DataFrame(losses), "calibration": calibration_figure(detector.calibration), "model_file": archive,
               "made_for": outputs_of(ctx, loaded["model"], loaded["rate"]), "status": trained_text(key, detector, notes),
               "choice": gr.update(choices=ctx.catalog.entries(owner), value=key), **loaded}


def trained_text(key: str, detector: rbd.Detector, notes: list[str]) -> str:
    """What a finished fine-tune says: what it trained on, how long, and what its budget or the images left out."""
    training = detector.training
    steps, copies = training["steps"], training.get("copies_left_out")
    lines = [f"Trained **{model_name(key)}** on {training['train_images']} of {training['images']} {'distinct ' if copies else ''}images "
             f"({training['holdout_images']} held out of training; {len(detector.calibration.normal_scores)} calibrate its threshold) in "
             f"{training['seconds']:.0f} s, {steps} step{'' if steps == 1 else 's'} (teacher {detector.config.backbone}). "
             "It is now the active model, yours only until you share it or push it to the Hub."]
    lines += [f"_{note[:1].upper()}{note[1:]}._" for note in budget_notes(training, detector.config.memory_size)]
    if copies:
        lines.append(f"_{copies} of the images {'was an exact copy' if copies == 1 else 'were exact copies'} of others: each was "
                     "trained on once._")
    return "\n\n".join(lines + [f"_{as_markdown(note)}_" for note in notes])


def _records(ctx, browser) -> str | None:
    """The name pattern of a browser's training records: `<browser id>.<one per training>.json`; None for no browser (an
    API client) or an id the training refuses (only `rbd.catalog`'s session ids are file names)."""
    try:
        ctx.catalog.owner_folder(browser)
    except rbd.InvalidInputError:
        return None
    return f"{browser}.*.json"


@contextlib.contextmanager
def running_record(ctx, browser: str):
    """A record of a browser's fine-tune while it runs, until its model is saved. A restart of the app (a Space woken
    up, a new version) cuts the training off and saves nothing: the record it leaves behind tells the browser so when
    it comes back (`cut_off`), where the page said nothing. One file per training, so that one ending never removes
    another's. Gives what removes it once the model is saved, before the rest of the request."""
    pattern = _records(ctx, browser)
    if pattern is None:
        yield lambda: None
        return
    record = ctx.trainings / pattern.replace("*", uuid.uuid4().hex)
    with atomic_write(record) as f:
        f.write(json.dumps({"run": ctx.run, "started": time.time()}).encode())
    try:
        yield lambda: record.unlink(missing_ok=True)
    finally:
        record.unlink(missing_ok=True)


def cut_off(ctx, browser: str) -> dict:
    """On page load: the fine-tunes of this browser that a restart of the app stopped are said, once. One running now
    is said in the status line alone: it runs for another page of this browser, or for this one before a reload, which
    stops it as the old page goes (the browser tells the server after the new page has loaded), and the reloaded page
    said nothing of it."""
    pattern = _records(ctx, browser)
    starts, running = [], []
    for record in sorted(ctx.trainings.glob(pattern)) if pattern else []:
        try:
            facts = json.loads(record.read_text())
        except FileNotFoundError:  # said by another tab just now
            continue
        except (OSError, ValueError):  # unreadable: still a training that never ended
            facts = None
        facts = facts if isinstance(facts, dict) else {}
        if facts.get("run") == ctx.run:  # running now
            running.append(facts.get("started"))
            continue
        record.unlink(missing_ok=True)
        starts.append(facts.get("started"))
    if not starts:
        return {"status": f"A fine-tune of this browser{_ago(running)} was training as this page opened. It goes on while the "
                          "page that started it stays open; if that was this page before a reload, it stopped, and no model "
                          "was saved."} if running else {}
    message = (f"The app restarted while your fine-tune was training{_ago(starts)}: it was stopped and no model was saved. "
               "Press Train to train again.")
    notify(message)  # a message on whichever tab the page opens, and the status where Train is
    return {"status": message}


def _ago(starts: list) -> str:
    """The words " (started 3 minutes ago)" for the latest of the records' start times, where one holds a time."""
    started = max((start for start in starts if isinstance(start, (int, float))), default=None)
    return f" (started {_duration(time.time() - started)} ago)" if started is not None else ""


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "under a minute"


def cancelled(steps: int) -> str:
    """What Cancel and the cancelled training's stream both say. No model's name: the one active at Train's click, which
    the stream knows, may no longer be (another was loaded since), and its last word replaced Cancel's true one."""
    return f"Training cancelled after {steps} step(s): no model was saved, and the active model is unchanged."


def pending() -> dict:
    """A browser tab's training as `ctx.jobs` holds it, from Train's click on (so that Cancel reaches
    it while it waits in the queue or reads its images): its job once started, its last step."""
    return {"job": None, "step": 0, "cancelled": False, "started": False}


def pressed(ctx, request: gr.Request = None) -> dict:
    """Train's click, before the training queues: an earlier run's message, loss, calibration and model file go (a
    failure must not leave a success standing beside its error), and Cancel can reach the training from now on. A
    cancelled training still waiting in the queue keeps its entry, so that it ends cancelled: a fresh
    entry here would be the one it takes when it starts, and it would train after all. This click then starts
    nothing (Gradio drops a click while its event waits or runs), which it says; a click while a training goes on
    changes nothing shown."""
    earlier = {"loss": None, "calibration": None, "model_file": None}  # a failed run must not show the last one's as its own
    if request is None:
        return {"status": "", **earlier}
    busy = request.session_hash in ctx.jobs
    running = ctx.jobs.setdefault(request.session_hash, pending())
    if busy and not running["cancelled"]:  # a second click while this tab's training waits or runs: it shows on
        return {}
    if running["cancelled"]:
        still = "stops at its next step" if running["started"] else "waits for its turn (another training runs first)"
        return {"status": f"The cancelled training still {still} and ends then: press Train again once this says it "
                          "was cancelled.", **earlier}
    return {"status": "", **earlier}


def cancel(ctx, request: gr.Request = None) -> dict:
    """Stop this browser tab's training at its next step (and wait for it), or before it starts.
    The training's own stream then ends with the same message: Gradio's `cancels` would cut it off
    mid-stream and mark the status as an error over this message."""
    running = ctx.jobs.get(request.session_hash) if request is not None else None
    if running is None or running["cancelled"]:
        return {"status": "No training is running."}
    running["cancelled"] = True
    if running["job"] is not None:
        running["job"].cancel()
    return {"status": cancelled(running["step"])}


def closed(ctx, request: gr.Request = None) -> None:
    """The tab closed: its training is cancelled and forgotten. Gradio drops a training still queued
    for it, which would otherwise leave its `pending` entry behind for good."""
    running = ctx.jobs.pop(request.session_hash, None) if request is not None else None
    if running is not None:
        running["cancelled"] = True
        if running["job"] is not None:
            running["job"].cancel()


def share(ctx, model: dict, browser: str, request: gr.Request = None) -> dict:
    """Offer the active fine-tune to every user of this app."""
    owner = _owner(browser, request)
    key = ctx.catalog.publish(model["key"], owner)
    loaded = model_bar.load_model(ctx, key, "", "", owner)
    recalibration = model_bar.recalibrated_by_review(ctx, {**model, "key": key})
    if recalibration is not None:  # a review's recalibration stays with the model it recalibrated
        shared = model_bar.recalibrated(ctx, loaded["model"], recalibration)
        rate = model_bar.model_rate(recalibration)
        loaded = {"model": shared, "rate": rate, "info": model_bar.info(ctx, shared, rate)}
    return {"status": f"**{Path(key).name}** is now offered to every user of this app.",
            "choice": gr.update(choices=ctx.catalog.entries(owner), value=key), **loaded}


def check_delete(ctx, model: dict, browser: str, request: gr.Request = None) -> dict:
    """Delete's click: a model that cannot be deleted is refused before the page asks whether to delete it."""
    owner = _owner(browser, request)
    ctx.catalog.check_removable(ctx.catalog.current_key(model["key"], owner), owner)
    return {}


def delete(ctx, confirmed: bool, model: dict, browser: str, request: gr.Request = None) -> dict:
    """Delete the active fine-tune, when it is still this browser's own (`Catalog.remove`), once the page's
    question is answered yes; the default model becomes active."""
    if not confirmed:
        return {}
    owner = _owner(browser, request)
    ctx.catalog.remove(ctx.catalog.current_key(model["key"], owner), owner)
    ctx.remove_exports(export_name(model["name"]))  # its downloads too: "cannot be undone" leaves no copy of it here
    loaded = model_bar.load_model(ctx, ctx.catalog.default_key() or "", "", "", owner)
    return {"status": f"Deleted **{model['name']}**; the active model is now **{loaded['model']['name']}**.", "model_file": None,
            "choice": gr.update(choices=ctx.catalog.entries(owner), value=loaded["model"]["key"]), **loaded}


def as_judged(ctx, model: dict, rate: float) -> rbd.Detector:
    """The active model as the model bar judges by it: with a review's recalibration, where one was applied, and the
    bar's threshold, set as a threshold by hand is (the model's own was saved, and `rbd predict` judged otherwise than
    the app had). Its calibration is kept as it is, so that the copy is the same model (`Calibration.fingerprint`)."""
    detector = ctx.detector(model)
    return detector.judging_by(model_bar.recalibrated_by_review(ctx, model) or detector.calibration,
                               model_bar.threshold(ctx, model, rate))


def download(ctx, model: dict, rate: float) -> dict:
    """The active model as a checkpoint zip (`rbd.load` reads the unzipped folder), as it judges here: a fine-tune
    can be downloaded again after a reload or a restart, not only when its training ends."""
    folder = ctx.export_folder() / export_name(model["name"])
    rbd.save(as_judged(ctx, model, rate), folder)
    return {"model_file": shutil.make_archive(str(folder), "zip", folder), "made_for": outputs_of(ctx, model, rate)}


def rejudge(ctx, area: FineTune, bar: model_bar.ModelBar, trigger) -> None:
    """After the model or the threshold changed: the last training's loss and calibration and a download go once another
    model is active (the calibration's threshold was not the model line's, and the download was of the model before);
    a download alone goes once the bar judges at another threshold (a rate moved, a review's recalibration): it
    judged otherwise than the bar."""
    on(trigger, of_another, ctx, [area.made_for, bar.model, bar.rate], {"loss": area.loss, "calibration": area.calibration,
       "model_file": area.model_file, "made_for": area.made_for}, show_progress="hidden", trigger_mode=REJUDGE_MODE,
       api_visibility="private")


def outputs_of(ctx, model: dict, rate: float) -> dict:
    """What the tab's outputs are of: the model (`model_bar.identity`) and the threshold a download judges at."""
    return {"model": model_bar.identity(ctx, model), "threshold": model_bar.threshold(ctx, model, rate)}


def of_another(ctx, made: dict | None, model: dict, rate: float) -> dict:
    if not made:
        return {}
    if made["model"] != model_bar.identity(ctx, model):
        return {"loss": None, "calibration": None, "model_file": None, "made_for": None}
    if made["threshold"] != model_bar.threshold(ctx, model, rate):
        return {"model_file": None, "made_for": {**made, "threshold": None}}
    return {}


def upload_model(ctx, file, browser: str, request: gr.Request = None) -> dict:
    """A checkpoint zip (this app's download of a model, a zipped `rbd train --out` folder) as this browser's own model,
    active at once: a model trained on the command line reached the app only through the Hub."""
    [path] = paths(file) or [""]
    if Path(path).suffix.lower() != ".zip":
        raise rbd.CheckpointError(f"{Path(path).name or 'nothing'}: a model is loaded from a zip of its checkpoint folder "
                                  "(Download the active model makes one)")
    owner = _owner(browser, request)
    ctx.catalog.owner_folder(owner)  # a wrong id (an API client's) is refused before the model is read
    key = ctx.catalog.add_trained(rbd.load(path, device=ctx.catalog.device), owner, Path(path).stem)  # served as it is
    return {"status": f"Loaded **{model_name(key)}** from {Path(path).name}. It is now the active model, yours only until you "
                      "share it or push it to the Hub.",
            "choice": gr.update(choices=ctx.catalog.entries(owner), value=key), **model_bar.load_model(ctx, key, "", "", owner)}


def export_name(name: str) -> str:
    """The file name of a model's download (a Hub model's "owner/name" too): what Delete looks for among the exports."""
    return re.sub(r"[^\w.-]", "_", name)


def push(ctx, model: dict, repo_id: str, token: str, evaluated: dict | None, rate: float,
         oauth_token: gr.OAuthToken | None = None) -> dict:
    """Upload the active model to a Hub model repo as the model bar judges by it (`as_judged`); its card lists the
    metrics of this browser session's last evaluation of that model, if any."""
    token = (oauth_token.token if oauth_token else None) or (token or "").strip()
    if not rbd.checkpoint.is_repo_id((repo_id or "").strip()):  # first: the box beside the button
        raise rbd.CheckpointError("enter the target repo as owner/name")
    if not token:  # the sign-in button is there on a Space only
        raise rbd.CheckpointError(f"a Hugging Face token with write access is needed ({'sign in, or paste one' if ON_SPACES else 'paste one'})")
    detector = as_judged(ctx, model, rate)  # the shared model judges as this browser saw it judge, and its card says
    metrics = evaluation.metrics_at(evaluated, detector.threshold) if evaluation.is_of(ctx, evaluated, model) else None  # so
    url = rbd.push_to_hub(detector, repo_id.strip(), token=token, metrics=metrics)
    recalibrated = model_bar.recalibrated_by_review(ctx, model) is not None
    return {"push_status": f"Pushed: {url} (judging at raw threshold {detector.threshold:.4f}, {rate:g}% expected false "
                           f"alarms{', recalibrated from the review' if recalibrated else ''})"}


def layout(ctx) -> FineTune:
    with gr.Row():
        with gr.Column():
            # at most this tall, its list scrolling: 80 files pushed Train and its progress 6000 px down the page
            files = NamedFiles(file_count="multiple", label=f"Normal images ({MIN_IMAGES} or more) or zips", elem_id="train-files",
                            height=UPLOAD_BOX_HEIGHT)
            folder = gr.File(file_count="directory", label="…or a whole folder of normal images", elem_id="train-folder",
                             elem_classes=["rbd-folder"], height=UPLOAD_BOX_HEIGHT)
            picked = gr.JSON(visible=False)  # the picked folders' paths, filled in by the page when Train is pressed
            use_reviewed = gr.Checkbox(label="Add images I accepted as good in the Review tab", value=False)
            start_current = gr.Checkbox(label="Start from the active model (faster)", value=True)
            with gr.Row():
                # by default the budget alone ends training, whatever the number of images (the recipe's schedule follows it).
                # No minimum: Gradio's own check of it refused a click before `fine_tune` ran, whose `finally` then never
                # forgot the training Train's click had announced (Cancel said it cancelled one, the next Train was dropped);
                # `rbd.TrainConfig` says what is wrong with a value
                epochs = gr.Number(value=0, precision=0, label="Epochs (0 = as many as the time budget allows)", elem_id="train-epochs")
                minutes = gr.Number(value=5, label="Time budget (minutes, 0 = none)", elem_id="train-minutes", info=TRAINING_TIME_ADVICE)
            teacher = gr.Dropdown(offline_backbones(), value=rbd.ModelConfig.backbone, label="Teacher", info=TEACHER_ADVICE,
                                  elem_id="train-teacher")
            name = gr.Textbox(value="", label="Name (optional)", placeholder="e.g. bolts-line-3",
                              info="the model list shows it, with the date",
                              max_length=40, elem_id="train-name")
            with gr.Row():
                train = gr.Button("Train", variant="primary", elem_id="train-run")
                cancel_button = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
            status = gr.Markdown(elem_id="train-status", min_height=64)  # room for the queue and progress it shows
        with gr.Column():
            loss = gr.LinePlot(x="step", y="loss", label="Training loss", height=220, elem_id="train-loss")
            calibration = gr.Plot(label="Calibration", show_label=False)  # the figure's title: the label covered its top
            model_file = gr.File(label="Download the model", interactive=False, elem_id="train-model-file")
            made_for = gr.State(None)
            with gr.Row():
                download_button = gr.Button("Download the active model", size="sm", elem_id="train-download")
                upload_button = gr.UploadButton("Load a model from its zip", file_types=[".zip"], size="sm", elem_id="train-upload")
                delete_button = gr.Button("Delete the active fine-tune", size="sm", variant="stop", elem_id="train-delete")
                confirmed = gr.Checkbox(visible=False)  # the page's question answered (DELETE_QUESTION)
    with gr.Row():
        share_button = gr.Button("Share the active fine-tune with every user of this app", elem_id="train-share")
        repo_id = gr.Textbox(label="Push to Hub repo (owner/name)")
        if ON_SPACES:
            gr.LoginButton()
        token = gr.Textbox(label="…or a Hugging Face token with write access", type="password")
        push_button = gr.Button("Push to Hub")
    push_status = gr.Markdown(elem_id="train-push-status")
    return FineTune(files, folder, picked, use_reviewed, start_current, epochs, minutes, teacher, name, train, cancel_button, status,
                    loss, calibration, model_file, made_for, download_button, upload_button, share_button, delete_button, confirmed, repo_id, token, push_button, push_status)


def afresh(ctx, trigger, status: gr.Markdown):
    """`trigger` empties the status line first (its event, to chain the action on): a refusal, said in a message, left
    an earlier success standing there as if it were this click's ("Loaded bolts…" after a zip of images was refused)."""
    return on(trigger, emptied, ctx, [], {"status": status}, queue=False, api_visibility="private")


def emptied(ctx) -> dict:
    return {"status": ""}


def wire(ctx, app: gr.Blocks, area: FineTune, bar: model_bar.ModelBar, review_id, evaluated, rejudge) -> None:
    clicked = on(area.train.click, pressed, ctx, [],
                 {"status": area.status, "loss": area.loss, "calibration": area.calibration, "model_file": area.model_file},
                 queue=False, api_visibility="private")
    trained = on(clicked.then, fine_tune, ctx,
                 [area.files, area.folder, area.use_reviewed, review_id, area.start_current, area.epochs, area.minutes,
                  bar.model, bar.browser, area.teacher, area.name, area.picked],
                 {"loss": area.loss, "calibration": area.calibration, "model_file": area.model_file, "made_for": area.made_for,
                  "choice": bar.choice,
                  "status": area.status, "model": bar.model, "rate": bar.rate, "info": bar.info},
                 api_name="fine_tune", concurrency_limit=1, concurrency_id="train", show_progress_on=[area.status],
                 js=with_picked("train-folder"))
    area.folder.clear(None, [], [], js=forget_picked("train-folder"), api_visibility="private")
    rejudge(trained.success)
    on(area.cancel.click, cancel, ctx, [], {"status": area.status}, api_name="cancel_training", concurrency_limit=None)

    def tab_closed(request: gr.Request):  # Gradio hands a request only to a function that names it so
        closed(ctx, request)
    app.unload(tab_closed)
    on(app.load, cut_off, ctx, [bar.browser], {"status": area.status}, api_visibility="private")
    shared = on(afresh(ctx, area.share.click, area.status).then, share, ctx, [bar.model, bar.browser],
                {"status": area.status, "choice": bar.choice, "model": bar.model, "rate": bar.rate, "info": bar.info},
                api_name="share_model", show_progress_on=[area.share])  # an error badge on the button, not on the model bar
    rejudge(shared.success)
    checked = on(afresh(ctx, area.delete.click, area.status).then, check_delete, ctx, [bar.model, bar.browser], {"status": area.status},
                 api_visibility="private", show_progress_on=[area.delete])
    deleted = on(checked.success, delete, ctx, [area.confirmed, bar.model, bar.browser],
                 {"status": area.status, "choice": bar.choice, "model": bar.model, "rate": bar.rate, "info": bar.info,
                  "model_file": area.model_file}, api_name="delete_model", show_progress_on=[area.delete], js=DELETE_QUESTION)
    rejudge(deleted.success)
    on(area.download.click, download, ctx, [bar.model, bar.rate], {"model_file": area.model_file, "made_for": area.made_for}, api_name="download_model",
       show_progress_on=[area.download])
    uploaded = on(afresh(ctx, area.upload.upload, area.status).then, upload_model, ctx, [area.upload, bar.browser],
                  {"status": area.status, "choice": bar.choice, "model": bar.model, "rate": bar.rate, "info": bar.info},
                  api_name="upload_model", show_progress_on=[area.upload])
    rejudge(uploaded.success)
    # the rate last: an API call that leaves it out keeps its place for the others (and gets the control's 1%)
    on(afresh(ctx, area.push.click, area.push_status).then, push, ctx, [bar.model, area.repo_id, area.token, evaluated, bar.rate],
       {"push_status": area.push_status}, api_name="push_to_hub")
