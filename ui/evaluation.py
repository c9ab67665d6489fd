"""Evaluate: metrics, ROC curve, per-image verdicts and the misranked images of the active model on an MVTec-layout zip.

The per-image verdicts, and the false-alarm rate and recall they add up to, follow the threshold control,
like every other verdict in the app; the other metrics do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

import rbd
from rbd.detector import verdict
from rbd.evaluate import MISRANKED_COUNT, SUMMARY_NAMES, evaluation_picture, metric_text
from rbd.metrics import at_threshold
from rbd.notices import collect
from rbd.plots import roc_figure
from rbd.uploads import extract_zip, find_mvtec_root
from rbd.visualize import fold, subsample

from . import model_bar
from .inspection import INFERENCE_LIMIT
from .wiring import REJUDGE_MODE, endpoint, gpu, on, told_again


PICTURE_SIDE = 512  # the misranked images' pictures are shown within this many pixels a side
# the per-image rows' columns as the table heads them; `label` (1 for a defect) repeats `defect` (good or the defect's name),
# and without it a window of 600 px shows the verdicts (they scrolled out of sight)
SHOWN_COLUMNS = {"file": "file", "defect": "truth", "score": "score", "normalized_score": "normalised", "verdict": "verdict"}
NO_METRICS, NO_ROWS = pd.DataFrame(columns=["metric", "value"]), pd.DataFrame(columns=list(SHOWN_COLUMNS.values()))  # empty tables, headed


@dataclass
class Evaluate:
    archive: gr.File
    run: gr.Button
    summary: gr.Dataframe
    roc: gr.Plot
    rows: gr.Dataframe
    misranked: gr.Gallery
    evaluated: gr.State  # {"model": model_bar.identity, "name", "metrics", "rows", "judged_at" (raw threshold), "notes"} of this browser's last evaluation


@gpu
def evaluate(ctx, archive, model: dict, rate: float, progress=gr.Progress()) -> dict:
    """Metrics, ROC curve, per-image table and the misranked images' pictures on an uploaded MVTec-layout zip."""
    if not archive:
        raise rbd.NoImagesError("upload a zip of an MVTec-layout category first")
    detector, threshold = ctx.detector(model), model_bar.threshold(ctx, model, rate)
    with ctx.upload_folder() as folder, collect() as notes:  # the pictures are drawn while the images are there
        extract_zip(archive, folder)
        category = find_mvtec_root(folder)
        result = rbd.evaluate(detector, category, progress=lambda i, n: progress((i, n), desc="evaluating"))
        good, defective = result.misranked()
        pictures = [(subsample(fold(evaluation_picture(detector, category, row["file"], threshold)), PICTURE_SIDE),
                     f"{kind} #{rank} · score {row['score']:.4f} · {_ranked(result, row)} · {row['file']}")
                    for kind, found in (("good", good), ("defective", defective)) for rank, row in enumerate(found, 1)]
    notes = told_again(ctx, notes)  # a toast now, and a row under the metrics (a toast fades)
    evaluated = {"model": model_bar.identity(ctx, model, detector), "name": model["name"], "metrics": result.summary(), "rows": result.rows,
                 "judged_at": threshold, "notes": notes}
    return {"roc": roc_figure(result.roc, result.image_auroc), "evaluated": evaluated, "misranked": pictures,
            **rows(ctx, evaluated, model, rate)}


def _ranked(result: rbd.Evaluation, row: dict) -> str:
    """Whether a picture of the gallery is ranked wrong, and against how many: with image AUROC 1 none is (they are
    the closest to it), and the gallery's title alone read as if each were."""
    wrong, other = result.ranked_wrong_against(row), ("defective" if row["label"] == 0 else "good")
    return f"ranked wrong against {wrong} {other}" if wrong else "ranked right"


def judged_again(ctx, evaluated: dict | None, model: dict, rate: float) -> dict:
    """After an Evaluate: its verdicts at the slider's rate, or the evaluation cleared, where the rate or the model
    changed while it ran. That change's own re-judge saw the evaluation before, and this one's answer, judged
    as at its click, came after it."""
    if not evaluated or (is_of(ctx, evaluated, model) and evaluated.get("judged_at") == model_bar.threshold(ctx, model, rate)):
        return {}
    return rows(ctx, evaluated, model, rate)


def is_of(ctx, evaluated: dict | None, model: dict) -> bool:
    """Whether `evaluated` is an evaluation of `model` (`model_bar.identity`: a Hub branch loaded again may name
    another model, whose card must not list these metrics)."""
    return bool(evaluated) and evaluated["model"] == model_bar.identity(ctx, model)


