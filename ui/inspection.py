"""Inspect: score a few images and look at one in detail (verdict, heat map, mask, regions).

A browser holds at most `MAX_IMAGES` scored images (uint8 pictures at the size they are shown,
float16 maps at the image's, `kept_map`), freed an hour after it was last used; the same file dropped twice is
scored once, and so is a copy of it under another name, with a message naming both.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import gradio as gr
from gradio.utils import NamedString
import numpy as np
import pandas as pd
from PIL import Image

import rbd
from rbd.anomaly_map import judged_map, kept_map
from rbd.detector import OUT_OF_DOMAIN_MEANS, Prediction
from rbd.files import atomic_write, file_digest
from rbd.images import UNSHOWN_EXTENSIONS, file_shape, report_files, to_uint8
from rbd.notices import collect, notify, some
from rbd.outputs import fitting_name, mask_png, output_names, picture_names
from rbd.uploads import gather_images, is_renumbered
from rbd.visualize import colour_scale, fold, overlay, shown_size, subsample, subsample_step

from . import model_bar
from .wiring import REJUDGE_MODE, NamedFiles, as_markdown, endpoint, gpu, on, paths, told_again, uploaded_names

MAX_IMAGES = 20  # per browser; the Review tab takes any number
KEPT_S = 3600  # a browser's images are freed this long after they were last scored (Gradio restarts a state's clock
# only when it is written: a threshold moved, a row clicked do not)
INFERENCE_LIMIT = 8  # scoring requests served at once (Inspect, review scoring, evaluation share it)
EMPTY = ("Drop an image (or several, or a zip) on the left and press **Inspect**: you get its verdict, its "
         "score, a heat map and the defect mask. Or click one of the examples: it is inspected at once, by the shipped "
         "model it names unless a model of your own is active.")
FREED = (f"The images shown were freed {KEPT_S // 3600} hour after the last Inspect, and are no longer judged at the threshold "
         "set: press **Inspect** again.")
UPLOADS_GONE = ("The active model changed, and the upload boxes no longer hold the images it would score again: upload them "
                "again and press **Inspect**.")
EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.jpg"))
REGION_COLUMNS = ["region", "area px", "max score", "box (x0, y0, x1, y1)"]
RESULT_COLUMNS = ["image", "verdict", "score", "normalised", "out of domain"]  # the verdict beside the name: on a phone the last columns scroll


class ImageFile(gr.Image):
    """An image box that hands the uploaded file over untouched, even one that is not an image:
    Gradio's own decoding would fail with a bare "Error"; rbd names the file and says what is wrong.
    (Untouched also means no lossy re-encode, and 16-bit files keep their depth.)"""

    is_template = True  # drawn by the browser as a gr.Image

    def preprocess(self, payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            path = NamedString(payload.path)
            path.orig_name = payload.orig_name  # its name on the user's disk (`NamedFiles`)
            return path
        return super().preprocess(payload)


@dataclass
class Inspect:
    image: ImageFile
    files: gr.File
    run: gr.Button
    held: gr.State
    picked: gr.Dropdown
    opacity: gr.Slider
    summary: gr.Markdown
    heat: gr.Image
    pair: gr.ImageSlider
    annotated: gr.AnnotatedImage
    regions: gr.Dataframe
    mask_file: gr.File
    results: gr.Dataframe
    examples: gr.Examples | None


@gpu
def inspect_images(ctx, image, files, model: dict, rate: float, opacity: float, held: list | None, *,
                   viewing: str | None = None, only: set[str] | None = None) -> dict:
    """Score the uploaded images (a file dropped twice counts once, and one scored before by this model
    is not scored again); show all of them in a table, most anomalous first, and that one in detail (or the image of
    digest `viewing`, where it is among them). `only`: the digests of the uploads to score, the others left as they
    are (none of them there: nothing shown, UPLOADS_GONE)."""
    detector = ctx.detector(model)
    uploads = paths(image) + paths(files)
    if not uploads:
        raise rbd.NoImagesError("upload an image (or several) first")
    known = {(item["digest"], item["model"]): item for item in held or []}
    model_id = model_bar.identity(ctx, model)
    with ctx.upload_folder() as folder, collect() as notes:
        order, first = [], {}  # each upload's path and digest; the first path of each digest
        for path in gather_images(uploads, folder, uploaded_names(image) + uploaded_names(files)):
            digest = file_digest(path)
            if only is not None and digest not in only:  # not to be scored: nothing to say of it either
                continue
            if digest not in first:
                first[digest] = path
                order.append((path, digest))
            else:  # the same bytes again: silent for a second drop of one file, said for a copy under another name
                name, kept = (p.relative_to(folder).as_posix() for p in (path, first[digest]))
                if not is_renumbered(name, kept):
                    notify(f"{kept} and {name} hold the same bytes: taken once")
        if only is not None and not order:
            return {**cleared(), "summary": UPLOADS_GONE}
        # up to MAX_IMAGES that score, by name: a file that turns out unreadable leaves its place to the next one
        kept, scored, waiting, unreadable = [], {}, list(order), []
        while waiting and len(kept) < MAX_IMAGES:
            batch, waiting = waiting[: MAX_IMAGES - len(kept)], waiting[MAX_IMAGES - len(kept) :]
            fresh = [path for path, digest in batch if (digest, model_id) not in known]
            try:
                scored.update({path: (image, p, file_shape(path)) for path, image, p in rbd.predict_files(detector, fresh)}
                              if fresh else {})
            except rbd.NoImagesError as err:  # none of this batch read (a batch with some that read says its own)
                unreadable += err.unreadable
            kept += [(path, digest) for path, digest in batch if (digest, model_id) in known or path in scored]
        if unreadable:  # said once for every batch that read none: an error where no image at all is kept
            report_files(len(kept) + len(unreadable), len(kept), unreadable, [])
        if waiting:
            left_out = [path.relative_to(folder).as_posix() for path, _ in waiting]
            notify(f"Inspect holds {MAX_IMAGES} images at a time: kept the first {len(kept)} of {len(order)} by name; "
                   f"left out: {some(left_out, 10)}. "
                   "The Review tab scores any number.")
        order = kept
    notes = told_again(ctx, notes)  # skipped or downscaled files: a toast now, and a line under every summary
    items = []
    for path, digest in order:
        if (digest, model_id) in known:
            items.append({**known[(digest, model_id)], "name": path.relative_to(folder).as_posix(),  # as uploaded now
                          "notice": "; ".join(notes)})  # this upload's notes, not an earlier one's
        elif path in scored:
            picture, p, size = scored[path]
            shown = subsample(picture, max(shown_size(*picture.shape[:2])))  # all that is ever drawn of it
            items.append({"name": path.relative_to(folder).as_posix(), "digest": digest, "model": model_id, "image": to_uint8(shown),
                          "score": p.score, "map": kept_map(p.anomaly_map), "peak": p.peak,
                          "familiarity": p.familiarity,
                          "size": size, "notice": "; ".join(notes)})  # the map's size, or more past MAX_SIDE
    # download names told apart as `rbd predict` tells its files apart (a.jpg and a.png: a_mask.png and a_1_mask.png)
    items = [{**item, "output": name} for item, name in zip(items, output_names([_output_base(item["name"]) for item in items]))]
    items.sort(key=lambda item: item["score"], reverse=True)  # a batch's likely defects first; ties in upload order
    judged_at = model_bar.threshold(ctx, model, rate)  # `judged_again` compares it with the bar's once this returns
    items = [{**item, "judged_at": judged_at} for item in items]
    choices = [(item["name"], i) for i, item in enumerate(items)]
    shown = next((i for i, item in enumerate(items) if item["digest"] == viewing), 0)
    return {"held": items, "picked": gr.update(choices=choices, value=shown), **redraw(ctx, items, shown, model, rate, opacity)}


def _scored_by_another(ctx, held: list, model: dict) -> bool:
    """Whether a held image was scored by another model than `model` (`model_bar.identity`, taken once)."""
    model_id = model_bar.identity(ctx, model)
    return any(item["model"] != model_id for item in held)


def judged_again(ctx, image, files, held: list | None, picked, model: dict, rate: float, opacity: float) -> dict:
    """After an Inspect: the held images scored by the active model and judged at the slider's rate, where
    either changed while they were scored. That change's own re-judge ran on the images held before, and the
    Inspect's answer, scored and judged as at its click, came after it."""
    if held and _scored_by_another(ctx, held, model):
        return rescore(ctx, image, files, held, picked, model, rate, opacity)
    if not held or held[0].get("judged_at") == model_bar.threshold(ctx, model, rate):  # (a recalibration keeps the rate)
        return {}
    return redraw(ctx, held, picked, model, rate, opacity)


