"""The app: a model bar over four tabs, each laid out and wired in its own module."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from rbd.catalog import Catalog

from . import evaluation, fine_tune, inspection, model_bar, review
from .context import Context

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("RBD_WORK_DIR", ROOT / "work"))
SWEEP_S = 3600  # how often idle reviews and private models are looked for
CSS = """
#inspect-overlay img, #review-image img { object-fit: contain !important; }  /* the whole picture, enlarged to fit: Gradio drew a 20-pixel part as a dot */
#inspect-pair img { height: 100% !important; object-fit: contain !important; }  /* the slider sized it by its width and cropped it */
/* the picture below the label: a tall one started under it, and a defect at its top left was hidden (a helper's ksdd crack) */
#inspect-annotated .image-container { margin-top: 2.2em; }
#review-editor button[aria-label="Clear canvas"] { display: none !important; }  /* it took the picture too: the eraser remains */
/* its tools at the canvas's very edge: 15 px in, they lay over the picture's left edge, where nothing could be painted */
#review-editor .toolbar-wrap:has(button[aria-label="Brush"]) { left: 0 !important; }
/* its title one line, cut before the toolbar: two lay over the picture's top, where nothing could be painted */
#review-editor label[data-testid="block-label"] { max-width: calc(100% - 200px); white-space: nowrap; overflow: hidden; }
/* galleries: captions under their pictures (Gradio lays them over the lower part), the first row below the label,
   as many columns as fit (a fixed count was cut off at 800-900 px) */
.rbd-gallery .grid-wrap { margin-top: 2.4em; }  /* the pictures scroll below the label, never under it */
.rbd-gallery .grid-container { grid-template-columns: repeat(auto-fill, minmax(var(--rbd-thumb), 1fr)) !important; }
#review-gallery { --rbd-thumb: 120px; }
/* at most 520 px, scrolled within; as tall as the pictures where fewer (on a phone, above the image, it was 520 px of
   mostly blank page); beside the image it stretches to the row as before */
#review-gallery { height: auto !important; max-height: 520px; }
#review-gallery .grid-wrap { height: auto !important; max-height: calc(520px - 2.4em) !important; }
#eval-misranked { --rbd-thumb: 220px; }
#eval-misranked .grid-wrap { height: auto !important; max-height: none !important; }  /* all of it: Gradio's 550 px cut the second row */
/* an enlarged picture fits the window: Gradio lays it over all the pictures, as tall as they are */
#eval-misranked:has(.preview) .grid-wrap { visibility: hidden; height: 85vh !important; overflow: hidden !important; }
.rbd-gallery .thumbnail-item { aspect-ratio: auto !important; height: auto !important; display: flex !important; flex-direction: column !important; }
.rbd-gallery .thumbnail-item img { aspect-ratio: 1 / 1; width: 100% !important; height: auto !important; flex: none; }
.rbd-gallery .caption-label { position: static !important; white-space: pre-line !important; overflow: visible !important;
                              text-overflow: clip !important; overflow-wrap: anywhere; max-width: 100% !important;
                              font-size: 0.75em; line-height: 1.2; text-align: left; opacity: 1 !important; }  /* not faded under the pointer */
/* an enlarged picture's caption whole, in lines (one centred line was cut at both ends on a phone) */
.rbd-gallery .preview .caption { white-space: pre-line !important; overflow-wrap: anywhere; text-align: left !important;
                                 align-self: stretch !important; }
#inspect-results td:first-child, #eval-rows td:first-child { overflow-wrap: anywhere; }  /* a long file name wraps, even without spaces */
/* on a phone a table as wide as its columns need, scrolled sideways: in shares of 330 px the numbers and headings
   broke mid-word ("24.9 / 685", "scor / e") */