def rows(ctx, evaluated: dict | None, model: dict, rate: float) -> dict:
    """The metrics and the per-image table, with verdicts at the current threshold of the model that was evaluated; once
    another model is active, the evaluation is cleared (its metrics and verdicts are not that model's)."""
    if not evaluated:
        return {}
    if not is_of(ctx, evaluated, model):
        # said so that it stays true once that model is active again (the evaluation is gone by then)
        return cleared(f"the evaluation of {evaluated.get('name', 'another model')} was cleared as another model became "
                       "active: press Evaluate to evaluate the active model")
    calibration = model_bar.calibration(ctx, model)
    threshold = model_bar.threshold(ctx, model, rate)
    table = [{**row, "normalized_score": calibration.normalize(row["score"], threshold), "verdict": verdict(row["score"], threshold)}
             for row in evaluated["rows"]]
    summary = pd.DataFrame([{"metric": SUMMARY_NAMES.get(k, k), "value": metric_text(k, v)} for k, v in metrics_at(evaluated, threshold).items()]
                           + [{"metric": f"note: {note}", "value": ""} for note in evaluated.get("notes", [])])  # what they rest on, in the wide column
    rows = pd.DataFrame(table)[list(SHOWN_COLUMNS)].rename(columns=SHOWN_COLUMNS)
    return {"summary": summary, "rows": rows.style.format("{:.4f}", subset=list(rows.select_dtypes("float").columns))}


def metrics_at(evaluated: dict, threshold: float) -> dict:
    """The metrics of an evaluation, those of verdicts (false alarms, recall) at `threshold`: where the table shows them,
    and the card of a model pushed at it."""
    judged = at_threshold([row["label"] for row in evaluated["rows"]], [row["score"] for row in evaluated["rows"]], threshold)
    return {**evaluated["metrics"], **{k: judged[k] for k in ("threshold", "false_alarm_rate", "recall")}}


def cleared(note: str) -> dict:
    """Nothing shown but `note`, which says why."""
    return {"summary": pd.DataFrame([{"metric": "cleared", "value": note}]), "roc": None, "rows": NO_ROWS, "misranked": None,
            "evaluated": None}


def failed(ctx) -> dict:
    """After an evaluation failed: the one before is cleared, as a threshold move would show it again beside the new zip."""
    return cleared("the last evaluation failed: its message says why")


def layout(ctx) -> Evaluate:
    with gr.Row():
        archive = gr.File(label="MVTec-layout category (zip)", file_types=[".zip"], elem_id="eval-zip")
        run = gr.Button("Evaluate", variant="primary", elem_id="eval-run")
    with gr.Row():
        # a note wraps; the values keep a third of the width (a narrow window hid them behind the wrapped names)
        # all of it, never scrolled within: at 500 px (Gradio's) its notes, last, lay out of sight below the metrics
        summary = gr.Dataframe(NO_METRICS, label="Metrics", interactive=False, wrap=True, column_widths=["67%", "33%"],
                               min_width=400, max_height="none", elem_id="eval-metrics")  # narrower, it goes above the ROC curve
        roc = gr.Plot(label="ROC curve", show_label=False)  # the figure's title: the label covered its top
    table = gr.Dataframe(NO_ROWS, label="Per image (verdicts at the threshold above)", interactive=False, wrap=True,
                         column_widths=["28%", "19%", "15%", "19%", "19%"], elem_id="eval-rows")  # a long path wraps in its share
    misranked = gr.Gallery(label=f"Where the ranking goes wrong, or comes closest: the highest-scoring good and lowest-scoring defective images (up to "
                                 f"{MISRANKED_COUNT} of each), heat maps at the threshold when evaluated, truth masks outlined in magenta",
                           columns=5, height="auto", object_fit="contain", format="jpeg", elem_id="eval-misranked",
                           elem_classes=["rbd-gallery"])  # captions wrap: the file's path shows whole
    return Evaluate(archive, run, summary, roc, table, misranked, gr.State(None))


def wire(ctx, area: Evaluate, bar: model_bar.ModelBar) -> None:
    outputs = {"summary": area.summary, "roc": area.roc, "rows": area.rows, "misranked": area.misranked, "evaluated": area.evaluated}
    # a click while an evaluation runs is run after it (Gradio's default drops it unseen)
    evaluated = on(area.run.click, evaluate, ctx, [area.archive, bar.model, bar.rate], outputs, api_name="evaluate",
                   trigger_mode="always_last", concurrency_limit=INFERENCE_LIMIT, concurrency_id="inference",
                   show_progress_on=[area.summary])
    on(evaluated.success, judged_again, ctx, [area.evaluated, bar.model, bar.rate], outputs, api_visibility="private",
       show_progress="hidden")
    on(evaluated.failure, failed, ctx, [], outputs, api_visibility="private", show_progress="hidden")


def rejudge(ctx, area: Evaluate, bar: model_bar.ModelBar, trigger, api: bool = False) -> None:
    on(trigger, rows, ctx, [area.evaluated, bar.model, bar.rate],
       {"rows": area.rows, "summary": area.summary, "roc": area.roc, "misranked": area.misranked, "evaluated": area.evaluated},
       show_progress="hidden", trigger_mode=REJUDGE_MODE, **endpoint(api, "evaluate_rethreshold"))
