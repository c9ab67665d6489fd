"""Review: score a folder, go through the verdicts with the keyboard, correct masks, export.

A decision reads and draws one image: the gallery shows one page of stored thumbnails around the
current image, and counts and metrics come from the session's arrays, so a review of 5,000
images answers as fast as one of 50. Moves start from the tab's cursor, kept on the server so that quick key
presses each start where the one before ended; a decision and the editor act on the image the page shows (`shown`,
which a held arrow key can leave a view behind the cursor), and a mask is saved on the image its editor was opened
for (the cursor's `editing`), or refused.
"""

from __future__ import annotations

import inspect
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import numpy as np

import rbd
from rbd import review as rules
from rbd.detector import OUT_OF_DOMAIN_MEANS
from rbd.detector import verdict as verdict_at
from rbd.notices import notify, some
from rbd.review import Decision, ReviewSession
from rbd.thresholds import threshold_at
from rbd.uploads import gather_images, picked_names
from rbd.visualize import fold, shown_size

from . import model_bar
from .inspection import INFERENCE_LIMIT, out_of_domain_note
from .wiring import (REJUDGE_MODE, NamedFiles, as_markdown, endpoint, forget_picked, gpu, on, paths, stored_name, uploaded_names,
                     with_picked)

MASK_ALPHA = 120  # the editor paints the mask see-through, so the defect under it stays visible; any alpha counts as mask
PAGE = 24  # thumbnails in the gallery at once
FILTERS = [("all", "all"), ("unreviewed", "unreviewed"), ("flagged defective", "defective"),
           ("grey zone (near the threshold)", "grey"), ("out of domain", "out-of-domain")]
NO_REVIEW = "No images to review yet: upload images, a zip or a folder and press **Score images**."
KEYS = ("Keys: **a** accept the model's verdict · **r** reject it (the image is the other way) · **e** edit mask · "
        "**←/→** previous/next")
DONE = {"accept": "✓ accepted", "reject": "✗ rejected", "correct": "✎ corrected"}
# Every event that draws the review runs in one lane, one at a time: a view reaches the browser only
# after the one before it (two finished together could arrive out of order and leave the browser
# showing an earlier image than the cursor's). Each takes milliseconds, so no one waits for long.
IN_ORDER = dict(concurrency_limit=1, concurrency_id="review-view")
# Score's last input, `picked`, takes what the page recorded of the picked folders (ui.app.PAGE_SCRIPT); the record
# goes with the files it describes when the folder box is emptied, by its Clear or once they are scored
PICKED = with_picked("review-folder")
FORGET_PICKED = forget_picked("review-folder")
SCORED = forget_picked("review-folder", "return [null, null];")  # and both upload boxes emptied


@dataclass
class Review:
    review_id: gr.BrowserState
    files: gr.File
    folder: gr.File
    picked: gr.JSON
    score: gr.Button
    new: gr.Button
    leave: gr.Checkbox
    rescore: gr.Button
    status: gr.Markdown
    scored_by: gr.Markdown
    show: gr.Radio
    gallery: gr.Gallery
    text: gr.Markdown
    image: gr.Image
    prev: gr.Button
    accept: gr.Button
    reject: gr.Button
    edit: gr.Button
    next: gr.Button
    editor: gr.ImageEditor
    save: gr.Button
    shown: gr.JSON  # the image the page shows and its verdict there (hidden): what a decision or the editor acts on
    metrics: gr.Markdown
    export: gr.Button
    export_file: gr.File
    recalibrate: gr.Button
    recalibrate_warning: gr.Markdown
    recalibrate_anyway: gr.Button


def judged_by(ctx, session: ReviewSession, model: dict):
    """The calibration a review is judged by: the active model's (recalibrated, if it was) when that
    model scored it, else that of the model that did, so a verdict never mixes two models."""
    active = ctx.detector(model)
    if session.is_scored_by(active.calibration):
        return model_bar.calibration(ctx, model)
    return session.calibration


def judged_at(ctx, session: ReviewSession, model: dict, rate: float):
    """(`judged_by`'s calibration, its raw threshold for `rate` % expected false alarms)."""
    calibration = judged_by(ctx, session, model)
    return calibration, threshold_at(calibration, model_bar.judged_rate(calibration, rate))


def shown_order(session: ReviewSession, show: str, calibration, threshold: float) -> np.ndarray:
    """The item ids the filter `show` lets through, in review order."""
    return rules.ordered(session, show, threshold, *calibration.grey_zone(threshold))


