"""The model bar: which model is active, and the threshold every tab judges by.

The threshold is set as an expected false-alarm rate (% of good parts flagged), which means the
same for every model; each model's calibration turns it into a raw score, shown beside it.
A browser's model is a state: {"key", "revision", "owner", "name", "calibration"}, where
"calibration" is None for the model's own, or the one a review recalibrated (then "recalibrated_from"
is the fingerprint of the model's own calibration it was made for). A copy lives in the
browser (signed), so a reload or a restarted server finds the model it left active.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from dataclasses import dataclass

import gradio as gr

from rbd.calibration import Calibration
from rbd.catalog import is_hub_key, model_name
from rbd.checkpoint import is_repo_id
from rbd.detector import Detector
from rbd.errors import CheckpointError, RBDError
from rbd.notices import notify
from rbd.review import ScoredBy
from rbd.thresholds import RATE_RANGE, RATE_STEP, describe, set_by_hand, tested, threshold_at

from .wiring import as_markdown, on


class RateSlider(gr.Slider):
    """The threshold's slider. A rate typed into its box beyond its range is taken at the nearest end (and
    the box is set to it, `clamp_typed`), where Gradio would fail every event that reads the slider."""

    is_template = True  # drawn by the browser as a gr.Slider

    def preprocess(self, payload: float | None) -> float:
        if payload is None:  # an API call without a rate (the page keeps the rate before when its box is emptied: app.py)
            raise gr.Error(f"no threshold rate given: send a number from {self.minimum:g} to {self.maximum:g} (% of good parts flagged)")
        return super().preprocess(self.clamped(payload))

    def clamped(self, rate: float) -> float:
        return min(max(rate, self.minimum), self.maximum)

    def clamp_typed(self, typed: float | None):
        """The box set back within the range when a rate beyond it was typed (read unpreprocessed)."""
        return gr.skip() if typed is None or self.clamped(typed) == typed else self.clamped(typed)


@dataclass
class ModelBar:
    browser: gr.BrowserState
    model: gr.State
    stored: gr.BrowserState  # the browser's copy of `model`, read once when the page loads
    choice: gr.Dropdown
    hub_id: gr.Textbox
    revision: gr.Textbox
    load: gr.Button
    rate: RateSlider
    reset: gr.Button
    info: gr.Markdown


def calibration(ctx, model: dict) -> Calibration:
    """The calibration a browser judges its active model by: recalibrated by a review, or the model's own
    (at the threshold its checkpoint was saved with, where that was set by hand)."""
    recalibration = recalibrated_by_review(ctx, model)
    if recalibration is not None:
        return recalibration
    detector = ctx.detector(model)
    return set_by_hand(detector.calibration, detector.threshold)


def recalibrated_by_review(ctx, model: dict) -> Calibration | None:
    """A review's recalibration of the active model, while that is the model it was made for: a Hub
    branch loaded again (here, or in another browser that shares the loaded model) may name a retrained
    model, which is judged by its own calibration again."""
    if not (model and model.get("calibration")):
        return None
    made_for = model.get("recalibrated_from")
    if made_for and made_for != ctx.detector(model).calibration.fingerprint:
        return None
    return Calibration.from_dict(model["calibration"])


def recalibrated(ctx, model: dict, recalibration: Calibration) -> dict:
    """The model state judged by a review's `recalibration`; it names the model it was made for (the
    fingerprint of its own calibration), so a Hub branch that has moved on since does not inherit it."""
    return {**model, "calibration": recalibration.to_dict(), "recalibrated_from": ctx.detector(model).calibration.fingerprint}


def identity(ctx, model: dict, detector: Detector | None = None) -> str:
    """Which model judged something shown: its calibration's fingerprint, not its key. A Hub branch loaded again may
    name a retrained model (another fingerprint) under the same key, while a fine-tune shared (moved to the shared
    models) or loaded from its download is the same model under another key, whose results were cleared or scored
    again as another's. `detector`, where given, is the one that judged (the key may name another by the time a long
    run ends)."""
    return (detector or ctx.detector(model)).calibration.fingerprint


def threshold(ctx, model: dict, rate: float) -> float:
    """The active model's raw threshold for the control's rate (in %)."""
    judged_by = calibration(ctx, model)
    return threshold_at(judged_by, judged_rate(judged_by, rate))


def judged_rate(judged_by: Calibration, rate: float) -> float:
    """The false-alarm rate (a fraction) the control's `rate` (%) judges at. A calibration made by hand (no normal
    scores) knows its own rate's threshold alone, which the control shows at its nearest end where outside its range:
    there, its own (the model could not be loaded: the end's rate has no threshold of it)."""
    if not judged_by.normal_scores and rate == model_rate(judged_by):
        return judged_by.false_alarm_rate
    return rate / 100


def scored_by(model: dict) -> ScoredBy:
    """The active model as a review records it."""
    return ScoredBy(model["name"], model["key"], model.get("revision"))


def start(ctx, browser: str) -> dict:
    """A new browser gets an id of its own (its fine-tunes are private to it) and the picker its models."""
    browser = browser or uuid.uuid4().hex
    return {"browser": browser, "choice": gr.update(choices=ctx.catalog.entries(browser))}


def listed(ctx, browser: str, model: dict | None = None) -> dict:
    """The picker's models as they are now, as it opens: another tab may have fine-tuned, shared or deleted one. The
    active `model` keeps a name there: shared since, it is picked under its shared key; deleted since (or a Hub model),
    it is listed by its name, said gone where its folder is (its server path showed in the picker)."""
    entries = ctx.catalog.entries(browser or None)
    keys = {key for _, key in entries}
    if not model or model["key"] in keys:
        return {"choice": gr.update(choices=entries)}
    moved = ctx.catalog.current_key(model["key"], browser or None)
    if moved in keys:
        return {"choice": gr.update(choices=entries, value=moved)}
    gone = not is_hub_key(model["key"]) and not Path(model["key"]).is_dir()
    return {"choice": gr.update(choices=[*entries, (f"{model['name']} (no longer there)" if gone else model["name"], model["key"])])}


def load_model(ctx, choice: str, hub_id: str, revision: str, browser: str, read_again: bool = False) -> dict:
    """Load a shipped or fine-tuned checkpoint, or a Hub repo (at a revision) when a repo id is given;
    the threshold goes to the model's own (`calibration`: the rate it was calibrated for, or the threshold
    its checkpoint was saved with where that was set by hand)."""
    hub_id, revision = (hub_id or "").strip(), (revision or "").strip() or None
    if "@" in hub_id:  # as the app names a Hub model: owner/name@revision
        if revision is not None:
            raise CheckpointError(f"{hub_id!r} names a revision, and so does the revision box ({revision!r}): give one")
        typed = hub_id
        hub_id, revision = (part.strip() for part in hub_id.split("@", 1))
        revision = revision or None
        if not hub_id:
            raise CheckpointError(f"{typed!r} names a revision but no repo: owner/name@revision")
    if hub_id and not is_repo_id(hub_id):  # quoted as typed: the catalog's own error names a folder by its name alone
        raise CheckpointError(f"{hub_id!r} is not a Hub repo id (owner/name)")
    key, revision = (hub_id, revision) if hub_id else (typed_choice(ctx, choice or "", browser), None)
    if is_hub_key(key) or read_again:  # loading a Hub repo again fetches what its revision names now
        ctx.catalog.forget(key, revision)
    model = {"key": key, "revision": revision, "owner": browser or None, "name": model_name(key, revision), "calibration": None}
    rate = model_rate(calibration(ctx, model))
    return {"model": model, "rate": rate, "info": info(ctx, model, rate)}


def typed_choice(ctx, choice: str, browser: str) -> str:
    """The picker's key for what it holds: a listed key or a Hub repo id as it is, else the one model named so, else the
    one model whose name starts with the text typed (clicking away from "we" gave an error, where Enter loaded weld).
    Several or none: an error that names them."""
    entries = ctx.catalog.entries(browser or None)
    text = choice.strip()
    if not text or any(key == text for _, key in entries) or is_repo_id(text):
        return choice
    named = [key for _, key in entries if Path(key).name.casefold() == text.casefold()]
    if len(named) == 1:  # a name typed whole: "bottle" while a fine-tune "bottle-20261206-..." is listed too
        return named[0]
    fitting = [(label, key) for label, key in entries if label.casefold().startswith(text.casefold())]
    if len(fitting) == 1:
        return fitting[0][1]
    if fitting:
        raise CheckpointError(f"{text!r} begins the names of {', '.join(label for label, _ in fitting)}: pick one in the list")
    return choice


def load_pressed(ctx, choice: str, hub_id: str, revision: str, browser: str) -> dict:
    """Load's click: `load_model`, a listed folder read again as it is on disk now (`rbd train --out` into it while the
    app ran was never seen: the cache served the model before), and the picker named the model loaded (it still
    named the one before a Hub repo)."""
    loaded = load_model(ctx, choice, hub_id, revision, browser, read_again=True)
    return {**loaded, **active_choice(ctx, loaded["model"])}


def picked(ctx, choice: str, browser: str, model: dict | None) -> dict:
    """The picker's choice (picked or typed): that model loaded, its Hub boxes emptied; or, where it names the active
    model, nothing changed but the picker's and boxes' names for it. Gradio sends the picker's input at every blur too,
    and reloading reset the threshold, dropped a review's recalibration and took a Hub model at a revision to main. A
    Hub model named as the picker names it (owner/name@revision) is that repo at that revision."""
    repo, at, revision = (choice or "").strip().partition("@")
    hub = bool(at) and is_repo_id(repo.strip())
    key = repo.strip() if hub else typed_choice(ctx, choice or "", browser)
    active = (model["key"], ctx.catalog.current_key(model["key"], browser or None)) if model else ()  # shared since: its new key
    if key in active and (not hub or (revision.strip() or None) == model.get("revision")):
        return {**active_choice(ctx, model), "choice": key}
    return load_pressed(ctx, "", choice, "", browser) if hub else load_pressed(ctx, choice, "", "", browser)


def restore(ctx, stored: dict | None, choice: str, browser: str) -> dict:
    """On page load: the model this browser left active (with a review's recalibration) at the rate the tab had set
    (TAB_MODEL: it went back to the model's own on a reload or after a restart, without a word), or `choice` (the
    default) when there is none or it cannot be loaded any more (an expired fine-tune, an unreachable Hub), which a
    warning names."""
    if stored and stored.get("key"):
        stored = dict(stored)
        tab_rate = stored.pop("tab_rate", None)
        model = {**stored, "owner": browser or None}
        model["key"] = ctx.catalog.current_key(model["key"], model["owner"])  # shared from another tab since
        try:
            ctx.detector(model)
        except RBDError as err:
            why = f" ({err})" if is_hub_key(model["key"]) else ""  # a local model's error names a server path
            notify(f"{model.get('name') or model['key']}, the model active before, could not be loaded again{why}; "
                   "the default model is active")
        else:
            if model.get("calibration") and recalibrated_by_review(ctx, model) is None:
                notify(f"{model.get('name') or model['key']} is another model than the one a review recalibrated (its "
                       "Hub branch has moved on): it is judged by its own threshold again")
                model = {**model, "calibration": None, "recalibrated_from": None}
            rate = slider_rate(tab_rate / 100) if isinstance(tab_rate, (int, float)) else model_rate(calibration(ctx, model))
            return {"model": model, "rate": rate, "info": info(ctx, model, rate), **active_choice(ctx, model)}
    return load_model(ctx, choice, "", "", browser)


def active_choice(ctx, model: dict | None) -> dict:
    """After a failed load the picker shows the model still active, not the name that failed; a Hub
    model also in the repo id and revision boxes, so its revision shows and loading it again needs no typing."""
    if not model:
        return {}
    hub = is_hub_key(model["key"])
    return {"choice": model["key"], "hub_id": model["key"] if hub else "", "revision": (model.get("revision") or "") if hub else ""}


def reset(ctx, model: dict) -> dict:
    """Back to the threshold the active model judges by on its own (`calibration`)."""
    rate = model_rate(calibration(ctx, model))
    return {"rate": rate, "info": info(ctx, model, rate)}


def model_rate(calibration: Calibration) -> float:
    """The slider's value (%) for the rate a model was calibrated for; one outside the slider's range (the
    API trains at any rate above 0, and checkpoints saved before it refused 0 hold 0) starts at the nearest end, whose
    threshold the model line then gives."""
    return slider_rate(calibration.false_alarm_rate)


def slider_rate(rate: float) -> float:
    """The slider's value (%) for a false-alarm rate (a fraction), at the nearest end of its range where outside it."""
    low, high = RATE_RANGE
    return round(100 * min(max(rate, low), high), 6)  # 0.07, not 0.07000000000000001


def show(ctx, model: dict, rate: float) -> dict:
    """The model line at a moved rate. A model gone since it was picked (deleted in another tab) is said there: this
    refresh runs outside the queue with no progress shown, so its error was seen nowhere, and the line went on naming
    the model at the rate before."""
    try:
        return {"info": info(ctx, model, rate)}
    except RBDError as err:
        return {"info": f"⚠️ {as_markdown(str(err))}"}


def info(ctx, model: dict, rate: float) -> str:
    detector = ctx.detector(model)
    judged_by = calibration(ctx, model)
    text = f"**{model['name']}** · backbone `{detector.config.backbone}` · {describe(judged_by, judged_rate(judged_by, rate))}"
    if tested(detector.metrics):
        text += f" · {tested(detector.metrics)}"
    if recalibrated_by_review(ctx, model) is not None:
        text += " · _recalibrated with the images reviewed as good_"
    return text


def layout(ctx) -> ModelBar:
    browser = gr.BrowserState("", storage_key="rbd-browser", secret=ctx.state_secret)
    key = ctx.catalog.default_key()
    model = gr.State({"key": key, "revision": None, "owner": None, "name": model_name(key), "calibration": None} if key else None)
    stored = gr.BrowserState(None, storage_key="rbd-model", secret=ctx.state_secret)
    with gr.Row():
        # the catalog, not the picker's list, decides what a browser may load (the list differs per browser)
        choice = gr.Dropdown(ctx.catalog.entries(), value=ctx.catalog.default_key(), label="Model", scale=3, elem_id="model-choice",
                             allow_custom_value=True)
        hub_id = gr.Textbox(label="…or Hub repo id (owner/name)", placeholder="owner/name", scale=2)
        revision = gr.Textbox(label="revision", placeholder="main", scale=1, elem_id="model-revision")
        load = gr.Button("Load model", scale=1, elem_id="load-model")
    with gr.Row(equal_height=True):
        low, high = RATE_RANGE
        rate = RateSlider(100 * low, 100 * high, value=1.0, step=100 * RATE_STEP, buttons=[], scale=3, elem_id="threshold",
                         label="Threshold: expected false alarms (% of good parts flagged)")
        reset = gr.Button("↺ model's threshold", size="sm", scale=0, min_width=160, elem_id="threshold-reset")
    info = gr.Markdown(elem_id="model-info")  # the whole width: beside the slider it wrapped into a tall column
    return ModelBar(browser, model, stored, choice, hub_id, revision, load, rate, reset, info)


# The model a page restores on load: its tab's own where the tab had one (a reload, or the one after an app restart),
# else the browser's last (a new tab). The browser's store is one for all its tabs (localStorage, which Gradio 6.31 reads
# when a page loads only, never hearing another tab's writes): after a reload a tab took the model another tab picked
# last, and scored with it under no word. With it, as `tab_rate`, the
# rate the tab last set for that model (KEEP_TAB_RATE).
TAB_MODEL = """(stored, ...rest) => {
  let tab = null, rate = null;
  try { tab = JSON.parse(sessionStorage.getItem("rbd-tab-model")); rate = JSON.parse(sessionStorage.getItem("rbd-tab-rate")); }
  catch (error) {}
  const model = tab || stored;
  return [model && rate && rate.key === model.key ? {...model, tab_rate: rate.rate} : model, ...rest];
}"""
KEEP_TAB_MODEL = """(model) => { try { sessionStorage.setItem("rbd-tab-model", JSON.stringify(model)); } catch (error) {} }"""
KEEP_TAB_RATE = """(rate, model) => {
  try { sessionStorage.setItem("rbd-tab-rate", JSON.stringify({key: model && model.key, rate: rate})); } catch (error) {}
}"""


def wire(ctx, bar: ModelBar, app: gr.Blocks, rejudge) -> None:
    """Events of the bar; `rejudge(trigger)` wires what every tab re-judges when the model or threshold changes
    (`api=True` names those events as endpoints)."""
    loaded = {"model": bar.model, "rate": bar.rate, "info": bar.info}
    inputs = [bar.choice, bar.hub_id, bar.revision, bar.browser]
    restored = {**loaded, "choice": bar.choice, "hub_id": bar.hub_id, "revision": bar.revision}
    # a failed load shows its message by the button, never as badges over the threshold and model line
    rejudge(on(bar.load.click, load_pressed, ctx, inputs, restored, api_name="load_model", show_progress_on=[bar.load]).success)
    first = on(app.load, start, ctx, [bar.browser], {"browser": bar.browser, "choice": bar.choice}, api_visibility="private")
    rejudge(on(first.then, restore, ctx, [bar.stored, bar.choice, bar.browser], restored, api_visibility="private",
               js=TAB_MODEL).success)
    # whatever makes a model active (the bar, a fine-tune, a review's recalibration) is kept in the browser, and in the
    # tab (TAB_MODEL)
    copied = bar.model.change(lambda model: model, bar.model, bar.stored, queue=False, api_visibility="private")
    # after this tab's own copy: the tab's record follows the model this tab made active
    copied.then(None, bar.stored, None, js=KEEP_TAB_MODEL, queue=False, api_visibility="private")
    on(bar.choice.focus, listed, ctx, [bar.browser, bar.model], {"choice": bar.choice}, queue=False, api_visibility="private",
       show_progress="hidden")
    # the picker then names the model loaded, not the beginning of its name that was typed
    chosen = on(bar.choice.input, picked, ctx, [bar.choice, bar.browser, bar.model], restored, api_visibility="private",
                show_progress_on=[bar.choice])
    rejudge(chosen.success)
    on(chosen.failure, active_choice, ctx, [bar.model], {"choice": bar.choice, "hub_id": bar.hub_id, "revision": bar.revision},
       api_visibility="private")
    on(bar.reset.click, reset, ctx, [bar.model], {"rate": bar.rate, "info": bar.info}, api_name="reset_threshold",
       show_progress_on=[bar.reset])
    # Every move of the rate (typing, arrow keys, dragging, the reset, a model's load) fires `change`, and each
    # listener runs one at a time, the last value last: a move's answers arrive after those of the moves before it.
    # (The reset and its own re-judging, as separate events, could arrive before a slower answer to the move the
    # reset undid, leaving verdicts and the model line at the old rate beside the reset slider.)
    rejudge(bar.rate.change, api=True)
    # the model line at once, outside the queue: queued behind a page load's re-judging, the answer to the load's own rate
    # came after an example clicked had made another model active, and named the model before
    on(bar.rate.change, show, ctx, [bar.model, bar.rate], {"info": bar.info}, api_visibility="private",
       trigger_mode="always_last", show_progress="hidden", queue=False)
    bar.rate.change(bar.rate.clamp_typed, bar.rate, bar.rate, preprocess=False, queue=False, api_visibility="private")
    # (the browser's copy of the model: a gr.State's value never reaches the page)
    bar.rate.change(None, [bar.rate, bar.stored], None, js=KEEP_TAB_RATE, queue=False, api_visibility="private")

