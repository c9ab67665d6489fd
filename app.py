"""rbd web app: inspect images, review verdicts, fine-tune and evaluate. UI only.

Every number and picture shown here is computed by the `rbd` package (also usable from Python
and the command line); this file lays out components and wires events. Run `python app.py`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import secrets
import shutil
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import rbd  # noqa: E402
from rbd.catalog import Catalog  # noqa: E402
from rbd.files import atomic_write  # noqa: E402
from rbd.images import read_images, to_uint8  # noqa: E402
from rbd.notices import collect, notify  # noqa: E402
from rbd.plots import calibration_figure, roc_figure  # noqa: E402
from rbd import review  # noqa: E402
from rbd.detector import verdict as verdict_at  # noqa: E402
from rbd.review import ReviewSession  # noqa: E402
from rbd.train import BackgroundTraining  # noqa: E402
from rbd.uploads import extract_zip, find_mvtec_root, gather_images  # noqa: E402
from rbd.visualize import overlay  # noqa: E402

ROOT = Path(__file__).resolve().parent
WORK = Path(os.environ.get("RBD_WORK_DIR", ROOT / "work"))
EXAMPLES = sorted((ROOT / "examples").glob("*.jpg"))
ON_SPACES = os.environ.get("SYSTEM") == "spaces"
MIN_TRAINING_IMAGES = 5

try:  # on a ZeroGPU Space, GPU work must run inside spaces.GPU; elsewhere it is a no-op
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn=None, duration=None):
        return fn if fn is not None else (lambda fn: fn)


def training_seconds(*args, **kwargs) -> int:
    """The GPU time a fine-tune asks ZeroGPU for (its default of 60 s is too short): the time
    budget plus a minute to load and calibrate, or ten minutes when there is no budget."""
    minutes = kwargs.get("minutes", args[6] if len(args) > 6 else None)
    return int(60 * float(minutes)) + 60 if minutes else 600

SHORTCUTS = """
() => {
  const keys = {a: "review-accept", r: "review-reject", e: "review-edit", ArrowLeft: "review-prev",
                ArrowRight: "review-next", j: "review-next", k: "review-prev"};
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target && (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) || target.isContentEditable)) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const id = keys[event.key];
    const button = id && document.getElementById(id);
    if (button && !button.disabled && button.offsetParent !== null) { event.preventDefault(); button.click(); }
  });
}
"""


def user_errors(fn):
    """Show rbd's errors as a message in the UI and its notices (skipped files, ...) as toasts.

    Generator handlers (streaming progress) are wrapped as generators, so Gradio still streams them.
    """
    @contextlib.contextmanager
    def reported():
        with collect() as notes:
            try:
                yield
            except rbd.RBDError as err:
                raise gr.Error(str(err), print_exception=False) from err
            finally:
                for note in notes:
                    gr.Warning(note)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            # Gradio resumes a generator in a fresh context each time: collect per step
            steps = fn(*args, **kwargs)
            try:
                while True:
                    with reported():
                        try:
                            value = next(steps)
                        except StopIteration:
                            return
                    yield value
            finally:
                steps.close()  # a cancelled request closes us: close the handler too
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with reported():
            return fn(*args, **kwargs)
    return call


def _paths(files) -> list[str]:
    """Gradio hands over one path, a list of paths, or None."""
    if files is None:
        return []
    return [str(f) for f in (files if isinstance(files, list) else [files])]


def _state_secret(work: Path) -> str:
    """A secret kept in the work folder, so browser-stored review ids survive restarts."""
    if os.environ.get("RBD_STATE_SECRET"):
        return os.environ["RBD_STATE_SECRET"]
    path = work / "browser-state-secret"
    if not path.exists():
        with atomic_write(path) as f:
            f.write(secrets.token_hex(16).encode())
    return path.read_text().strip()


def _metrics_text(m: dict, n_items: int, threshold: float) -> str:
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    return (f"Reviewed **{m['n_reviewed']}** of {n_items} · defective {m['n_defective']} · AUROC {fmt(m['auroc'])} · "
            f"precision {fmt(m['precision'])} · recall {fmt(m['recall'])} at threshold {threshold:.4f}")


def build_app(work: Path = WORK, catalog: Catalog | None = None) -> gr.Blocks:
    """The app; `work` holds uploads (only while a request runs), reviews, exports and fine-tuned models."""
    catalog = catalog or Catalog(ROOT / "checkpoints", work / "models")
    reviews, exports = work / "reviews", work / "exports"
    uploads = work / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)

    def detector_for(model: list) -> rbd.Detector:
        """`model` is the [key, revision] a session has loaded."""
        if not model or not model[0]:
            raise rbd.CheckpointError("no model is loaded: pick one or enter a Hub repo id")
        return catalog.get(model[0], model[1])

    def export_folder() -> Path:
        """A fresh folder per export, so two users never share a file name; day-old ones are removed."""
        exports.mkdir(parents=True, exist_ok=True)
        for old in exports.iterdir():
            if time.time() - old.stat().st_mtime > 86400:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=exports))

    # ---------------------------------------------------------------- model bar
    @user_errors
    def load_model(choice: str, hub_id: str, revision: str):
        """Load a shipped/fine-tuned checkpoint, or a Hub repo (at a revision) when a repo id is given."""
        model = [hub_id.strip(), revision.strip() or None] if hub_id and hub_id.strip() else [choice, None]
        detector = detector_for(model)
        name = Path(model[0]).name if model[1] is None and not hub_id else "@".join(filter(None, model))
        low, high = detector.calibration.grey_zone(detector.threshold)
        info = f"**{name}** · backbone `{detector.config.backbone}` · {detector.calibration.describe(detector.threshold)}"
        return model, detector.threshold, info, round(low, 4), round(high, 4)

    # ---------------------------------------------------------------- inspect
    def describe(detector: rbd.Detector, item: dict, threshold: float, opacity: float):
        p = detector.rethreshold(item["prediction"], threshold)
        original = item["image"]
        heat = overlay(original, p.anomaly_map, detector.calibration, threshold, opacity)
        regions = p.regions()
        annotations = [(p.mask.astype(np.float32), "defect")] + [(r.box, f"region {i + 1}") for i, r in enumerate(regions[:20])]
        table = pd.DataFrame([{"region": i + 1, "area px": r.area, "max score": round(r.max_score, 4), "box (x0, y0, x1, y1)": str(r.box)}
                              for i, r in enumerate(regions)], columns=["region", "area px", "max score", "box (x0, y0, x1, y1)"])
        summary = (f"### {p.verdict.upper()}\n**{item['name']}** · anomaly score **{p.score:.4f}** · normalised "
                   f"**{p.normalized_score:.3f}** (0.5 = threshold {threshold:.4f}) · {len(regions)} region(s)")
        if item["notice"]:
            summary += f"\n\n_{item['notice']}_"
        return summary, heat, (original, heat), (original, annotations), table

    def results_table(detector: rbd.Detector, items: list, threshold: float) -> pd.DataFrame:
        rows = []
        for item in items:
            p = detector.rethreshold(item["prediction"], threshold)
            rows.append({"image": item["name"], "score": round(p.score, 4), "normalised": round(p.normalized_score, 3), "verdict": p.verdict})
        return pd.DataFrame(rows, columns=["image", "score", "normalised", "verdict"])

    @gpu
    @user_errors
    def inspect_images(image_path, files, model, threshold: float, opacity: float):
        """Score one or more images; show the first in detail and all of them in a table."""
        detector = detector_for(model)
        paths = _paths(image_path) + _paths(files)
        if not paths:
            raise rbd.NoImagesError("upload an image (or several) first")
        with tempfile.TemporaryDirectory(dir=uploads) as folder, collect() as notes:
            scored = list(rbd.predict_files(detector, gather_images(paths, folder)))
        for note in notes:  # skipped or downscaled files: a toast now, and a line under every summary
            notify(note)
        items = [{"name": path.name, "image": to_uint8(image), "notice": "; ".join(notes), "prediction": p}
                 for path, image, p in scored]
        choices = [(item["name"], i) for i, item in enumerate(items)]
        return (items, gr.update(choices=choices, value=0), results_table(detector, items, threshold),
                *describe(detector, items[0], threshold, opacity))

    def reinspect(image_path, files, model, threshold: float, opacity: float):
        """After a model change: score what Inspect holds again, so no verdict mixes two models."""
        if not _paths(image_path) + _paths(files):
            return None, *([gr.skip()] * 7)
        return inspect_images(image_path, files, model, threshold, opacity)

    @user_errors
    def redraw(items, index, model, threshold: float, opacity: float):
        """Threshold, opacity or selection changed: re-judge the stored predictions, no network run."""
        if not items:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        detector = detector_for(model)
        item = items[min(int(index or 0), len(items) - 1)]
        return (results_table(detector, items, threshold), *describe(detector, item, threshold, opacity))

    # ---------------------------------------------------------------- review
    def session_for(session_id: str) -> ReviewSession | None:
        return ReviewSession.open(reviews, session_id) if session_id else None

    def gallery(session: ReviewSession | None, threshold: float, view: str, low: float, high: float):
        if session is None:
            return [], []
        order = [session.item(int(i)) for i in review.ordered(session, view, threshold, low, high)]
        shown = []
        for item in order:
            decision = session.decision(item.id)
            caption = f"{item.score:.3f} · {verdict_at(item.score, threshold)}" + (f" · {decision.decision}" if decision else "")
            shown.append((review.overlay(session, item.id, threshold, opacity=0.45, max_side=256), caption))
        return shown, [item.id for item in order]

    def review_view(session: ReviewSession | None, order: list, position: int, threshold: float):
        if session is None or not order:
            return "No images to review yet: upload images or a zip and press **Score batch**.", None, gr.update(visible=False)
        position = max(0, min(int(position), len(order) - 1))
        item = session.item(order[position])
        decision = session.decision(item.id)
        text = (f"**{position + 1} / {len(order)}** · {item.file_name} · score **{item.score:.4f}** · model says "
                f"**{verdict_at(item.score, threshold)}** · decision: **{decision.decision if decision else 'not reviewed'}**\n\n"
                "Keys: **a** accept · **r** reject · **e** edit mask · **←/→** previous/next")
        return text, review.overlay(session, item.id, threshold), gr.update(visible=False)

    def review_metrics(session: ReviewSession | None, threshold: float) -> str:
        return "" if session is None else _metrics_text(review.metrics(session, threshold), len(session.items), threshold)

    @gpu
    @user_errors
    def start_review(files, folder_files, session_id: str, model, progress=gr.Progress()):
        """Score uploaded images, zips or a whole folder into this browser's review session."""
        detector = detector_for(model)
        session_id = session_id or uuid.uuid4().hex
        existing = session_for(session_id)
        before = len(existing.items) if existing else 0
        with tempfile.TemporaryDirectory(dir=uploads) as folder:
            images = gather_images(_paths(files) + _paths(folder_files), folder)
            session = ReviewSession.create(reviews, session_id, detector, images,
                                           progress=lambda done, total: progress((done, total), desc="scoring"))
        return session_id, f"Scored {len(session.items) - before} image(s); {len(session.items)} in this review."

    @user_errors
    def refresh_review(session_id, threshold, view, low, high, position):
        session = session_for(session_id)
        shown, order = gallery(session, threshold, view, low, high)
        return (shown, order, *review_view(session, order, position or 0, threshold), review_metrics(session, threshold))

    def shown_item(session_id, order, position, nothing: str):
        """The review session and the item at `position` of the shown order; `nothing` says why there is none."""
        session = session_for(session_id)
        if session is None or not order:
            raise rbd.NoImagesError(nothing)
        return session, session.item(order[int(position)])

    @user_errors
    def decide(decision: str, session_id, order, position, threshold, view, low, high):
        session, item = shown_item(session_id, order, position, "nothing to review")
        session.decide(item.id, decision, threshold)
        shown, new_order = gallery(session, threshold, view, low, high)
        # move on from the decided image (or stay at this place if the filter dropped it)
        position = new_order.index(item.id) + 1 if item.id in new_order else int(position)
        position = min(position, max(0, len(new_order) - 1))
        return (shown, new_order, position, *review_view(session, new_order, position, threshold), review_metrics(session, threshold))

    @user_errors
    def step(delta: int, order, position, session_id, threshold):
        position = max(0, min(int(position or 0) + delta, max(0, len(order or []) - 1)))
        return (position, *review_view(session_for(session_id), order or [], position, threshold))

    def select(order, position, session_id, threshold, event: gr.SelectData):
        return step(event.index - int(position or 0), order, position, session_id, threshold)

    @user_errors
    def edit_mask(session_id, order, position, threshold):
        session, item = shown_item(session_id, order, position, "nothing to review")
        image = to_uint8(session.image(item.id))
        mask = review.mask_to_edit(session, item.id, threshold)
        layer = np.zeros((*mask.shape, 4), np.uint8)
        layer[mask] = (255, 0, 0, 255)
        return gr.update(value={"background": image, "layers": [layer], "composite": None}, visible=True), gr.update(visible=True)

    @user_errors
    def save_mask(edited, session_id, order, position, threshold, view, low, high):
        if not edited:
            raise rbd.NoImagesError("nothing to save: press Edit first")
        session, item = shown_item(session_id, order, position, "nothing to save: press Edit first")
        mask = np.zeros((item.height, item.width), bool)
        for layer in edited.get("layers") or []:
            painted = np.asarray(layer)[..., 3] > 0
            if painted.shape != mask.shape:
                raise rbd.InvalidInputError(f"the painted mask is {painted.shape[1]}x{painted.shape[0]}, the image {item.width}x{item.height}")
            mask |= painted
        session.decide(item.id, "correct", threshold, mask)
        shown, new_order = gallery(session, threshold, view, low, high)
        return (shown, new_order, *review_view(session, new_order, position, threshold), gr.update(visible=False),
                review_metrics(session, threshold))

    @user_errors
    def export_review(session_id, threshold):
        session = session_for(session_id)
        if session is None:
            raise rbd.NoImagesError("nothing to export yet")
        return str(review.export_zip(session, export_folder() / "review.zip", threshold))

    @user_errors
    def recalibrate(session_id):
        session = session_for(session_id)
        if session is None:
            raise rbd.NoImagesError("review some images first")
        calibration = review.recalibrated(session)
        gr.Info(f"new {calibration.describe()}")
        low, high = calibration.grey_zone()
        return calibration.threshold, round(low, 4), round(high, 4)

    # ---------------------------------------------------------------- fine-tune
    @gpu(duration=training_seconds)
    @user_errors
    def fine_tune(files, folder_files, use_reviewed: bool, session_id, start_from_current: bool, epochs: int, minutes: float,
                  model, progress=gr.Progress()):
        """Train on uploaded normal images in the background; stream progress and losses; cancellable."""
        config = rbd.TrainConfig(epochs=int(epochs or 1), max_minutes=float(minutes) if minutes else None)
        with tempfile.TemporaryDirectory(dir=uploads) as folder:
            uploaded = _paths(files) + _paths(folder_files)
            paths = gather_images(uploaded, folder) if uploaded else []
            session = session_for(session_id)
            if use_reviewed and session is not None:
                paths += review.normal_images(session)
            if not paths:
                raise rbd.NoImagesError(f"fine-tuning needs at least {MIN_TRAINING_IMAGES} normal images: upload some")
            images, _ = read_images(paths, rbd.images.MAX_SIDE)
        if len(images) < MIN_TRAINING_IMAGES:
            raise rbd.NoImagesError(f"fine-tuning needs at least {MIN_TRAINING_IMAGES} readable normal images, got {len(images)}")
        job = BackgroundTraining(images, config=config, start_from=detector_for(model) if start_from_current else None)
        losses = []
        for update in job.updates():  # a cancelled request closes this generator, which stops the job
            losses.append({"step": update.step, "loss": update.loss})
            progress(update.fraction, desc=f"step {update.step} · epoch {update.epoch:.1f} · loss {update.loss:.4f}")
            if update.step % 5 == 1:
                yield pd.DataFrame(losses), gr.skip(), gr.skip(), gr.skip(), gr.skip(), f"training… step {update.step}"
        detector = job.result()
        key = catalog.add_trained(detector)
        archive = shutil.make_archive(str(export_folder() / Path(key).name), "zip", key)
        text = (f"Trained **{Path(key).name}** on {detector.training['train_images']} images in {detector.training['seconds']:.0f} s; "
                f"{detector.calibration.describe()}. It is now the active model.")
        yield (pd.DataFrame(losses), calibration_figure(detector.calibration), archive,
               gr.update(choices=catalog.entries(), value=key), [key, None], text)

    @user_errors
    def push(model, repo_id: str, token: str, evaluated: dict, oauth_token: gr.OAuthToken | None = None):
        """Upload the active model to a Hub model repo; its card lists the metrics of this
        browser session's last evaluation of that model, if any."""
        token = (oauth_token.token if oauth_token else None) or (token or "").strip()
        if not token:
            raise rbd.CheckpointError("a Hugging Face token with write access is needed (sign in, or paste one)")
        if not rbd.checkpoint.is_repo_id((repo_id or "").strip()):
            raise rbd.CheckpointError("enter the target repo as owner/name")
        metrics = evaluated["metrics"] if evaluated and evaluated["model"] == model else None
        return f"Pushed: {rbd.push_to_hub(detector_for(model), repo_id.strip(), token=token, metrics=metrics)}"

    # ---------------------------------------------------------------- evaluate
    @gpu
    @user_errors
    def evaluate(archive, model, threshold: float, progress=gr.Progress()):
        """Metrics, ROC curve and per-image table on an uploaded MVTec-layout zip."""
        if not archive:
            raise rbd.NoImagesError("upload a zip of an MVTec-layout category first")
        with tempfile.TemporaryDirectory(dir=uploads) as folder:
            extract_zip(archive, folder)
            result = rbd.evaluate(detector_for(model), find_mvtec_root(folder),
                                  progress=lambda i, n: progress((i, n), desc="evaluating"), threshold=threshold)
        metrics = result.summary()
        summary = pd.DataFrame([{"metric": k, "value": "–" if v is None else round(v, 4) if isinstance(v, float) else v}
                                for k, v in metrics.items()])
        evaluated = {"model": model, "metrics": metrics}
        return summary, roc_figure(result.roc, result.image_auroc), pd.DataFrame(result.rows).round(4), evaluated

    # ---------------------------------------------------------------- layout
    with gr.Blocks(title="rbd: visual anomaly detection", delete_cache=(3600, 86400)) as app:
        gr.Markdown("# rbd · visual anomaly detection\nLearned from good parts only: score, heat map, defect mask and verdict for every image.")
        model = gr.State([catalog.default_key(), None])
        evaluated = gr.State(None)  # {"model": ..., "metrics": ...} of this session's last evaluation, for the model card
        session_id = gr.BrowserState("", storage_key="rbd-review-session", secret=_state_secret(work))
        with gr.Row():
            model_choice = gr.Dropdown(catalog.entries(), value=catalog.default_key(), label="Model", scale=2)
            hub_id = gr.Textbox(label="…or Hub repo id (owner/name)", placeholder="owner/name", scale=2)
            revision = gr.Textbox(label="revision", placeholder="main", scale=1)
            load_button = gr.Button("Load model", scale=1, elem_id="load-model")
        with gr.Row():
            # anomaly scores are mean cosine distances, so they lie in [0, 2]
            threshold = gr.Slider(0, 2, value=0.5, step=0.0005, label="Threshold (anomaly score)", scale=3, elem_id="threshold")
            model_info = gr.Markdown(elem_id="model-info")

        with gr.Tab("Inspect"):
            with gr.Row():
                with gr.Column(scale=1):
                    # image_mode=None hands over the uploaded file untouched (no lossy re-encode, 16-bit kept)
                    image_in = gr.Image(type="filepath", image_mode=None, sources=["upload", "webcam", "clipboard"],
                                        label="Image", elem_id="inspect-image")
                    files_in = gr.File(file_count="multiple", label="…or several images / a zip", elem_id="inspect-files")
                    inspect_button = gr.Button("Inspect", variant="primary", elem_id="inspect-run")
                    if EXAMPLES:
                        gr.Examples([[str(p)] for p in EXAMPLES], inputs=[image_in], label="Examples (see examples/README.md for sources)")
                with gr.Column(scale=2):
                    summary = gr.Markdown(elem_id="inspect-summary")
                    with gr.Row():
                        picked = gr.Dropdown(choices=[], label="Image shown", type="value", scale=2)
                        opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heat-map opacity", scale=1)
                    heat = gr.Image(label="Heat-map overlay", format="png", elem_id="inspect-overlay")
                    with gr.Row():
                        slider = gr.ImageSlider(label="Original / overlay", format="png")
                        annotated = gr.AnnotatedImage(label="Predicted mask and regions", format="png", color_map={"defect": "#ff2020"})
                    regions = gr.Dataframe(label="Defect regions", interactive=False)
                    results = gr.Dataframe(label="All images", interactive=False)
            inspected = gr.State([])

        with gr.Tab("Review"):
            with gr.Row():
                review_files = gr.File(file_count="multiple", label="Images or zips to review", scale=2, elem_id="review-files")
                review_folder = gr.File(file_count="directory", label="…or a whole folder", scale=1, elem_id="review-folder")
                with gr.Column(scale=1):
                    score_button = gr.Button("Score batch", variant="primary", elem_id="review-score")
                    review_status = gr.Markdown()
            with gr.Row():
                view = gr.Radio(["all", "unreviewed", "defective", "grey"], value="all", label="Show", scale=2)
                low = gr.Number(value=0.0, label="grey zone from", scale=1)
                high = gr.Number(value=1.0, label="to", scale=1)
            order = gr.State([])
            position = gr.State(0)
            with gr.Row():
                review_gallery = gr.Gallery(label="Sorted by score", columns=6, height=260, allow_preview=False, scale=2)
                with gr.Column(scale=2):
                    review_text = gr.Markdown(elem_id="review-text")
                    review_image = gr.Image(label="Current image", format="png", interactive=False)
                    with gr.Row():
                        prev_button = gr.Button("← Previous", elem_id="review-prev", size="sm")
                        accept_button = gr.Button("Accept (a)", variant="primary", elem_id="review-accept", size="sm")
                        reject_button = gr.Button("Reject (r)", variant="stop", elem_id="review-reject", size="sm")
                        edit_button = gr.Button("Edit mask (e)", elem_id="review-edit", size="sm")
                        next_button = gr.Button("Next →", elem_id="review-next", size="sm")
                    editor = gr.ImageEditor(type="numpy", format="png", image_mode="RGBA", visible=False, label="Paint the defect",
                                            brush=gr.Brush(colors=["#ff0000"], color_mode="fixed", default_size=12),
                                            layers=gr.LayerOptions(allow_additional_layers=False, layers=["mask"]), transforms=(), sources=())
                    save_button = gr.Button("Save corrected mask", visible=False, elem_id="review-save")
            metrics_text = gr.Markdown(elem_id="review-metrics")
            with gr.Row():
                export_button = gr.Button("Export decisions (zip)", elem_id="review-export")
                export_file = gr.File(label="Export", interactive=False, elem_id="review-export-file")
                recalibrate_button = gr.Button("Recalibrate threshold from reviewed images")

        with gr.Tab("Fine-tune"):
            with gr.Row():
                with gr.Column():
                    train_files = gr.File(file_count="multiple", label=f"Normal images ({MIN_TRAINING_IMAGES} or more) or zips")
                    train_folder = gr.File(file_count="directory", label="…or a whole folder of normal images")
                    use_reviewed = gr.Checkbox(label="Add images I accepted as good in the Review tab", value=False)
                    start_current = gr.Checkbox(label="Start from the active model (faster)", value=True)
                    with gr.Row():
                        epochs = gr.Number(value=30, precision=0, label="Epochs", minimum=1)
                        minutes = gr.Number(value=5, label="Time budget (minutes, 0 = none)", minimum=0)
                    with gr.Row():
                        train_button = gr.Button("Train", variant="primary", elem_id="train-run")
                        cancel_button = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
                    train_status = gr.Markdown()
                with gr.Column():
                    loss_plot = gr.LinePlot(x="step", y="loss", label="Training loss", height=220)
                    calibration_plot = gr.Plot(label="Calibration")
                    model_file = gr.File(label="Download the model", interactive=False)
            with gr.Row():
                repo_id = gr.Textbox(label="Push to Hub repo (owner/name)")
                if ON_SPACES:
                    gr.LoginButton()
                token = gr.Textbox(label="…or a Hugging Face token with write access", type="password")
                push_button = gr.Button("Push to Hub")
            push_status = gr.Markdown()

        with gr.Tab("Evaluate"):
            with gr.Row():
                eval_zip = gr.File(label="MVTec-layout category (zip)", file_types=[".zip"])
                eval_button = gr.Button("Evaluate", variant="primary")
            with gr.Row():
                eval_summary = gr.Dataframe(label="Metrics", interactive=False)
                roc = gr.Plot(label="ROC curve")
            eval_rows = gr.Dataframe(label="Per image (verdicts at the threshold above)", interactive=False)

        # ------------------------------------------------------------ events
        review_view_outputs = [review_text, review_image, editor]
        refresh_inputs = [session_id, threshold, view, low, high, position]
        refresh_outputs = [review_gallery, order, *review_view_outputs, metrics_text]
        model_inputs = [model_choice, hub_id, revision]
        model_outputs = [model, threshold, model_info, low, high]
        detail = [summary, heat, slider, annotated, regions]
        inspect_inputs, inspect_outputs = [image_in, files_in, model, threshold, opacity], [inspected, picked, results, *detail]
        redraw_inputs = [inspected, picked, model, threshold, opacity]

        def after_model_change(event):
            """A new model (and threshold): the review re-judged, the uploads in Inspect scored again."""
            event.success(refresh_review, refresh_inputs, refresh_outputs, api_visibility="private").success(
                reinspect, inspect_inputs, inspect_outputs, api_visibility="private", concurrency_id="inference")

        app.load(load_model, model_inputs, model_outputs, api_name="load_model").success(
            refresh_review, refresh_inputs, refresh_outputs, api_visibility="private")
        app.load(lambda: gr.update(choices=catalog.entries()), None, model_choice, queue=False, api_visibility="private")
        after_model_change(load_button.click(load_model, model_inputs, model_outputs, api_visibility="undocumented"))
        after_model_change(model_choice.input(lambda choice: (choice, ""), model_choice, [model_choice, hub_id], queue=False,
                                              api_visibility="private").then(load_model, model_inputs, model_outputs, api_visibility="private"))

        inspect_button.click(inspect_images, inspect_inputs, inspect_outputs, api_name="inspect", concurrency_limit=8,
                             concurrency_id="inference")
        threshold.release(redraw, redraw_inputs, [results, *detail], api_name="rethreshold", concurrency_limit=None)
        for trigger in (opacity.release, picked.input):
            trigger(redraw, redraw_inputs, [results, *detail], api_visibility="private", concurrency_limit=None)

        score_button.click(start_review, [review_files, review_folder, session_id, model], [session_id, review_status],
                           api_name="review_score", concurrency_id="inference").then(
            refresh_review, refresh_inputs, refresh_outputs, api_name="review_list")
        for trigger in (view.change, low.submit, high.submit, threshold.release):
            trigger(refresh_review, refresh_inputs, refresh_outputs, api_visibility="private")
        # decisions on one review run one at a time, in the order the keys were pressed
        decide_inputs = [session_id, order, position, threshold, view, low, high]
        decide_outputs = [review_gallery, order, position, *review_view_outputs, metrics_text]
        accept_button.click(functools.partial(decide, "accept"), decide_inputs, decide_outputs, api_name="review_accept",
                            concurrency_limit=1, concurrency_id="review")
        reject_button.click(functools.partial(decide, "reject"), decide_inputs, decide_outputs, api_name="review_reject",
                            concurrency_limit=1, concurrency_id="review")
        step_inputs = [order, position, session_id, threshold]
        prev_button.click(functools.partial(step, -1), step_inputs, [position, *review_view_outputs], api_name="review_previous")
        next_button.click(functools.partial(step, 1), step_inputs, [position, *review_view_outputs], api_name="review_next")
        review_gallery.select(select, step_inputs, [position, *review_view_outputs], api_visibility="private")
        edit_button.click(edit_mask, [session_id, order, position, threshold], [editor, save_button], api_name="review_edit")
        save_button.click(save_mask, [editor, *decide_inputs], [review_gallery, order, *review_view_outputs, save_button, metrics_text],
                          api_name="review_save_mask", concurrency_limit=1, concurrency_id="review")
        export_button.click(export_review, [session_id, threshold], export_file, api_name="review_export")
        recalibrate_button.click(recalibrate, [session_id], [threshold, low, high], api_name="review_recalibrate").success(
            refresh_review, refresh_inputs, refresh_outputs, api_visibility="private").success(
            redraw, redraw_inputs, [results, *detail], api_visibility="private")

        train_event = train_button.click(
            fine_tune, [train_files, train_folder, use_reviewed, session_id, start_current, epochs, minutes, model],
            [loss_plot, calibration_plot, model_file, model_choice, model, train_status],
            api_name="fine_tune", concurrency_limit=1, concurrency_id="train")
        after_model_change(train_event.success(load_model, [model_choice, gr.State(""), gr.State("")], model_outputs,
                                               api_visibility="private"))
        cancel_button.click(None, None, None, cancels=[train_event], api_visibility="private")
        push_button.click(push, [model, repo_id, token, evaluated], push_status, api_name="push_to_hub")

        eval_button.click(evaluate, [eval_zip, model, threshold], [eval_summary, roc, eval_rows, evaluated], api_name="evaluate",
                          concurrency_id="inference")
    app.queue(default_concurrency_limit=4)
    return app


def launch(app: gr.Blocks, **kwargs):
    """Start the server with the review keyboard shortcuts (host and port from GRADIO_SERVER_NAME/PORT)."""
    return app.launch(js=SHORTCUTS, footer_links=["api", "gradio"], max_file_size="2gb", **kwargs)


if __name__ == "__main__":
    launch(build_app())