def view(ctx, cursor, review_id: str, model: dict, rate: float, show: str, item_id: int | None,
         fallback: int | None = None) -> dict:
    """The review as the browser shows it, at `item_id`; when the filter hides it (or a reloaded page
    has none yet), at position `fallback`, by default the first unreviewed image. The cursor moves there."""
    cursor.item, cursor.known, cursor.editing = None, True, None
    session = ctx.review(review_id)
    closed = {**_closed_editor(), "shown": None}
    if session is None or not session.items:
        return {"gallery": [], "text": NO_REVIEW, "image": None, "metrics": "", "scored_by": "", **closed}
    calibration, threshold = judged_at(ctx, session, model, rate)
    order = shown_order(session, show, calibration, threshold)
    metrics = _metrics(session, threshold)
    about = _scored_by(ctx, session, model, threshold, rate)
    if not len(order):
        label = dict((value, name) for name, value in FILTERS)[show]
        return {"gallery": [], "text": f"No image in this view (**{label}**; {len(session.items)} scored): choose **all** to see them all.",
                "image": None, "metrics": metrics, "scored_by": about, **closed}
    hits = np.flatnonzero(order == item_id) if item_id is not None else []
    if len(hits):
        position = int(hits[0])
    else:
        position = rules.first_unreviewed(session, order) if fallback is None else min(max(int(fallback), 0), len(order) - 1)
    start = position // PAGE * PAGE
    page = [int(i) for i in order[start:start + PAGE]]
    item = session.item(int(order[position]))
    decision = session.decision(item.id)
    text = (f"**{position + 1} / {len(order)}** · **{as_markdown(item.file_name)}** · score **{item.score:.4f}** · model says "
            f"**{verdict_at(item.score, threshold)}** · decision: **{decision.decision if decision else 'not reviewed'}**{_label(session, item.id)}"
            f"{_painted(session, item.id) if decision and decision.decision == 'correct' else ''}"
            f"{' (where is not known: press **e** to paint it, or the export gives it no mask)' if rules.place_unknown(session, item.id) else ''}"
            f" · page {start // PAGE + 1} of {-(-len(order) // PAGE)}\n\n")
    text += (f"{out_of_domain_note(item.familiarity)}\n\n" if item.out_of_domain else "") + KEYS
    gallery = gr.update(value=[(str(session.thumbnail_path(i)), _caption(session, i, threshold)) for i in page],
                        selected_index=position - start)
    picture = fold(rules.overlay(session, item.id, threshold, max_side=max(shown_size(item.height, item.width))))
    cursor.item = item.id
    return {"gallery": gallery, "text": text, "image": picture, "metrics": metrics, "scored_by": about, **closed,
            "shown": {"item": item.id, "verdict": verdict_at(item.score, threshold), "decided": decision.timestamp if decision else None}}


def _caption(session: ReviewSession, item_id: int, threshold: float) -> str:
    item, decision = session.item(item_id), session.decision(item_id)
    done = f" · {DONE[decision.decision]}{_label(session, item_id)}" if decision else ""
    return f"{item.file_name}\n{'⚠ ' if item.out_of_domain else ''}{item.score:.4f} {verdict_at(item.score, threshold)}{done}"


def _label(session: ReviewSession, item_id: int) -> str:
    """What the inspector's decision made of the image (" → good" or " → defective"); its verdict may since have
    changed with the threshold or a re-score, the label does not."""
    label = rules.final_label(session, item_id)
    return "" if label is None else f" → {'defective' if label else 'good'}"


def _painted(session: ReviewSession, item_id: int) -> str:
    """What a saved mask shows of a corrected image: a mask erased to nothing leaves a good part, and no outline."""
    return " (the mask painted, outlined in magenta)" if rules.final_label(session, item_id) else " (the mask erased: no defect)"


def _metrics(session: ReviewSession, threshold: float) -> str:
    m = rules.metrics(session, threshold)
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    return (f"Reviewed **{m['n_reviewed']}** of {len(session.items)} · defective {m['n_defective']} · AUROC {fmt(m['auroc'])} · "
            f"precision {fmt(m['precision'])} · recall {fmt(m['recall'])} at raw threshold {threshold:.4f}")


def _scored_by(ctx, session: ReviewSession, model: dict, threshold: float, rate: float) -> str:
    text = (f"This review: **{len(session.items)}** images scored by **{session.scored_by.name}**, judged at raw threshold "
            f"{threshold:.4f} ({rate:.4g}% expected false alarms).")
    if session.scoring:  # a page reloaded during a Score, or another tab's
        text += " More are being scored into it now: move to another image, or reload, to see them as they come."
    unfamiliar = int(session.out_of_domain.sum())
    if unfamiliar:
        text += (f"\n\n⚠ **{unfamiliar}** of them {'looks' if unfamiliar == 1 else 'look'} unlike the training images of "
                 f"{session.scored_by.name} (out of domain): {OUT_OF_DOMAIN_MEANS}. Choose **out of domain** to see them.")
    scored_by_active = session.is_scored_by(ctx.detector(model).calibration)
    unchecked = int(session.domain_unchecked.sum())
    if scored_by_active and unchecked and ctx.detector(model).config.memory_size:
        text += (f"\n\n{unchecked} of them {'was' if unchecked == 1 else 'were'} scored before rbd checked whether images look "
                 "like the model's training images, so none of those is marked out of domain: **Re-score with the active "
                 "model** to check them (the decisions are kept).")
    if not scored_by_active:
        text += (f"\n\n⚠ The active model is **{model['name']}**; these verdicts are still {session.scored_by.name}'s. "
                 "**Re-score with the active model**, or **start a new review**.")
    return text