def cleared() -> dict:
    """Nothing held, nothing shown."""
    return {"held": [], "picked": gr.update(choices=[], value=None), "results": pd.DataFrame(columns=RESULT_COLUMNS),
            "summary": EMPTY, "heat": None, "pair": None, "annotated": None, "regions": pd.DataFrame(columns=REGION_COLUMNS),
            "mask_file": None}


def redraw(ctx, held: list | None, picked, model: dict, rate: float, opacity: float) -> dict:
    """Threshold or selection changed: re-judge the held scores, no network run."""
    if not held:
        return {}
    calibration = model_bar.calibration(ctx, model)
    threshold = model_bar.threshold(ctx, model, rate)
    predictions = [_judged(calibration, item, threshold) for item in held]
    table = pd.DataFrame([{"image": item["name"], "verdict": p.verdict, "score": p.score, "normalised": p.normalized_score,
                           "out of domain": "⚠" if p.out_of_domain else ""}
                          for item, p in zip(held, predictions)], columns=RESULT_COLUMNS)
    # shown with the digits of the heading (a plain frame drops trailing zeros: 1.000 read "1"); sorted as numbers
    table = table.style.format({"score": "{:.4f}", "normalised": "{:.3f}"})
    index = _shown(held, picked)
    return {"results": table, **_detail(ctx, held[index], predictions[index], calibration, opacity),
            "mask_file": mask_file(ctx, held[index], predictions[index])}