@media (max-width: 640px) {
  :is(#inspect-results, #inspect-regions, #eval-rows) .upload-container { overflow-x: auto !important; }
  #inspect-results .virtual-table-viewport { min-width: 540px; }
  #inspect-regions .virtual-table-viewport { min-width: 440px; }
}
@media (max-width: 590px) { #eval-rows .virtual-table-viewport { min-width: 540px; } }  /* at 600 px it fits unscrolled */
/* "defect" first in the mask's legend: its layer comes last, drawn over the regions' boxes (ui.inspection._detail) */
#inspect-annotated .legend-item:last-child { order: -1; }
#inspect-summary { scroll-margin-top: 1.5em; }  /* brought into view by a row clicked (DETAIL_IN_SIGHT): its heading whole */
/* messages in the lower right corner: at the top they covered the model bar's revision box and Load model, which an
   error about a model is mended with, until closed */
.toast-wrap { top: auto !important; bottom: var(--size-4) !important; }
/* an "Error" badge above the text, at the right: in the middle of a status line or Inspect's summary it hid the words */
:is(#train-status, #inspect-summary, #review-status):has(.error) [data-testid="markdown"] { padding-top: 2.4em; }
:is(#train-status, #inspect-summary, #review-status) .error { position: absolute; right: 3em; top: 0.4em; }
:is(#train-status, #inspect-summary, #review-status) [data-testid="status-tracker"]:has(.error) { overflow: visible !important; }
input[role=combobox] { padding-right: 26px !important; text-overflow: ellipsis !important; }  /* a long name ends in "…" before a dropdown's arrow, not under it */
"""
PAGE_SCRIPT = """
() => {
  // The review's keyboard shortcuts
  const keys = {a: "review-accept", r: "review-reject", e: "review-edit", ArrowLeft: "review-prev",
                ArrowRight: "review-next", j: "review-next", k: "review-prev"};
  document.addEventListener("keydown", (event) => {
    const target = event.target;  // typing or a slider takes the keys, a filter's choice (a radio button) leaves them
    const typing = target && (target.tagName === "INPUT" ? !["radio", "checkbox"].includes(target.type)
                                                          : ["TEXTAREA", "SELECT"].includes(target.tagName) || target.isContentEditable);
    if (typing) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    // while the mask editor is open the keys are off: a or r decided with the model's own mask, an arrow or e closed
    // or reopened the editor, and the paint was gone unsaved. Its Save button, or a click on another, leaves it. (Told
    // by that button: the editor itself lingers on the page a moment after it closes.)
    if (document.getElementById("review-save")?.offsetParent) return;
    const id = keys[event.key];
    const button = id && document.getElementById(id);
    if (button && !button.disabled && button.offsetParent !== null) { event.preventDefault(); button.click(); }
  });
  // The threshold's box emptied: Gradio sent no rate (every event failed with a bare "Error") and, once the box was
  // left, its lowest. The rate before stays: the box keeps it from Gradio until a number is typed, and shows it again
  // when left or on Enter.
  const emptyRate = (event) => event.target.matches?.("#threshold input[type=number]") && event.target.value === "";
  document.addEventListener("input", (event) => { if (emptyRate(event)) event.stopImmediatePropagation(); }, true);
  const restoreRate = (event) => {
    if (!emptyRate(event) || (event.type === "keydown" && event.key !== "Enter")) return;
    event.target.value = event.target.closest("#threshold").querySelector("input[type=range]").value;
  };
  for (const type of ["blur", "keydown", "change"]) document.addEventListener(type, restoreRate, true);
  // The app restarted since this page was loaded (a Space woke up, a new version went live): what the server held of
  // this page is gone, and its next click ran on the default model beside a model bar that named another. The page
  // reloads, as Gradio's own does after a lost connection, and restores its model and its place in a review: at once
  // where the restart is found on a click or key (that one may have run on the new server), else at the next click or
  // key, which it takes (so results being read stay on screen). The app is asked while the page is in use (every 3 s
  // for a minute after a click or key, and on each one), never by a tab left idle (it would keep a Space awake). Once
  // per new app: a page served stale by a cache reloads only once.
  const config = window.gradio_config || {};
  const appUrl = `${location.origin}${new URL(config.root || location.href, location.href).pathname.replace(/[/]$/, "")}${config.api_prefix}/app_id`;
  let used = Date.now(), stale = false, reloading = false;
  const reload = (id) => { reloading = true; sessionStorage.setItem("rbd-reloaded-for", String(id)); window.location.reload(); };
  const look = async () => {
    try {
      const answer = await fetch(appUrl, {cache: "no-store"});
      const id = answer.ok ? (await answer.json()).app_id : undefined;
      if (typeof id !== "number" || id === config.app_id || sessionStorage.getItem("rbd-reloaded-for") === String(id)) return;
      if (Date.now() - used < 2000) reload(id);
      else stale = id;
    } catch (error) {}  // no server just now: Gradio says so where it matters, and a later look finds the new one
  };
  const touched = (event) => {
    if (stale !== false && !(event.type === "keydown" && (event.ctrlKey || event.metaKey))) {  // copying text is reading
      event.preventDefault();
      event.stopImmediatePropagation();
      return reload(stale);
    }
    if (Date.now() - used > 1000) look();
    used = Date.now();
  };
  if (typeof config.app_id === "number" && config.api_prefix !== undefined) {
    for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, touched, true);
    document.addEventListener("click", (event) => { if (reloading) { event.preventDefault(); event.stopImmediatePropagation(); } }, true);
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") look(); });
    setInterval(() => { if (document.visibilityState === "visible" && Date.now() - used < 60000) look(); }, 3000);
  }
  // Picked folders' files as [path in the folder, size], in the order picked, by upload box (rbd.uploads.picked_names):
  // Gradio uploads them by name alone. Captured before Gradio's own listener reads and clears the picker; a box
  // adds each folder picked to its list, and so does this record, until the box is emptied (ui.review.SCORED, FORGET_PICKED).
  window.rbdPicked = {};
  document.addEventListener("change", (event) => {
    const input = event.target, box = input.closest && input.closest(".rbd-folder");
    if (box && input.webkitdirectory) {
      const paths = input.rbdPaths || Array.from(input.files, (f) => f.webkitRelativePath || f.name);
      (window.rbdPicked[box.id] ||= []).push(...Array.from(input.files, (f, i) => [paths[i], f.size]));
    }
  }, true);
  // A folder dropped on an upload box of several files: Gradio takes the drop's `files`, where a folder is one empty
  // entry and none of its files. Its files (and those of any folder in it) are read from the drop's entries instead
  // and handed to a picker as if picked there, with their paths in the drop: a folder box's own, or, dropped on a
  // box of loose files, the folder box of its tab (which keeps the paths) or else its own. A drop of files alone,
  // and any drop on a box of one file, is left to Gradio.
  const read = (reader) => new Promise((done, failed) => reader.readEntries(done, failed));
  const walk = async (entry, found) => {
    if (entry.isFile) {
      found.push([await new Promise((done, failed) => entry.file(done, failed)), entry.fullPath.replace(/^[/]/, "")]);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (let batch = await read(reader); batch.length; batch = await read(reader)) {  // a batch at a time until empty
        for (const child of batch) await walk(child, found);
      }
    }
  };
  document.addEventListener("drop", async (event) => {
    const block = event.target.closest && event.target.closest(".block");
    const own = block && block.querySelector("input[type=file]");
    const entries = Array.from(event.dataTransfer?.items || [], (item) => item.webkitGetAsEntry?.()).filter(Boolean);
    if (!own || !(own.webkitdirectory || own.multiple) || !entries.some((entry) => entry.isDirectory)) return;
    const folderBox = own.webkitdirectory ? own : block.closest("[role=tabpanel]")?.querySelector("input[type=file][webkitdirectory]");
    const input = folderBox || own;
    event.preventDefault();
    event.stopPropagation();
    event.target.dispatchEvent(new Event("dragleave", {bubbles: true}));  // Gradio's own drop would end its highlight
    const found = [];
    for (const entry of entries) await walk(entry, found);
    if (!found.length) return;
    const files = new DataTransfer();
    found.forEach(([file]) => files.items.add(file));
    input.files = files.files;
    input.rbdPaths = found.map(([, path]) => path);
    input.dispatchEvent(new Event("change", {bubbles: true}));
    delete input.rbdPaths;
  }, true);
}
"""


def build_app(work: Path = WORK, catalog: Catalog | None = None) -> gr.Blocks:
    """The app; `work` holds uploads (only while a request runs), reviews, exports and fine-tuned models."""
    ctx = Context(work, catalog or Catalog(ROOT / "checkpoints", Path(work) / "models"))
    with gr.Blocks(title="rbd: visual anomaly detection", delete_cache=(3600, 86400)) as app:
        gr.Markdown("# rbd · visual anomaly detection\nLearned from good parts only: score, heat map, defect mask and verdict "
                    "for every image.")
        bar = model_bar.layout(ctx)
        review_id = review.review_id_state(ctx)
        with gr.Tab("Inspect"):
            inspect_area = inspection.layout(ctx)
        with gr.Tab("Review"):
            review_area = review.layout(ctx, review_id)
        with gr.Tab("Fine-tune"):
            tune_area = fine_tune.layout(ctx)
        with gr.Tab("Evaluate"):
            eval_area = evaluation.layout(ctx)

        def rejudge(trigger, api: bool = False):
            """A new model or threshold: every tab judges what it shows again."""
            inspection.rejudge(ctx, inspect_area, bar, trigger, api)
            review.rejudge(ctx, review_area, bar, trigger, api)
            evaluation.rejudge(ctx, eval_area, bar, trigger, api)
            fine_tune.rejudge(ctx, tune_area, bar, trigger)

        model_bar.wire(ctx, bar, app, rejudge)
        inspection.wire(ctx, inspect_area, bar, rejudge)
        review.wire(ctx, review_area, bar, rejudge)
        fine_tune.wire(ctx, app, tune_area, bar, review_area.review_id, eval_area.evaluated, rejudge)
        evaluation.wire(ctx, eval_area, bar)
    app.queue(default_concurrency_limit=4)
    app.rbd_context = ctx
    return app


def launch(app: gr.Blocks, **kwargs):
    """Start the server with the page's script (review shortcuts, picked and dropped folders' paths) (host and port from GRADIO_SERVER_NAME/PORT);
    idle reviews and private models are removed while it runs."""
    ctx = app.rbd_context
    ctx.claim()
    ctx.sweep_every(SWEEP_S)
    return app.launch(js=PAGE_SCRIPT, css=CSS, footer_links=["api", "gradio"], max_file_size="2gb",
                      allowed_paths=[str(ctx.reviews)], **kwargs)