def _nothing_on_screen(ctx, review_id: str, item_id) -> bool:
    """No review, or a filter that shows no image: a key press has nothing to act on, and does nothing."""
    return ctx.review(review_id) is None or item_id is None


def _on_screen(ctx, review_id: str, cursor, shown: dict | None) -> int | None:
    """The image a decision or the editor acts on: the one the page shows (`shown`, its last view's), else the cursor's.
    They differ after a held arrow key: the page may still draw an earlier view than the cursor's, and a decision must
    never go to an image the user has not seen."""
    session = ctx.review(review_id)
    item = shown.get("item") if isinstance(shown, dict) else shown  # (an API call may give the id alone)
    if isinstance(item, float) and item.is_integer():
        item = int(item)
    if not isinstance(item, int) or isinstance(item, bool) or session is None or not 0 <= item < len(session.items):
        return cursor.item  # an API call without it, or another review's
    return item


def _verdict_moved(shown: dict | None, item, threshold: float) -> bool:
    """Whether the page showed `item` with another verdict than its own now: a decision on it would record a verdict
    the inspector never saw (another tab re-scored the review, or the threshold moved, since the page was drawn)."""
    seen = shown.get("verdict") if isinstance(shown, dict) and shown.get("item") == item.id else None
    return seen is not None and seen != verdict_at(item.score, threshold)


def _decided_since(seen: dict | None, session, item, cursor) -> Decision | None:
    """The decision on `item` another tab recorded since this one drew it (`seen`: the view's `shown`, or the mask
    editor's record, holding the time of the decision it showed as "decided"), if one was: a decision here replaced it
    unseen, and the other tab's was lost. This tab's own last decision is none (`Cursor.decided`)."""
    if not isinstance(seen, dict) or seen.get("item") != item.id or "decided" not in seen:  # (an API call's)
        return None
    now = session.decision(item.id)
    changed = (now.timestamp if now else None) != seen["decided"]
    return now if now is not None and changed and (item.id, now.timestamp) != cursor.decided else None


def _shown_item(ctx, review_id: str, item_id, nothing: str):
    session = ctx.review(review_id)
    if session is None or item_id is None:
        raise rbd.NoImagesError(nothing)
    return session, session.item(int(item_id))


def _position(ctx, review_id, model, rate, show, item_id) -> tuple[np.ndarray, int]:
    """The shown order and the place of `item_id` in it (0 if it is not there)."""
    session = ctx.review(review_id)
    order = shown_order(session, show, *judged_at(ctx, session, model, rate))
    hits = np.flatnonzero(order == item_id)
    return order, int(hits[0]) if len(hits) else 0


@gpu
def score(ctx, files, folder, review_id: str, model: dict, picked: list | None = None, progress=gr.Progress(),
          request: gr.Request = None) -> dict:
    """Score uploaded images, zips or a whole folder into this browser's review, a batch at a time; the
    view then moves to the first of them in the review's order (the most anomalous), not where it was.
    `picked` is what the page recorded of the folders picked into the folder box (`rbd.uploads.picked_names`),
    so that their images keep their paths in them."""
    loose, picked_files = paths(files), paths(folder)
    if not loose + picked_files:  # e.g. Score pressed again: scored images leave the boxes
        raise rbd.NoImagesError("no image files in the upload: upload images, a zip or a folder, then press Score images")
    detector = ctx.detector(model)
    review_id = review_id or uuid.uuid4().hex
    session = ctx.review(review_id, create=True)
    before = len(session.items)
    with ctx.upload_folder() as upload:
        images = gather_images(loose + picked_files, upload, uploaded_names(files) + picked_names(picked_files, picked, stored_name))
        session.add(detector, images, lambda done, total: progress((done, total), desc="scoring"),
                    model=model_bar.scored_by(model), upload=upload)
    added = session.items[before:]
    if added:
        cursor = ctx.cursor(request)
        with cursor.lock:  # after any key press already sent; a filter that hides the image shows its first unreviewed one instead
            cursor.item = min(added, key=lambda item: (-item.score, item.id)).id
    return {"review_id": review_id, "status": f"Scored {len(added)} image(s); {len(session.items)} in this review."}


def joined_review(ctx, files, folder, review_id: str, browser: str, model: dict) -> dict:
    """A tab with no review yet scores into the one its browser scored into or started last (`Context.browser_review`):
    Gradio reads the browser's store when a page loads only, so a second tab opened before the first scored made a
    review of its own, and after a reload both tabs showed the one written last, the other out of reach. Not into one
    another model scored: its Score failed there, and the error's advice, Re-score, re-scored the other tab's review.
    Where none joins, the tab's new review gets its id now, the browser's at once: the page learnt it only once scoring
    ended, so a reload or a closed tab during a first Score lost every image scored (out of reach until it expired)."""
    if review_id or not paths(files) + paths(folder):
        return {}
    joined = ctx.browser_review(browser)
    session = ctx.review(joined) if joined is not None else None  # None for one started and not scored into yet
    if joined is not None and (session is None or session.is_scored_by(ctx.detector(model).calibration)):
        notify("these images join the review another tab of this browser scored into: the two tabs share it")
        return {"review_id": joined}
    new = uuid.uuid4().hex
    ctx.remember_review(browser, new)
    return {"review_id": new}