def mask_file(ctx, item: dict, p: Prediction) -> str:
    """The shown image's mask as `rbd predict` draws it (a PNG at the file's size, white on defect pixels), to download:
    the mask drawn here is at the size shown, under the regions' boxes. Named after the file and the folders it has
    in the upload (`good/000.png`: `good_000_mask.png`, apart from `bad/000.png`'s); written once for an image,
    model and threshold (a threshold moved back, an image picked again: the same file)."""
    _, mask_name = picture_names(item["output"])
    size = item.get("size") or p.anomaly_map.shape
    path = ctx.export_folder(repr((item["digest"], item["model"], p.threshold, tuple(size), mask_name))) / mask_name
    if not path.exists():
        with atomic_write(path) as f:
            f.write(mask_png(p, size))
    return str(path)


def overlay_file(ctx, item: dict, picture: np.ndarray) -> str:
    """The heat-map overlay as shown, a JPEG named as its mask is (`good/000.png`: `good_000_overlay.jpg`): handed over as
    an array, Gradio saved it as "image.jpeg", the name of every download of it. One file per picture drawn."""
    with io.BytesIO() as encoded:
        Image.fromarray(picture).save(encoded, "JPEG")  # as Gradio encodes the picture it shows
        data = encoded.getvalue()
    name = Path(picture_names(item["output"])[0]).with_suffix(".jpg").name
    path = ctx.export_folder(hashlib.sha1(data).hexdigest()) / name
    if not path.exists():
        with atomic_write(path) as f:
            f.write(data)
    return str(path)