def remember_review(ctx, review_id: str, browser: str) -> dict:
    """The review scored into or started is the browser's (`joined_review`): a tab with none yet never joins the one
    "Start a new review" closed."""
    ctx.remember_review(browser, review_id)
    return {}


@gpu
def rescore(ctx, review_id: str, model: dict, progress=gr.Progress()) -> dict:
    """Score this review's images again with the active model, keeping the decisions."""
    session = ctx.review(review_id)
    if session is None or not session.items:
        raise rbd.NoImagesError("nothing to re-score yet: score some images first")
    session.rescore(ctx.detector(model), model_bar.scored_by(model), lambda done, total: progress((done, total), desc="re-scoring"))
    return {"status": f"Re-scored {len(session.items)} image(s) with {model['name']}; the decisions are kept."}


def new_review(ctx, confirmed: bool = True) -> dict:
    """A fresh review for this browser, once the page's question is answered yes (NEW_QUESTION); the old one stays on
    disk until it expires, out of this browser's reach."""
    if not confirmed:
        return {}
    return {"review_id": uuid.uuid4().hex, "status": "Started a new review: upload images and press **Score images**."}


# Start a new review's `js`: its input, whether the user said yes, asked unless the review holds no image (one click threw
# a review of a dozen decisions away). Told by the review's text, not its gallery, which a filter may leave empty.
NEW_QUESTION = (f"(confirmed) => [(document.querySelector('#review-text')?.innerText || '').includes('{NO_REVIEW.split(':')[0]}') "
                "|| window.confirm('Start a new review? This one closes and cannot be opened here again: export it first to keep "
                "its decisions.')]")


LOST = ("this page's place in the review was lost (the app restarted, or the tab was left for a day)")


def _in_place(ctx, cursor, move: Callable[[], dict], review_id: str, model: dict, rate: float, show: str) -> dict:
    """`move` in turn, where this server drew the view the key or click was made on. Where it did not (`Cursor.known`),
    which image the page shows is not known here: nothing is decided on a guess; the review is drawn again instead."""
    def guarded() -> dict:
        if not cursor.known:
            notify(f"{LOST}: that key or click was not applied, and the review is drawn again. Every decision made "
                   "before is kept.")
            return view(ctx, cursor, review_id, model, rate, show, None)
        return move()
    return cursor.press(guarded)


def _known(cursor) -> None:
    """The editor acts on the image on screen: refused where this server did not draw it (`_in_place`)."""
    if not cursor.known:
        raise rbd.InvalidInputError(f"{LOST}: reload the page (every decision made before is kept)")


def show(ctx, review_id: str, model: dict, rate: float, show: str, request: gr.Request = None) -> dict:
    cursor = ctx.cursor(request)
    return cursor.press(lambda: view(ctx, cursor, review_id, model, rate, show, cursor.item))


def decide(ctx, decision: str, review_id: str, model: dict, rate: float, show: str, shown: dict | None = None,
           request: gr.Request = None) -> dict:
    """Record a decision on the image on screen (`_on_screen`) and move on to the one after it; where its verdict is not
    the one the page showed (`_verdict_moved`), or another tab decided it since (`_decided_since`), nothing is recorded and
    the image is drawn again."""
    cursor = ctx.cursor(request)

    def move() -> dict:
        on_screen = _on_screen(ctx, review_id, cursor, shown)
        if _nothing_on_screen(ctx, review_id, on_screen):
            return view(ctx, cursor, review_id, model, rate, show, None)
        session, item = _shown_item(ctx, review_id, on_screen, "nothing to review")
        order, position = _position(ctx, review_id, model, rate, show, item.id)
        _, threshold = judged_at(ctx, session, model, rate)
        if _verdict_moved(shown, item, threshold):
            notify(f"{item.file_name}: the model's verdict changed since it was drawn (the review was re-scored, or the "
                   f"threshold moved): it is now {verdict_at(item.score, threshold)}, and nothing was decided; look again")
            return view(ctx, cursor, review_id, model, rate, show, item.id)
        other = _decided_since(shown, session, item, cursor)
        if other is not None:
            notify(f"{item.file_name}: another tab decided it ({other.decision}) since it was drawn here, and nothing was "
                   "decided; look again")
            return view(ctx, cursor, review_id, model, rate, show, item.id)
        cursor.decided = (item.id, session.decide(item.id, decision, threshold).timestamp)
        if not len(order) or order[position] != item.id:  # out of the view (`_position`): its first unreviewed image, not the second one
            return view(ctx, cursor, review_id, model, rate, show, None)
        after = int(order[position + 1]) if position + 1 < len(order) else item.id
        return view(ctx, cursor, review_id, model, rate, show, after, fallback=position)
    return _in_place(ctx, cursor, move, review_id, model, rate, show)


def step(ctx, delta: int, review_id: str, model: dict, rate: float, show: str, request: gr.Request = None) -> dict:
    cursor = ctx.cursor(request)

    def move() -> dict:
        if _nothing_on_screen(ctx, review_id, cursor.item):
            return view(ctx, cursor, review_id, model, rate, show, None)
        order, position = _position(ctx, review_id, model, rate, show, cursor.item)
        if not len(order):  # another tab decided the filter's last images
            return view(ctx, cursor, review_id, model, rate, show, None)
        position = max(0, min(position + delta, len(order) - 1))
        return view(ctx, cursor, review_id, model, rate, show, int(order[position]))
    return _in_place(ctx, cursor, move, review_id, model, rate, show)


def select(ctx, review_id: str, model: dict, rate: float, show: str, event: gr.SelectData, request: gr.Request = None) -> dict:
    """A click on a thumbnail of the page shown."""
    cursor = ctx.cursor(request)

    def move() -> dict:  # a click queued behind the key press that decided the filter's last image: nothing to show
        if _nothing_on_screen(ctx, review_id, cursor.item):
            return view(ctx, cursor, review_id, model, rate, show, None)
        order, position = _position(ctx, review_id, model, rate, show, cursor.item)
        if not len(order):  # another tab decided the filter's last images
            return view(ctx, cursor, review_id, model, rate, show, None)
        index = position // PAGE * PAGE + event.index
        return view(ctx, cursor, review_id, model, rate, show, int(order[min(index, len(order) - 1)]))
    return _in_place(ctx, cursor, move, review_id, model, rate, show)


def edit(ctx, review_id: str, model: dict, rate: float, shown: dict | None = None, request: gr.Request = None) -> dict:
    """Open the mask editor on the image on screen (`_on_screen`), with the mask to start from as its layer (nothing on
    screen: nothing)."""
    cursor = ctx.cursor(request)
    _known(cursor)
    on_screen = _on_screen(ctx, review_id, cursor, shown)
    if _nothing_on_screen(ctx, review_id, on_screen):
        return {}
    session, item = _shown_item(ctx, review_id, on_screen, "nothing to review")
    _, threshold = judged_at(ctx, session, model, rate)
    image, mask = rules.editor_canvas(session, item.id, threshold)  # a large image is edited at a smaller size
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[mask] = (255, 0, 0, MASK_ALPHA)
    # the canvas takes the picture's size, or the layer is drawn (and saved) off the image
    # One short line: a title of two or three (a long file name, the strip's note) lay over the picture's top, where
    # nothing could be seen or painted. The image's name is in the review's text above, which any move closes the editor on.
    folded = " (the long strip in pieces)" if mask.shape != shown_size(item.height, item.width) else ""
    editor = gr.update(value={"background": image, "layers": [layer], "composite": None}, canvas_size=mask.shape[::-1],
                       visible=True, label=f"Paint the defect{folded}")
    decided = session.decision(item.id)
    cursor.editing = {"item": item.id, "threshold": threshold, "decided": decided.timestamp if decided else None}
    return {"editor": editor, "save": gr.update(visible=True)}


def save_mask(ctx, edited: dict | None, review_id: str, model: dict, rate: float, show: str,
              request: gr.Request = None) -> dict:
    """Store the painted mask on the image the editor was opened for (`Cursor.editing`), as a correction; the mask it
    opened with is the model's at the threshold of then, which may have moved since."""
    cursor = ctx.cursor(request)
    _known(cursor)  # (the editor's image is gone with the server's state too)
    editing = cursor.editing
    if editing is None or not edited:
        raise rbd.NoImagesError("nothing to save: press Edit mask (e) on the image first")
    session, item = _shown_item(ctx, review_id, editing["item"], "nothing to save: press Edit mask (e) on the image first")
    _, threshold = judged_at(ctx, session, model, rate)
    mask = rules.painted_mask(session, item.id, edited.get("layers") or [], editing["threshold"])

    def move() -> dict:
        other = _decided_since(editing, session, item, cursor)
        if other is not None:  # the paint stays in the editor, and a second Save stores it
            editing["decided"] = other.timestamp
            raise rbd.InvalidInputError(f"{item.file_name}: another tab decided it ({other.decision}) since this editor "
                                        "opened: press Save again to replace that decision with this mask")
        cursor.decided = (item.id, session.decide(item.id, "correct", threshold, mask).timestamp)
        return view(ctx, cursor, review_id, model, rate, show, item.id)
    return cursor.press(move)


def export(ctx, review_id: str, model: dict, rate: float, request: gr.Request = None) -> dict:
    """The review's zip at the page's threshold; none where a decision, a mask or the threshold changed while it was
    written (`export_taken_away`): it holds the review as it was, and the page already says otherwise."""
    session = ctx.review(review_id)
    if session is None:
        raise rbd.NoImagesError("nothing to export yet")
    cursor = ctx.cursor(request)
    taken = cursor.exports_taken
    _, threshold = judged_at(ctx, session, model, rate)
    written = rules.export_zip(session, ctx.export_folder() / "review.zip", threshold)
    if cursor.exports_taken != taken:
        notify("the review or its threshold changed while its zip was written: press Export again for a zip of the "
               "review as it is now")
        return {}
    return {"export_file": str(written)}