def _output_base(name: str) -> str:
    """What a held image's downloads are named after (its "output", numbered where another held image has the same,
    `inspect_images`): its name in the upload, folders joined by "_" (`good/000.png`: `good_000`), cut to leave room
    for a suffix."""
    return fitting_name(PurePosixPath(name).with_suffix("").as_posix().replace("/", "_"))


def _shown(held: list, picked) -> int:
    """The index of the held image shown in detail: the one picked, or the last if the pick is past the end."""
    return min(int(picked or 0), len(held) - 1)


def _judged(calibration, item: dict, threshold: float) -> Prediction:
    """The held image judged at `threshold`, its mask as `rbd predict`'s (`judged_map`)."""
    amap = judged_map(item["map"], item["peak"], threshold)
    return Prediction(item["score"], calibration.normalize(item["score"], threshold), threshold, amap, item.get("familiarity"))


def restyle(ctx, held: list | None, picked, model: dict, rate: float, opacity: float) -> dict:
    """Opacity changed: only the two pictures with the heat map are drawn again, from the held map
    subsampled to the picture's size (no regions, mask or table: they do not change)."""
    if not held:
        return {}
    item = held[_shown(held, picked)]
    return _pictures(ctx, item, item["map"], model_bar.calibration(ctx, model), model_bar.threshold(ctx, model, rate), opacity)


def _pictures(ctx, item: dict, anomaly_map: np.ndarray, calibration, threshold: float, opacity: float) -> dict:
    """The heat-map overlay (as a file, to download by name) and the original/overlay pair, at the size the picture is held."""
    shown = subsample(anomaly_map, max(shown_size(*anomaly_map.shape))).astype(np.float32)
    heat = fold(overlay(item["image"], shown, calibration, threshold, opacity))
    return {"heat": overlay_file(ctx, item, heat), "pair": (fold(item["image"]), heat)}


def _detail(ctx, item: dict, p: Prediction, calibration, opacity: float) -> dict:
    """One image in detail. Long strips are folded into a block, so no view squashes them to a sliver."""
    side = max(shown_size(*p.anomaly_map.shape))  # a large photo is drawn smaller; regions stay in its pixels
    step = subsample_step(*p.anomaly_map.shape, side)
    regions = p.regions()
    mask = subsample(p.mask, side)
    folded = fold(mask, fill=False)
    k = _enlargement(*folded.shape)
    picture, shown_mask = _enlarged(fold(item["image"]), k), _enlarged(folded, k)
    boxes = [(_outset(_shrunk(r.box, step), k, shown_mask.shape), f"region {i + 1}") for i, r in enumerate(regions[:20])] \
        if folded is mask else []
    in_file = p.regions(item.get("size"))  # the table in the file's pixels, also for a photo scored downscaled
    # max score to 3 digits: the held map is float16 (17.375 is 17.4 to its precision)
    table = pd.DataFrame([{"region": i + 1, "area px": r.area, "max score": float(f"{r.max_score:.3g}"), "box (x0, y0, x1, y1)": str(r.box)}
                          for i, r in enumerate(in_file)], columns=REGION_COLUMNS)
    lines = [f"### {p.verdict.upper()}",
             f"**{as_markdown(item['name'])}** · anomaly score **{p.score:.4f}** · normalised **{p.normalized_score:.3f}** "
             f"(0.5 = raw threshold {p.threshold:.4f}) · {len(regions)} region(s)"]
    if p.out_of_domain:
        lines.insert(1, out_of_domain_note(p.familiarity))
    if p.verdict == "good" and p.anomaly_map.max() >= p.threshold:
        lines.append("_Some pixels reach the threshold (the warm spots), but the image's score, taken over its hottest pixels, "
                     "stays below it: judged good, so no mask._")
    if item["notice"]:
        lines.append(f"_This upload: {as_markdown(item['notice'])}_")  # its notes name their files, which may be other images
    defect = [(shown_mask.astype(np.float32), "defect")] if shown_mask.any() else []  # no "defect" legend on a good image
    return {"summary": "\n\n".join(lines), **_pictures(ctx, item, p.anomaly_map, calibration, p.threshold, opacity),
            "annotated": (picture, [*boxes, *defect]), "regions": table}  # the mask drawn over the boxes' tint