def recalibrate(ctx, review_id: str, model: dict, rate: float, confirmed: bool = False) -> dict:
    """The active model judged by a calibration that also counts the images reviewed as good, at the bar's `rate` (%):
    the model's own rate, which it jumped back to, judged by another threshold than the one the user had set. One that
    would flag none of the synthetic defects, or that counts images accepted as good that score like them, is held
    back with a warning until confirmed."""
    session = ctx.review(review_id)
    if session is None or not session.items:
        raise rbd.NoImagesError("review some images first")
    if not session.is_scored_by(ctx.detector(model).calibration):
        raise rbd.InvalidInputError(f"this review was scored by {session.scored_by.name}, not the active model: "
                                    "re-score it with the active model first")
    # from the bar's recalibration by another review, where one is applied: its images stay counted
    calibration = rules.recalibrated(session, rate / 100, model_bar.recalibrated_by_review(ctx, model))
    reasons = []
    if calibration.caught(calibration.threshold) == 0.0:
        reasons.append(f"the recalibrated raw threshold {calibration.threshold:.4f} would flag none of the synthetic defects, "
                       "so it would likely miss real ones too")
    suspects = rules.good_like_defects(session)
    if suspects:
        named = some([f"{name} ({score:.4f})" for name, score in suspects])
        reasons.append(f"{len(suspects)} image(s) accepted as good score like the synthetic defects: {named}")
    if reasons and not confirmed:
        warning = ("⚠️ Not applied: " + "; ".join(reasons) + ". Check that the images accepted as good really are good, "
                   "or apply it anyway.")
        return {"warning": gr.update(value=warning, visible=True), "anyway": gr.update(visible=True)}
    recalibrated = model_bar.recalibrated(ctx, model, calibration)
    rate = model_bar.model_rate(calibration)  # the bar's, within the slider's range
    gr.Info(f"recalibrated: raw threshold {model_bar.threshold(ctx, recalibrated, rate):.4f} for {rate:.4g}% expected false alarms")
    return {"model": recalibrated, "rate": rate, "info": model_bar.info(ctx, recalibrated, rate),
            "warning": gr.update(value="", visible=False), "anyway": gr.update(visible=False)}


def recalibrate_anyway(ctx, review_id: str, model: dict, rate: float) -> dict:
    """A recalibration applied despite its warning."""
    return recalibrate(ctx, review_id, model, rate, confirmed=True)


def review_id_state(ctx) -> gr.BrowserState:
    """The browser's review id, kept in its storage. It must be created outside the tabs: a state in a
    tab not yet opened is not restored when the page loads."""
    return gr.BrowserState("", storage_key="rbd-review-session", secret=ctx.state_secret)


def layout(ctx, review_id: gr.BrowserState) -> Review:
    # a component, not a gr.State: an event reads a state's value on the server, which the views still queued behind
    # a held arrow key have moved on, while this one's value is the page's, drawn with the view it shows
    shown = gr.JSON(None, visible="hidden", elem_id="review-shown")
    with gr.Row():
        files = NamedFiles(file_count="multiple", label="Images or zips to review", scale=2, elem_id="review-files")
        folder = gr.File(file_count="directory", label="…or a whole folder", scale=1, elem_id="review-folder",
                         elem_classes=["rbd-folder"])
        picked = gr.JSON(visible=False)  # the picked folders' paths, filled in by the page when Score is pressed
        with gr.Column(scale=1):
            score_button = gr.Button("Score images", variant="primary", elem_id="review-score")
            with gr.Row():
                new = gr.Button("Start a new review", size="sm", elem_id="review-new")
                leave = gr.Checkbox(True, visible=False)  # the page's question answered (NEW_QUESTION); yes for an API client
                rescore_button = gr.Button("Re-score with the active model", size="sm", elem_id="review-rescore")
            status = gr.Markdown(elem_id="review-status")
    scored_by = gr.Markdown(elem_id="review-model")
    show_filter = gr.Radio(FILTERS, value="all", label="Show", elem_id="review-filter")
    with gr.Row():
        # at least 360 px wide: in a narrower window it goes above the current image instead of a one-column strip
        gallery = gr.Gallery(label="Sorted by score (this page)", columns=4, height=520, allow_preview=False, scale=2, min_width=360,
                             object_fit="contain", elem_id="review-gallery", elem_classes=["rbd-gallery"])
        # at least 480 px: narrower, the mask editor's title ran into its toolbar; then the gallery goes above instead
        with gr.Column(scale=2, min_width=480):
            text = gr.Markdown(elem_id="review-text")
            # JPEG: PNG's encoding was most of a key press's cost on the server (bench.app_review, BENCHMARKS.md); masks
            # are read from the decisions, never from this picture
            image = gr.Image(label="Current image", format="jpeg", interactive=False, height=420, elem_id="review-image")
            with gr.Row():
                prev = gr.Button("← Previous", elem_id="review-prev", size="sm")
                accept = gr.Button("Accept verdict (a)", variant="primary", elem_id="review-accept", size="sm")
                reject = gr.Button("Reject verdict (r)", variant="stop", elem_id="review-reject", size="sm")
                edit_button = gr.Button("Edit mask (e)", elem_id="review-edit", size="sm")
                next_button = gr.Button("Next →", elem_id="review-next", size="sm")
            editor = gr.ImageEditor(type="numpy", format="png", image_mode="RGBA", visible=False, label="Paint the defect", height=600,
                                    brush=gr.Brush(colors=[("#ff0000", MASK_ALPHA / 255)], color_mode="fixed", default_size=12),
                                    layers=gr.LayerOptions(allow_additional_layers=False, layers=["mask"]), transforms=(), sources=(),
                                    elem_id="review-editor")
            save = gr.Button("Save corrected mask", visible=False, elem_id="review-save")
    metrics = gr.Markdown(elem_id="review-metrics")
    with gr.Row():
        export_button = gr.Button("Export decisions (zip)", elem_id="review-export")
        export_file = gr.File(label="Export", interactive=False, elem_id="review-export-file")
        recalibrate_button = gr.Button("Recalibrate threshold from reviewed images", elem_id="review-recalibrate")
    recalibrate_warning = gr.Markdown(visible=False, elem_id="review-recalibrate-warning")
    recalibrate_anyway = gr.Button("Apply this threshold anyway", visible=False, variant="stop", elem_id="review-recalibrate-anyway")
    return Review(review_id, files, folder, picked, score_button, new, leave, rescore_button, status, scored_by, show_filter,
                  gallery, text, image, prev, accept, reject, edit_button, next_button, editor, save, shown, metrics, export_button,
                  export_file, recalibrate_button, recalibrate_warning, recalibrate_anyway)


def _view_outputs(area: Review) -> dict:
    return {"gallery": area.gallery, "text": area.text, "image": area.image, "metrics": area.metrics, "scored_by": area.scored_by,
            "editor": area.editor, "save": area.save, "shown": area.shown}


def wire(ctx, area: Review, bar: model_bar.ModelBar, rejudge) -> None:
    outputs = _view_outputs(area)
    state = [area.review_id, bar.model, bar.rate, area.show]
    # the boxes and the button are locked while their files are scored: files added meanwhile went unscored with the
    # scored ones when the boxes were emptied, and a second press was dropped unseen; and Start a new review, which the
    # scoring's end undid (it gave the page back the review it scored into)
    uploads = [area.files, area.folder, area.score, area.new]
    locked = area.score.click(lambda: [gr.update(interactive=False)] * len(uploads), None, uploads, queue=False,
                              api_visibility="private")
    joined = on(locked.then, joined_review, ctx, [area.files, area.folder, area.review_id, bar.browser, bar.model], {"review_id": area.review_id},
                api_visibility="private")
    scored = on(joined.then, score, ctx, [area.files, area.folder, area.review_id, bar.model, area.picked],
                {"review_id": area.review_id, "status": area.status}, js=PICKED, api_name="review_score",
                concurrency_limit=INFERENCE_LIMIT, concurrency_id="inference", show_progress_on=[area.status])
    on(scored.then, show, ctx, state, outputs, api_name="review_list", **IN_ORDER)
    # scored images leave the upload boxes, so that pressing Score again does not add them twice
    scored.success(None, [], [area.files, area.folder], js=SCORED, api_visibility="private")
    _takes_export_away(ctx, scored.success, area)
    on(scored.success, remember_review, ctx, [area.review_id, bar.browser], {"review_id": area.review_id}, api_visibility="private")
    _takes_export_away(ctx, area.review_id.change, area)
    for ended in (scored.then, scored.failure, joined.failure):  # Gradio runs `.then` after a success alone: a failed
        # Score (no image in the boxes, none readable) left the boxes and the button locked until the page was reloaded
        ended(lambda: [gr.update(interactive=True)] * len(uploads), None, uploads, queue=False, api_visibility="private")
    area.folder.clear(None, [], [], js=FORGET_PICKED, api_visibility="private")
    rescored = on(area.rescore.click, rescore, ctx, [area.review_id, bar.model], {"status": area.status}, api_name="review_rescore",
                  concurrency_limit=INFERENCE_LIMIT, concurrency_id="inference", show_progress_on=[area.status])
    on(rescored.then, show, ctx, state, outputs, api_visibility="private", **IN_ORDER)
    _takes_export_away(ctx, rescored.success, area)
    started = on(area.new.click, new_review, ctx, [area.leave], {"review_id": area.review_id, "status": area.status},
                 api_name="review_new", js=NEW_QUESTION)
    on(started.then, show, ctx, state, outputs, api_visibility="private", **IN_ORDER)
    on(started.success, remember_review, ctx, [area.review_id, bar.browser], {"review_id": area.review_id}, api_visibility="private")
    on(area.show.change, show, ctx, state, outputs, api_visibility="private", **IN_ORDER)

    # every key press counts (the tab's cursor orders them) and its view is drawn in turn
    fast = dict(show_progress="hidden", trigger_mode="multiple", **IN_ORDER)
    for button, decision in ((area.accept, "accept"), (area.reject, "reject")):
        decided = on(button.click, _bound(decide, decision), ctx, [*state, area.shown], outputs, api_name=f"review_{decision}", **fast)
        _takes_export_away(ctx, decided.success, area)
    for button, delta, name in ((area.prev, -1, "review_previous"), (area.next, 1, "review_next")):
        on(button.click, _bound(step, delta), ctx, state, outputs, api_name=name, **fast)
    on(area.gallery.select, select, ctx, state, outputs, api_visibility="private", **fast)
    on(area.edit.click, edit, ctx, [area.review_id, bar.model, bar.rate, area.shown],
       {"editor": area.editor, "save": area.save}, api_name="review_edit", **fast)
    saved = on(area.save.click, save_mask, ctx, [area.editor, area.review_id, bar.model, bar.rate, area.show],
               outputs, api_name="review_save_mask", **fast)
    _takes_export_away(ctx, saved.success, area)
    on(area.export.click, export, ctx, [area.review_id, bar.model, bar.rate], {"export_file": area.export_file},
       api_name="review_export", show_progress_on=[area.export])  # a refusal's badge on the button, not on the file box
    recalibrated_outputs = {"model": bar.model, "rate": bar.rate, "info": bar.info, "warning": area.recalibrate_warning,
                            "anyway": area.recalibrate_anyway}
    recalibrated = on(area.recalibrate.click, recalibrate, ctx, [area.review_id, bar.model, bar.rate], recalibrated_outputs,
                      api_name="review_recalibrate", show_progress_on=[area.recalibrate])
    rejudge(recalibrated.success)
    confirmed = on(area.recalibrate_anyway.click, recalibrate_anyway, ctx, [area.review_id, bar.model, bar.rate],
                   recalibrated_outputs, api_name="review_recalibrate_anyway", show_progress_on=[area.recalibrate_anyway])
    rejudge(confirmed.success)