# Gradio fills a region's box with its colour at half strength and draws a border of BOX_BORDER pixels inside it: on an
# 8 x 8 image, or around a region of two pixels, the box hid the mask. Small pictures are enlarged (whole pixels) to at
# least ENLARGED_SIDE, and boxes are drawn BOX_BORDER pixels outside their regions.
ENLARGED_SIDE, BOX_BORDER = 256, 3


def _enlargement(height: int, width: int) -> int:
    return max(1, -(-ENLARGED_SIDE // max(height, width)))


def _enlarged(picture: np.ndarray, k: int) -> np.ndarray:
    return picture.repeat(k, axis=0).repeat(k, axis=1) if k > 1 else picture


def _outset(box: tuple[int, int, int, int], k: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A region's box on a picture enlarged `k` times, BOX_BORDER pixels wider on every side (within the picture)."""
    x0, y0, x1, y1 = (k * v for v in box)
    return (max(0, x0 - BOX_BORDER), max(0, y0 - BOX_BORDER), min(shape[1], x1 + BOX_BORDER), min(shape[0], y1 + BOX_BORDER))


def _shrunk(box: tuple[int, int, int, int], step: int) -> tuple[int, int, int, int]:
    """A region's box (x0, y0, x1, y1; x1, y1 exclusive) on a picture that keeps every `step`-th pixel."""
    x0, y0, x1, y1 = box
    return x0 // step, y0 // step, -(-x1 // step), -(-y1 // step)


def example_label(path: Path) -> str:
    """An example's label, naming the shipped model it is for (`ksdd_crack.jpg`: "ksdd crack (ksdd model)"): under
    another model it is out of domain, one red region."""
    product = path.stem.split("_")[0]
    return f"{path.stem.replace('_', ' ')} ({product} model)"


def inspect_clicked(ctx, image, files, model: dict, rate: float, opacity: float, held: list | None,
                    request: gr.Request = None) -> dict:
    """Inspect's click (`inspect_images`). Its answer gives way to an example clicked while it ran: the example,
    inspected on its own and shown first, was replaced by the box's files judged by the example's model."""
    cursor = ctx.cursor(request)
    examples = cursor.examples
    shown = inspect_images(ctx, image, files, model, rate, opacity, held)
    return shown if cursor.examples == examples else {}


def example_model(ctx, image, model: dict, browser: str, request: gr.Request = None) -> dict:
    """An example clicked while another shipped model is active: the shipped model its label names becomes active,
    as if picked in the bar (under another product's model an example is out of domain, one red region). A model of
    the user's own (a fine-tune, a Hub repo, a shipped one a review recalibrated) stays active: they may be trying it
    on the example. The images held are let go, since the example's Inspect replaces them and the other model's
    scores are no use to it."""
    ctx.cursor(request).examples += 1
    shipped = ctx.catalog.shipped
    key = str(shipped / Path(image or "").stem.split("_")[0])
    if (not image or not model or Path(model["key"]).parent != shipped or model.get("calibration") or model["key"] == key
            or key not in dict(ctx.catalog.entries()).values()):
        return {}
    loaded = model_bar.load_model(ctx, key, "", "", browser)
    return {**loaded, **model_bar.active_choice(ctx, loaded["model"]), "held": [],
            "picked": gr.update(choices=[], value=None)}  # nothing picked: a re-judge meanwhile would say they were freed


def inspect_example(ctx, image, model: dict, rate: float, opacity: float, held: list | None) -> dict:
    """The example clicked, inspected on its own (not with the files in the box beside it); judged by another model
    than the one its label names (a model of the user's own stays active), the summary says so first."""
    shown = inspect_images(ctx, image, None, model, rate, opacity, held)
    product = Path(image).stem.split("_")[0]
    if model["key"] == str(ctx.catalog.shipped / product):  # that model (a review's threshold for it too)
        return shown
    note = f"this example is of a {product} part, for the shipped {product} model; the active model, {model['name']}, judged it"
    held = [{**item, "notice": "; ".join(filter(None, [note, item["notice"]]))} for item in shown["held"]]  # kept by redraws
    return {**shown, "held": held, **redraw(ctx, held, 0, model, rate, opacity)}


def shown_row(ctx, held: list | None, model: dict, rate: float, opacity: float, event: gr.SelectData) -> dict:
    """A row of the results table clicked: that image in detail (the table lists the held images in order)."""
    if not held or not event.index:
        return {}
    row = event.index[0]
    return {"picked": gr.update(value=row), **redraw(ctx, held, row, model, rate, opacity)}


def out_of_domain_note(familiarity: float) -> str:
    share = f"only {100 * familiarity:.0f}%" if round(100 * familiarity) else "none"
    return f"⚠️ **Out of domain**: {share} of this image looks like the images the model was trained on: {OUT_OF_DOMAIN_MEANS}."


def legend() -> str:
    """The heat map's colour scale as HTML: the middle colour is the threshold."""
    stops = ", ".join(f"{colour} {100 * position:.0f}%" for position, colour in colour_scale())
    return (f'<div id="heat-legend" style="font-size:0.85em"><div style="height:12px;border-radius:3px;'
            f'background:linear-gradient(to right, {stops})"></div><div style="display:flex;justify-content:space-between">'
            "<span>normal</span><span>at the threshold</span><span>far above it</span></div></div>")


def layout(ctx) -> Inspect:
    with gr.Row():
        with gr.Column(scale=1):
            # a fixed height: a 20x3000 strip made the box 2700 px tall, pushing Inspect out of sight; a 1x1 image collapsed it
            image = ImageFile(type="filepath", image_mode=None, sources=["upload", "webcam", "clipboard"],
                              label="Image", elem_id="inspect-image", height=320)
            files = NamedFiles(file_count="multiple", label="…or several images / a zip", elem_id="inspect-files")
            run = gr.Button("Inspect", variant="primary", elem_id="inspect-run")
            examples = None
            if EXAMPLES:
                examples = gr.Examples([[str(p)] for p in EXAMPLES], inputs=[image], example_labels=[example_label(p) for p in EXAMPLES],
                            label="Examples (see examples/README.md for sources)")
        # at least 480 px: narrower, the tables broke scores and verdicts mid-word ("28.01 / 12", "defect / ive"); the
        # results then go under the upload boxes
        with gr.Column(scale=2, min_width=480):
            summary = gr.Markdown(EMPTY, elem_id="inspect-summary")
            with gr.Row():
                picked = gr.Dropdown(choices=[], label="Image shown", type="value", scale=2)
                opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heat-map opacity", scale=1)
            heat = gr.Image(label="Heat-map overlay", format="jpeg", elem_id="inspect-overlay", height=420)
            gr.HTML(legend())
            with gr.Row():
                # no download button (the heat-map overlay above has one): with it the buttons covered the label at 850 px
                pair = gr.ImageSlider(label="Original / overlay", format="jpeg", height=320, buttons=["fullscreen"], elem_id="inspect-pair")
                annotated = gr.AnnotatedImage(label="Predicted mask and regions", format="jpeg", color_map={"defect": "#ff2020"},
                                              height=320, elem_id="inspect-annotated")
            # wrapped in shares of the width: at 850 px the boxes scrolled out of sight
            regions = gr.Dataframe(pd.DataFrame(columns=REGION_COLUMNS), label="Defect regions", interactive=False, wrap=True,
                                   column_widths=["17%", "19%", "22%", "42%"], elem_id="inspect-regions")
            mask_file = gr.File(label="Defect mask of the image shown (PNG at the file's size, white = defect)", interactive=False,
                                elem_id="inspect-mask-file")
            # a long file name wraps in its share of the width (it took all of it), the verdict stays in sight
            results = gr.Dataframe(pd.DataFrame(columns=RESULT_COLUMNS), label="All images (click a row to see it)", interactive=False,
                                   wrap=True, column_widths=["26%", "18%", "16%", "22%", "18%"], elem_id="inspect-results")
    held = gr.State([], time_to_live=KEPT_S)
    return Inspect(image, files, run, held, picked, opacity, summary, heat, pair, annotated, regions, mask_file, results, examples)


# A row clicked with the heat map wholly out of sight (on a phone it lies some 1,500 px above the table) brings the
# image's summary into view: the row's image was drawn where nobody saw it.
DETAIL_IN_SIGHT = """() => {
  const heat = document.getElementById("inspect-overlay")?.getBoundingClientRect();
  if (heat && (heat.bottom < 0 || heat.top > window.innerHeight)) document.getElementById("inspect-summary")?.scrollIntoView();
}"""


def wire(ctx, area: Inspect, bar: model_bar.ModelBar, rejudge) -> None:
    """The tab's events; `rejudge(trigger)` re-judges every tab after an example made its own model active."""
    detail = {"results": area.results, "summary": area.summary, "heat": area.heat, "pair": area.pair,
              "annotated": area.annotated, "regions": area.regions, "mask_file": area.mask_file}
    # a click while a run is under way runs after it, on what the boxes hold then (Gradio's default drops it unseen)
    inspected = on(area.run.click, inspect_clicked, ctx, [area.image, area.files, bar.model, bar.rate, area.opacity, area.held],
                   {"held": area.held, "picked": area.picked, **detail}, api_name="inspect", trigger_mode="always_last",
                   concurrency_limit=INFERENCE_LIMIT, concurrency_id="inference", show_progress_on=[area.summary])
    if area.examples is not None:  # a click fills the image box (Gradio's own event), then picks the model and inspects
        # a second click while the first one's model loads runs after it, on the example it put in the box (Gradio's
        # default dropped it: the first one's model, loaded last, judged the second example); meanwhile the first one's
        # inspection may show the second example under the first one's model, for as long as its model takes to load
        switched = on(area.examples.load_input_event.then, example_model, ctx, [area.image, bar.model, bar.browser],
                      {"model": bar.model, "rate": bar.rate, "info": bar.info, "choice": bar.choice, "hub_id": bar.hub_id,
                       "revision": bar.revision, "held": area.held, "picked": area.picked}, api_visibility="private",
                      trigger_mode="always_last",
                      show_progress_on=[area.summary])
        shown = on(switched.success, inspect_example, ctx, [area.image, bar.model, bar.rate, area.opacity, area.held],
                   {"held": area.held, "picked": area.picked, **detail}, api_visibility="private", trigger_mode="always_last",
                   concurrency_limit=INFERENCE_LIMIT, concurrency_id="inference", show_progress_on=[area.summary])
        rejudge(shown.then)  # after the example is shown: Inspect's own re-judge then sees the example, not what it replaced
    inputs = [area.held, area.picked, bar.model, bar.rate, area.opacity]
    on(inspected.success, judged_again, ctx, [area.image, area.files, *inputs], {"held": area.held, "picked": area.picked, **detail},
       api_visibility="private", concurrency_limit=INFERENCE_LIMIT, concurrency_id="inference", show_progress="hidden")
    # typing, arrow keys and dragging all fire `input` (`release` missed the first two): the last value wins
    on(area.opacity.input, restyle, ctx, inputs, {"heat": area.heat, "pair": area.pair}, api_visibility="private", concurrency_limit=None,
       trigger_mode="always_last", show_progress="hidden")
    on(area.picked.input, redraw, ctx, inputs, detail, api_visibility="private", concurrency_limit=None)
    on(area.results.select, shown_row, ctx, [area.held, bar.model, bar.rate, area.opacity], {"picked": area.picked, **detail},
       api_visibility="private", concurrency_limit=None).then(None, js=DETAIL_IN_SIGHT, queue=False, api_visibility="private")
    # queued, as a toast is sent through the queue; no outputs: finished after a Run that failed (the Run waits for the
    # upload, then both go), it set the summary's status to complete and so took away the Run's error badge
    on(area.image.upload, unseen_preview, ctx, [area.image], {}, api_visibility="private", concurrency_limit=None,
       show_progress="hidden")


def unseen_preview(ctx, image) -> dict:
    """A TIFF or a Netpbm file put in the image box: browsers draw none (the box showed a broken-picture sign), so it is
    said to be scored as it is, and drawn with its results."""
    name = Path(paths(image)[0]).name if paths(image) else ""
    if name.lower().endswith(UNSHOWN_EXTENSIONS):
        kind = "TIFF" if name.lower().endswith((".tif", ".tiff")) else Path(name).suffix.lstrip(".").upper()
        notify(f"{name}: browsers do not show {kind} pictures, so the box shows none; Inspect scores the file as it is and "
               "draws it with its results")
    return {}


def rejudge(ctx, area: Inspect, bar: model_bar.ModelBar, trigger, api: bool = False) -> None:
    """After the threshold or the model changed: the held images judged again (scored again by a new model)."""
    on(trigger, rescore, ctx, [area.image, area.files, area.held, area.picked, bar.model, bar.rate, area.opacity],
       {"held": area.held, "picked": area.picked, "results": area.results, "summary": area.summary, "heat": area.heat,
        "pair": area.pair, "annotated": area.annotated, "regions": area.regions, "mask_file": area.mask_file},
       concurrency_limit=INFERENCE_LIMIT, concurrency_id="inference", show_progress_on=[area.summary], trigger_mode=REJUDGE_MODE,
       **endpoint(api, "rethreshold"))


def rescore(ctx, image, files, held: list | None, picked, model: dict, rate: float, opacity: float) -> dict:
    """Judge the held images at the current threshold; a model that did not score them scores them first (them only,
    from the upload boxes), and the image looked at stays in view (it gave way to the new model's most anomalous one).
    Images freed since they were shown are said to be, and the page cleared: it went on showing their old verdicts."""
    if not held:  # none; or, an image picked, freed (`KEPT_S`) while the page shows verdicts at an earlier threshold
        return {} if picked is None else {**cleared(), "summary": FREED}
    if not _scored_by_another(ctx, held, model):
        return redraw(ctx, held, picked, model, rate, opacity)
    if not paths(image) + paths(files):  # the uploads are gone: nothing to score with the new model
        return {**cleared(), "summary": UPLOADS_GONE}
    before = {item["digest"] for item in held}
    # the images shown, not what else the boxes hold: an example clicked beside a zip not yet inspected was shown
    # merged into it, judged by the example's model
    scored = inspect_images(ctx, image, files, model, rate, opacity, held, viewing=held[_shown(held, picked)]["digest"],
                            only=before)
    gone = before - {item["digest"] for item in scored["held"]}
    if gone and scored["held"]:  # said, or the new model's verdicts would pass for those of every image shown
        notify(f"the new model scored the {len(scored['held'])} image(s) shown that the upload boxes still hold; "
               f"{len(gone)} shown before are no longer there")
    return scored