def _closed_editor() -> dict:
    """What closes the mask editor: every view (`view`) but one after the threshold or the model moved (`rejudged`)."""
    return {"editor": gr.update(visible=False), "save": gr.update(visible=False)}


def rejudged(ctx, review_id: str, model: dict, rate: float, shown_filter: str, request: gr.Request = None) -> dict:
    """The review shown again after the threshold or the model moved (`show`), an open mask editor (the server's record
    of it, `Cursor.editing`) left as it is: its paint is the inspector's work, and a threshold typed while painting
    threw it away. Where the image painted left the view, the message says that Save still goes to it."""
    cursor = ctx.cursor(request)

    def move() -> dict:
        editing = cursor.editing
        if editing is None:
            return view(ctx, cursor, review_id, model, rate, shown_filter, cursor.item)
        try:  # on the image painted, where the view still holds it
            shown = view(ctx, cursor, review_id, model, rate, shown_filter, editing["item"])
        finally:  # also where the view failed: the editor stays open on the page, its paint unsaved
            cursor.editing = editing
        session = ctx.review(review_id)
        if cursor.item != editing["item"] and session is not None and not editing.get("told"):
            editing["told"] = True  # once, not at every step of a dragged threshold
            notify(f"{session.item(editing['item']).file_name}, whose mask is being painted, is no longer in this view; "
                   "Save still stores the mask on it")
        return {name: value for name, value in shown.items() if name not in _closed_editor()}
    return cursor.press(move)


def rejudge(ctx, area: Review, bar: model_bar.ModelBar, trigger, api: bool = False) -> None:
    """After the threshold or the model changed: the review shown again, judged anew (`rejudged`)."""
    on(trigger, rejudged, ctx, [area.review_id, bar.model, bar.rate, area.show], _view_outputs(area),
       show_progress="hidden", trigger_mode=REJUDGE_MODE, **IN_ORDER, **endpoint(api, "review_rethreshold"))
    _takes_export_away(ctx, trigger, area)


def _takes_export_away(ctx, trigger, area: Review) -> None:
    """`trigger` empties the Export box: its zip holds the review as it was when made (its decisions, scores and
    verdicts at that threshold), and after Start a new review it offered the closed review's decisions."""
    on(trigger, export_taken_away, ctx, [], {"export_file": area.export_file}, queue=False, api_visibility="private")


def export_taken_away(ctx, request: gr.Request = None) -> dict:
    """The Export box emptied, and an export under way told so (`export`)."""
    ctx.cursor(request).exports_taken += 1
    return {"export_file": None}


def _bound(fn, first):
    """`fn` with its first argument after the context fixed (which decision, which direction)."""
    def handler(ctx, *args, **kwargs):
        return fn(ctx, first, *args, **kwargs)
    parameters = list(inspect.signature(fn).parameters.values())
    del parameters[1]
    handler.__name__ = f"{fn.__name__}_{first}"
    handler.__signature__ = inspect.Signature(parameters)
    handler.__annotations__ = {name: hint for name, hint in typing.get_type_hints(fn).items()
                               if name in {p.name for p in parameters}}
    return handler
