"""The app in a real browser: Debian's chromium driven by Playwright against a server launched in-process.

Covers what the API tests cannot: uploads through the page's file inputs, button wiring, the rendered
Markdown, the keyboard shortcuts attached by `launch(js=PAGE_SCRIPT)`, the mask editor's canvas, and
downloading the export zip. The tests share one page and run in order (the fine-tune comes last, as
it changes the active model). Needs `apt-get install -y chromium` (never `playwright install`).
The steps wait generously: the machine may be busy with other work.
"""

import base64
import contextlib
import csv
import io
import json
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import _defective_image, _normal_image, _save
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from rbd import review
from rbd.review import ReviewSession
from rbd.thresholds import threshold_at

WAIT_MS = 60_000  # per step
expect.set_options(timeout=WAIT_MS)
MODEL_RATE = "0.1"  # % : the session detector's calibrated false-alarm rate
SCREENSHOTS = Path(os.environ.get("RBD_SCREENSHOTS", "")) if os.environ.get("RBD_SCREENSHOTS") else None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("the browser test needs Debian's chromium: run `apt-get install -y chromium` "
                    "(do not use `playwright install`)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser(chromium):
    """One Playwright driver and browser for the module: the sync API allows one driver per thread."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


def new_page(browser, messages=None):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    # the machine is offline: fail requests that leave the local server at once (e.g. web fonts)
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    if messages is not None:
        page.on("console", lambda m: messages.append(f"console.{m.type}: {m.text}"))
        page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    return page


@contextlib.contextmanager
def own_page(browser, app_server, tab: str):
    """A page of its own on `tab` (a review, an active model of its own), so the shared page's state stays as it is."""
    page = new_page(browser)
    try:
        page.goto(app_server[0], wait_until="domcontentloaded")
        loaded(page)
        page.get_by_role("tab", name=tab).click()
        yield page
    finally:
        page.context.close()


def loaded(page):
    """app.load has loaded the model once its line (with the raw threshold) is shown."""
    expect(page.locator("#model-info")).to_contain_text("raw threshold")


@pytest.fixture(scope="module")
def page(browser, app_server):  # the browser first: fail before training and launching anything
    messages = []
    page = new_page(browser, messages)
    page.goto(app_server[0], wait_until="domcontentloaded")
    loaded(page)
    yield page
    print("\n".join(messages))  # browser console: pytest shows it in the last test's report if that test failed
    page.context.close()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Images the app has never seen: a tall defective part, a tall good one of the same size, and a long strip."""
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(7)
    tall, _ = _defective_image(rng, 160, 48)
    _save(tall, folder / "tall_part.png")
    _save(_normal_image(rng, 160, 48), folder / "tall_other.png")
    _save(_normal_image(rng, 50, 2000), folder / "strip.png")
    return folder


def blur(page):
    """Shortcuts are ignored while typing in an input; move focus back to the page."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def shot(page, name):
    """A full-page screenshot for a person to look at, when RBD_SCREENSHOTS names a folder."""
    if SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def clear(page, box: str):
    """Empty an upload box (an image box's button is "Remove Image", a file box's "Clear")."""
    button = page.locator(f"{box} button[aria-label='Remove Image'], {box} button[aria-label='Clear']")
    if button.count():
        button.first.click()



def open_editor(page, label: str) -> dict:
    """Press `e` on the review image shown, wait for the mask editor labelled `label`, take its brush;
    returns the canvas's box on the page."""
    blur(page)
    page.keyboard.press("e")
    editor = page.locator("#review-editor")
    expect(editor).to_contain_text(label)
    time.sleep(2)  # the canvas is drawn anew for the image
    canvas = editor.locator("canvas").first
    canvas.scroll_into_view_if_needed()
    title = editor.locator("label[data-testid=block-label]")
    expect(title).to_be_visible()
    assert title.bounding_box()["height"] < 40, title.bounding_box()  # one line: two or three lay over the picture's top
    editor.locator("button[aria-label=Brush]").click()
    tools = editor.locator(".toolbar-wrap:has(button[aria-label=Brush])").bounding_box()
    assert tools["x"] <= canvas.bounding_box()["x"] + 1, tools  # at the edge: 15 px in, over the picture's left edge
    expect(editor.locator("button[aria-label='Clear canvas']")).to_be_hidden()  # it cleared the picture too
    expect(editor.locator("button[aria-label=Erase]")).to_be_visible()
    return canvas.bounding_box()

def assert_captions_clear_pictures(page, gallery: str):
    """Each caption lies under its picture, and the first row under the gallery's label: Gradio laid captions over
    the lower part of thumbnails and the label over the first row's top."""
    label = page.locator(f"{gallery} [data-testid=block-label]").bounding_box()
    items = page.locator(f"{gallery} .thumbnail-item")
    for i in range(items.count()):
        picture, caption = (items.nth(i).locator(part).bounding_box() for part in ("img", ".caption-label"))
        assert caption["y"] >= picture["y"] + picture["height"] - 1, (i, picture, caption)
        assert picture["y"] >= label["y"] + label["height"], (i, picture, label)
    items.first.hover()  # Gradio faded the caption under the pointer to half
    assert items.first.locator(".caption-label").evaluate("e => getComputedStyle(e).opacity") == "1"


def set_rate(page, rate: str):
    """Type a rate in the threshold's box and press Enter, without leaving the box."""
    box = page.locator("#threshold input[type=number]")
    box.fill(rate)
    box.press("Enter")


def inspect(page, files, box="#inspect-files"):
    page.get_by_role("tab", name="Inspect").click()
    page.locator(f"{box} input[type=file]").set_input_files([str(f) for f in files])
    if box == "#inspect-files":
        expect(page.locator(box).get_by_role("cell", name=Path(files[-1]).name).first).to_be_visible()
    page.locator("#inspect-run").click()


def review_session(app_server, file_name) -> ReviewSession:
    """The review (on disk) holding an image of this name."""
    for folder in (app_server[1] / "work" / "reviews").iterdir():
        session = ReviewSession.open(folder.parent, folder.name)
        if session is not None and any(item.file_name == file_name for item in session.items):
            return session
    raise AssertionError(f"no review holds {file_name}")


def test_an_empty_inspect_panel_says_what_to_do(page):
    expect(page.locator("#inspect-summary")).to_contain_text("press Inspect")
    expect(page.locator("#heat-legend")).to_contain_text("at the threshold")
    expect(page.get_by_text("bottle broken large")).to_be_visible()  # examples carry names
    shot(page, "1-inspect-empty")


def test_inspect_an_uploaded_image(page, detector, parts):
    example = parts[1][0]
    page.locator("#inspect-image input[type=file]").set_input_files(str(example))
    expect(page.locator("#inspect-image img")).to_have_attribute("src", re.compile("."))  # uploaded
    page.locator("#inspect-run").click()
    summary = page.locator("#inspect-summary")
    expect(summary).to_contain_text(example.name)
    text = summary.inner_text()
    expected = detector.predict(example)
    assert expected.verdict.upper() in text and example.name in text, text
    score = float(re.search(r"anomaly score\s+([0-9.]+)", text).group(1))
    assert score == pytest.approx(expected.score, abs=1e-4)  # the file itself was scored, not a re-encoded copy
    expect(page.locator("#inspect-overlay img")).to_have_attribute("src", re.compile("."))
    with page.expect_download() as download:  # the mask, as `rbd predict` writes it
        page.locator("#inspect-mask-file tr").filter(has_text=f"{example.stem}_mask").locator("a").click()
    assert download.value.suggested_filename == f"{example.stem}_mask.png"
    np.testing.assert_array_equal(np.asarray(Image.open(download.value.path())) > 0, expected.mask)
    label = page.locator("#inspect-annotated label").first.bounding_box()  # the mask's picture starts below its label:
    picture = page.locator("#inspect-annotated img.base-image").bounding_box()  # a defect at a tall one's top left was hidden
    masks = page.locator("#inspect-annotated img.mask").first.bounding_box()
    assert picture["y"] >= label["y"] + label["height"] and masks["y"] == picture["y"], (label, picture, masks)
    with page.expect_download() as download:  # the overlay, named after its file too (it was "image.jpeg")
        page.locator("#inspect-overlay a[download]").click()
    assert download.value.suggested_filename == f"{example.stem}_overlay.jpg"
    shot(page, "2-inspect")


def test_a_long_file_name_leaves_the_verdict_in_sight(page, parts, tmp_path):
    """A camera's file name (no spaces) took the whole width of the results table: score and verdict were off it."""
    long = tmp_path / f"IMG_20261205_081500_line3_cam2_part000123_{'x' * 30}.png"
    shutil.copy(parts[1][0], long)
    wide = page.viewport_size
    page.set_viewport_size({"width": 800, "height": wide["height"]})
    try:
        clear(page, "#inspect-image")  # the picker shows the first image inspected
        clear(page, "#inspect-files")
        inspect(page, [long])
        expect(page.locator("#inspect-summary")).to_contain_text(long.name)
        table = page.locator("#inspect-results")
        box, verdict = table.bounding_box(), table.locator("td").filter(has_text=re.compile(r"^(good|defective)$")).first.bounding_box()
        assert verdict["x"] + verdict["width"] <= box["x"] + box["width"], (box, verdict)
        assert box["width"] >= 480, box  # 368 px beside the upload boxes broke scores and verdicts ("28.01 / 12", "defect / ive")
        legend = [(item.bounding_box()["x"], item.inner_text().strip()) for item in page.locator("#inspect-annotated .legend-item").all()]
        assert len(legend) > 1 and min(legend)[1] == "defect", legend  # first in the mask's legend, before the regions
        regions = page.locator("#inspect-regions")  # a defective part's regions: their boxes in sight too
        expect(regions.locator("tbody tr").first).to_contain_text("1")
        box, last = regions.bounding_box(), regions.locator("tbody tr").first.locator("td").last.bounding_box()
        assert last["x"] + last["width"] <= box["x"] + box["width"], (box, last)
        # the name in the picker ends before its arrow, not under it
        picker = page.get_by_label("Image shown")
        expect(picker).to_have_value(long.name)
        assert picker.evaluate("e => e.scrollWidth > e.clientWidth")  # too long for its box
        text_end, arrow = picker.evaluate("e => [e.getBoundingClientRect().right - parseFloat(getComputedStyle(e).paddingRight), "
                                          "e.parentElement.querySelector('.icon-wrap').getBoundingClientRect().left]")
        assert text_end <= arrow + 0.5, (text_end, arrow)
        label = page.locator("#inspect-pair [data-testid=block-label]").bounding_box()  # the slider's buttons covered its label
        beside = [b for b in (button.bounding_box() for button in page.locator("#inspect-pair button").all())
                  if b and b["y"] < label["y"] + label["height"] and b["y"] + b["height"] > label["y"]]
        assert beside and label["x"] + label["width"] <= min(b["x"] for b in beside), (label, beside)
    finally:
        page.set_viewport_size(wide)
        clear(page, "#inspect-files")


def test_on_a_phone_the_tables_keep_their_words_whole_and_a_row_clicked_is_shown(page, parts):
    """At 390 px the results and regions tables broke numbers and headings mid-word ("24.9 / 685", "scor / e"), and a
    row clicked redrew its image some 1,500 px above, out of sight."""
    wide = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        clear(page, "#inspect-image")
        clear(page, "#inspect-files")
        inspect(page, [parts[1][0], *parts[0][:3]])
        expect(page.locator("#inspect-results")).to_contain_text(parts[0][2].name)
        for table in ("#inspect-results", "#inspect-regions"):
            assert_words_whole(page, table)
        page.locator("#inspect-results .body-cell").filter(has_text=parts[0][1].name).first.click()
        expect(page.locator("#inspect-summary")).to_contain_text(parts[0][1].name)
        expect(page.locator("#inspect-summary")).to_be_in_viewport()
    finally:
        page.set_viewport_size(wide)
        clear(page, "#inspect-files")


def assert_words_whole(page, table: str) -> None:
    """No word of the table's headings and cells (a number, "score") is broken over two lines, as in a narrow share."""
    words = page.locator(f"{table} :is(th, .body-cell) span").evaluate_all(
        "spans => spans.filter(s => s.offsetParent && s.innerText.trim()).map(s => [s.innerText, s.offsetHeight])")
    line = min(height for _, height in words)
    broken = [text for text, height in words if not any(c in text.strip() for c in " _/") and height > 1.5 * line]  # names wrap
    assert len(words) >= 8 and not broken, (table, words)


@pytest.mark.parametrize("name, content", [("text.png", b"not an image at all"), ("empty.png", b"")])
def test_a_bad_file_in_the_image_box_is_named(page, tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    clear(page, "#inspect-image")
    page.locator("#inspect-image input[type=file]").set_input_files(str(tmp_path / name))
    page.locator("#inspect-run").click()
    toast = page.locator(".toast-body").filter(has_text=name).first
    expect(toast).to_contain_text(f"{name}: ")
    assert "/" not in toast.inner_text().split("\n", 1)[-1], toast.inner_text()  # no server path
    badge, words = (page.locator(f"#inspect-summary {part}").first.bounding_box() for part in (".error", "[data-testid=markdown] p"))
    assert badge["y"] + badge["height"] <= words["y"] + 1, (badge, words)  # above the summary's text: it lay over its words
    page.locator(".toast-body .toast-close").first.click()


def test_a_second_drop_scores_each_file_once(page, parts):
    good, bad = parts
    clear(page, "#inspect-image")
    files = page.locator("#inspect-files input[type=file]")
    files.set_input_files([str(good[0]), str(good[1])])
    expect(page.locator("#inspect-files").get_by_role("cell", name=good[1].name).first).to_be_visible()
    files.set_input_files([str(good[0]), str(good[1])])  # dropped again: the list holds each twice
    expect(page.locator("#inspect-files").get_by_role("cell", name=good[0].name)).to_have_count(2)
    page.locator("#inspect-run").click()
    results = page.locator("#inspect-results")
    expect(results.locator(".body-cell").filter(has_text=".png")).to_have_count(2)  # this run's table, not one before
    expect(results).to_contain_text(good[1].name)
    expect(results).to_contain_text(good[0].name)
    text = results.inner_text()
    assert "_1.png" not in text and text.count(good[0].name) == text.count(good[1].name) == 1, text
    shown = re.search(r"anomaly score (\d+\.\d{4}) · normalised (\d+\.\d{3})", page.locator("#inspect-summary").inner_text())
    assert shown and shown[1] in text and shown[2] in text, text  # the table quotes the heading's digits


DROP_FOLDER = """([entries, box]) => {
  // The entries of a folder dropped from the desktop, as Chromium hands them over: a folder's reader gives its
  // children a batch at a time (here one per batch), then an empty batch. A page cannot make real ones.
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const entry = (path, content) => {
    const name = path.split("/").pop();
    if (typeof content === "string") {
      return {isFile: true, isDirectory: false, name, fullPath: "/" + path, file: (done) => done(new File([bytes(content)], name))};
    }
    const children = Object.entries(content).map(([child, inner]) => entry(path + "/" + child, inner));
    return {isFile: false, isDirectory: true, name, fullPath: "/" + path,
            createReader: () => { let next = 0; return {readEntries: (done) => done(children.slice(next, ++next))}; }};
  };
  const items = Object.entries(entries).map(([name, content]) => ({webkitGetAsEntry: () => entry(name, content)}));
  const zone = document.querySelector(box + " input[type=file]").parentElement;
  const drop = new Event("drop", {bubbles: true, cancelable: true});
  Object.defineProperty(drop, "dataTransfer", {value: {items, files: items.map(() => new File([], "line"))}});
  zone.dispatchEvent(drop);
}"""


def _encoded(path):
    return base64.b64encode(path.read_bytes()).decode()


def test_a_folder_dropped_on_inspects_files_box_scores_its_images(page, parts):
    """Inspect has no folder box: a folder dropped on its files box gives that box the folder's files."""
    good, bad = parts
    page.get_by_role("tab", name="Inspect").click()
    clear(page, "#inspect-image")
    clear(page, "#inspect-files")
    tree = {"line": {"good": {"dropped_good.png": _encoded(good[2])}, "broken": {"dropped_bad.png": _encoded(bad[1])}}}
    page.evaluate(DROP_FOLDER, [tree, "#inspect-files"])
    expect(page.locator("#inspect-files").get_by_role("cell", name="dropped_bad.png")).to_have_count(1)
    expect(page.locator("#inspect-files").get_by_role("cell", name="line")).to_have_count(0)  # not the folder as one file
    page.locator("#inspect-run").click()
    results = page.locator("#inspect-results")
    expect(results).to_contain_text("dropped_good.png")
    expect(results).to_contain_text("dropped_bad.png")


def test_typing_a_rate_rejudges_at_once_and_reset_restores_the_models(page, parts, detector):
    good, bad = parts
    clear(page, "#inspect-files")
    inspect(page, [bad[0]])
    summary = page.locator("#inspect-summary")
    expect(summary).to_contain_text(f"raw threshold {detector.threshold:.4f}")
    slider = page.locator("#threshold input[type=range]")
    assert (slider.get_attribute("min"), slider.get_attribute("max")) == ("0.01", "30")  # % of good parts flagged
    set_rate(page, "20")  # no blur: the verdicts follow while the box still has the focus
    loose = threshold_at(detector.calibration, 0.20)
    expect(summary).to_contain_text(f"raw threshold {loose:.4f}")
    expect(page.locator("#model-info")).to_contain_text(f"raw threshold {loose:.4f} for 20% expected false alarms")
    slider.focus()
    slider.press("ArrowRight")  # the arrow keys move the verdicts too
    expect(summary).to_contain_text(f"raw threshold {threshold_at(detector.calibration, 0.2001):.4f}")
    box = page.locator("#threshold input[type=number]")
    box.fill("")  # emptied: the rate before stays (Gradio sent none, failing every event, then its lowest once left)
    box.press("Enter")
    expect(box).to_have_value("20.01")
    blur(page)
    time.sleep(1)
    expect(box).to_have_value("20.01")
    expect(page.locator("#model-info")).to_contain_text("for 20.01% expected false alarms")
    expect(page.locator(".error")).to_have_count(0)
    page.locator("#model-choice input").click()  # the picker opened and left: Gradio sends its input at the blur, and
    blur(page)  # the active model was loaded again, its threshold back to its own
    time.sleep(2)
    expect(box).to_have_value("20.01")
    expect(summary).to_contain_text(f"raw threshold {threshold_at(detector.calibration, 0.2001):.4f}")
    page.locator("#threshold-reset").click()
    expect(page.locator("#threshold input[type=number]")).to_have_value(MODEL_RATE)
    expect(summary).to_contain_text(f"raw threshold {detector.threshold:.4f}")
    expect(page.locator("#model-info")).to_contain_text(f"raw threshold {detector.threshold:.4f} for {MODEL_RATE}% expected")


def test_a_long_strip_is_not_squashed(page, pictures, tmp_path):
    standing = tmp_path / "standing_strip.png"  # 50 x 2000, on its end
    Image.open(pictures / "strip.png").transpose(Image.Transpose.ROTATE_90).save(standing)
    clear(page, "#inspect-image")
    page.locator("#inspect-image input[type=file]").set_input_files(str(standing))
    expect(page.locator("#inspect-image img")).to_have_attribute("src", re.compile("."))
    assert page.locator("#inspect-image").bounding_box()["height"] <= 400  # it was 2700 px tall, Inspect far out of sight
    clear(page, "#inspect-image")
    clear(page, "#inspect-files")
    inspect(page, [pictures / "strip.png"])
    expect(page.locator("#inspect-summary")).to_contain_text("strip.png")
    image = page.locator("#inspect-overlay img")
    expect(image).to_have_attribute("src", re.compile("."))
    box = image.bounding_box()
    assert box["height"] >= 100, box  # folded into a block, not a 2000 x 50 sliver
    shot(page, "3-inspect-strip")


def test_a_failed_model_load_leaves_no_error_badges(page):
    page.get_by_label("…or Hub repo id (owner/name)").fill("acme/does-not-exist")
    page.locator("#load-model").click()
    toast = page.locator(".toast-body").filter(has_text="acme/does-not-exist").first
    expect(toast).to_be_visible()
    time.sleep(1)
    # the message, shown until closed, leaves the boxes and the button that mend it in sight (it lay over them)
    for place in ("#load-model", "#model-revision"):
        assert not overlap(toast.bounding_box(), page.locator(place).bounding_box()), place
    for place in ("#threshold", "#model-info"):
        expect(page.locator(place).get_by_text("Error", exact=True)).to_have_count(0)
    page.locator(".toast-body .toast-close").first.click()
    page.get_by_label("…or Hub repo id (owner/name)").fill("")


def overlap(a: dict, b: dict) -> bool:
    """Whether two bounding boxes share any area."""
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def test_evaluate_shows_where_the_ranking_goes_wrong(page, category, tmp_path):
    archive = shutil.make_archive(str(tmp_path / "stripes"), "zip", category.parent, category.name)
    page.get_by_role("tab", name="Evaluate").click()
    expect(page.locator("#eval-rows")).to_contain_text("normalised")  # an empty table, headed by its columns
    page.locator("#eval-zip input[type=file]").set_input_files(archive)
    expect(page.locator("#eval-zip").get_by_role("cell", name="stripes.zip").first).to_be_visible()
    page.locator("#eval-run").click()
    gallery = page.locator("#eval-misranked")
    expect(gallery.locator("img")).to_have_count(10)  # five good, five defective
    expect(gallery).to_contain_text("good #1 · score")
    expect(gallery).to_contain_text("defective #5 · score")
    metrics = page.locator("#eval-metrics").inner_text()
    assert re.search(r"image AUROC\s+1\.0000\b", metrics), metrics  # a perfect ranking, shown to the places of the others
    assert_captions_clear_pictures(page, "#eval-misranked")
    last = gallery.locator(".caption-label").last.bounding_box()
    assert last["y"] + last["height"] <= gallery.bounding_box()["y"] + gallery.bounding_box()["height"]  # not cut off below
    wide = page.viewport_size
    page.set_viewport_size({"width": 600, "height": 500})  # a phone's window
    try:
        gallery.locator(".thumbnail-item").first.click()  # enlarged, it fits the window (it was laid over all ten, as tall)
        expect(gallery.locator(".preview img").first).to_be_visible()
        assert gallery.bounding_box()["height"] <= 500, gallery.bounding_box()
        page.set_viewport_size({"width": 390, "height": 500})  # its caption whole (on one centred line, cut at both ends)
        caption = gallery.locator(".preview .caption").first
        expect(caption).to_contain_text("good #1 · score")
        shown, frame = caption.bounding_box(), gallery.bounding_box()
        assert frame["x"] <= shown["x"] and shown["x"] + shown["width"] <= frame["x"] + frame["width"], (shown, frame)
        gallery.locator("button[aria-label='Close']").click()
    finally:
        page.set_viewport_size(wide)
    expect(gallery.locator(".thumbnail-item img")).to_have_count(10)
    shot(page, "3b-evaluate")
    wide = page.viewport_size
    page.set_viewport_size({"width": 850, "height": wide["height"]})  # a narrow window: the values and verdicts still show
    try:
        for table, cell in (("#eval-metrics", "1.0000"), ("#eval-rows", "defective")):
            box, shown = page.locator(table).bounding_box(), page.locator(table).get_by_text(cell, exact=True).first.bounding_box()
            assert shown["x"] + shown["width"] <= box["x"] + box["width"], (table, box, shown)
        page.set_viewport_size({"width": 600, "height": wide["height"]})  # a phone's width: the metrics above the ROC curve
        assert page.locator("#eval-metrics").bounding_box()["width"] > 450
        box, verdict = (page.locator(part).bounding_box() for part in ("#eval-rows", "#eval-rows tbody tr >> nth=0 >> td >> nth=-1"))
        assert verdict["x"] + verdict["width"] <= box["x"] + box["width"], (box, verdict)  # the verdicts are not scrolled out of sight
        expect(page.locator("#eval-rows tbody tr").first.locator("td").last).to_have_text(re.compile(r"^\s*(good|defective)\s*$"))
        for width in (390, 520):  # phones: "defec / tive", "sco / re" (a helper's run; at 520 px too, a reviewer's)
            page.set_viewport_size({"width": width, "height": 844})
            assert_words_whole(page, "#eval-rows")
    finally:
        page.set_viewport_size(wide)
    # an upload that cannot be evaluated (good images only): the evaluation before goes, or a threshold move would
    # show it again beside the new zip as if it were that one's
    good_only = tmp_path / "good_only" / category.name
    shutil.copytree(category / "test" / "good", good_only / "test" / "good")
    archive = shutil.make_archive(str(tmp_path / "good_only"), "zip", good_only.parent, category.name)
    page.locator("#eval-zip button[aria-label='Clear']").first.click()
    page.locator("#eval-zip input[type=file]").set_input_files(archive)
    expect(page.locator("#eval-zip").get_by_role("cell", name="good_only.zip").first).to_be_visible()
    page.locator("#eval-run").click()
    expect(page.locator(".toast-body").filter(has_text="only test/good").first).to_be_visible()
    expect(page.locator("#eval-metrics")).to_contain_text("the last evaluation failed")
    expect(gallery.locator("img")).to_have_count(0)
    set_rate(page, "5")
    time.sleep(2)
    expect(page.locator("#eval-metrics")).not_to_contain_text("image AUROC")
    set_rate(page, MODEL_RATE)
    page.locator(".toast-body .toast-close").first.click()


def test_evaluates_notes_show_below_its_metrics_unscrolled(page, category, tmp_path):
    """At 850 px the metrics table stopped at Gradio's 500 px: its notes, last, lay below the metrics, scrolled out of
    sight within it."""
    noted = tmp_path / "noted" / category.name
    shutil.copytree(category, noted)
    shutil.copy(next((noted / "test" / "hole").iterdir()), noted / "test" / "hole" / "unmasked.png")  # a note: no mask
    yy, xx = np.mgrid[:64, :80]
    board = (((yy // 8 + xx // 8) % 2) * 255).astype(np.uint8)
    Image.fromarray(np.stack([board, 255 - board, board], axis=-1)).save(noted / "test" / "good" / "board.png")  # and one unlike
    archive = shutil.make_archive(str(tmp_path / "noted"), "zip", noted.parent, category.name)
    wide = page.viewport_size
    page.set_viewport_size({"width": 850, "height": wide["height"]})
    try:
        page.get_by_role("tab", name="Evaluate").click()
        clear(page, "#eval-zip")
        page.locator("#eval-zip input[type=file]").set_input_files(archive)
        expect(page.locator("#eval-zip").get_by_role("cell", name="noted.zip").first).to_be_visible()
        page.locator("#eval-run").click()
        metrics = page.locator("#eval-metrics")
        expect(metrics).to_contain_text("look unlike the model's training images")
        expect(metrics).to_contain_text("have no mask")
        inner = metrics.locator(".virtual-table-viewport").evaluate("v => [v.scrollHeight, v.clientHeight]")
        assert inner[0] <= inner[1] + 1, inner
    finally:
        page.set_viewport_size(wide)
        clear(page, "#eval-zip")


def test_review_with_keyboard_shortcuts_and_an_export_coco_can_evaluate(page, parts, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    good, bad = parts
    page.get_by_role("tab", name="Review").click()
    review_files = page.locator("#review-files")
    review_files.locator("input[type=file]").set_input_files([str(p) for p in good[:2] + bad[:2]])
    expect(review_files.get_by_role("cell", name=bad[1].name).first).to_be_visible()  # uploaded
    page.locator("#review-score").click()

    text, metrics = page.locator("#review-text"), page.locator("#review-metrics")
    expect(text).to_contain_text("1 / 4")
    expect(metrics).to_contain_text("Reviewed 0 of 4")
    expect(page.locator("#review-model")).to_contain_text("scored by stripes")

    blur(page)
    page.keyboard.press("a")
    expect(metrics).to_contain_text("Reviewed 1 of 4")
    expect(text).to_contain_text("2 / 4")
    page.keyboard.press("a")
    expect(metrics).to_contain_text("Reviewed 2 of 4")
    expect(text).to_contain_text("3 / 4")
    page.locator("#review-filter").get_by_text("all", exact=True).click()  # a filter chosen: the keys still work
    page.keyboard.press("ArrowLeft")
    expect(text).to_contain_text("2 / 4")
    expect(text).to_contain_text("decision: accept")
    captions = page.locator("#review-gallery").inner_text()
    assert captions.count("✓ accepted") == 2 and ".png" in captions, captions  # file names and decisions, not cut
    assert_captions_clear_pictures(page, "#review-gallery")
    wide = page.viewport_size
    page.set_viewport_size({"width": 600, "height": wide["height"]})  # a phone's width: the gallery above the image, whole
    try:
        gallery = page.locator("#review-gallery")
        assert gallery.bounding_box()["width"] > 400  # not a one-column strip of 200 px beside it
        last = gallery.locator(".thumbnail-item").last.bounding_box()  # and no taller than its pictures: it stayed 520 px,
        assert gallery.bounding_box()["y"] + gallery.bounding_box()["height"] < last["y"] + last["height"] + 40  # blank below
    finally:
        page.set_viewport_size(wide)
    shot(page, "4-review")

    page.locator("#review-export").click()
    link = page.locator("#review-export-file a[download]").first
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    with zipfile.ZipFile(path) as z:
        rows = list(csv.DictReader(io.StringIO(z.read("decisions.csv").decode())))
        coco = json.loads(z.read("coco.json"))
    assert sorted(r["decision"] for r in rows) == ["", "", "accept", "accept"], rows
    assert len(coco["images"]) == 2 and coco["annotations"]  # the two accepted defective parts
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    truth = COCO(str(tmp_path / "coco.json"))
    evaluation = COCOeval(truth, truth.loadRes([{**a, "score": 1.0} for a in coco["annotations"]]), "segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_an_empty_filter_says_so(page):
    text = page.locator("#review-text")
    page.locator("#review-filter").get_by_text("grey zone (near the threshold)").click()
    expect(text).not_to_contain_text(" / 4")  # the grey zone's view drawn (it holds fewer images), not the earlier one
    page.locator("#review-filter").get_by_text("all", exact=True).click()
    expect(text).to_contain_text(" / 4")  # so this is the view of "all": a key pressed before it would be undone by it
    blur(page)
    for _ in range(3):  # quick presses: each one counts, each from where the one before ended
        page.keyboard.press("ArrowRight")
    expect(page.locator("#review-text")).to_contain_text("4 / 4")
    page.locator("#review-filter").get_by_text("flagged defective").click()  # the image shown is not flagged:
    expect(page.locator("#review-text")).to_contain_text(re.compile(r"1 / [12] "))  # the first of them, not a place past the end
    page.locator("#review-filter").get_by_text("unreviewed").click()
    expect(page.locator("#review-text")).to_contain_text(re.compile(r"^\s*1 / 2 "))
    blur(page)
    page.keyboard.press("a")
    expect(page.locator("#review-text")).to_contain_text(re.compile(r"^\s*1 / 1 "))
    page.keyboard.press("a")
    expect(page.locator("#review-text")).to_contain_text("No image in this view (unreviewed; 4 scored)")
    shot(page, "4b-review-filter-empty")


@pytest.mark.parametrize("box", ["#review-folder", "#review-files"])
def test_a_folder_dropped_on_reviews_boxes_is_scored_with_its_paths(browser, app_server, parts, box):
    """Gradio takes a drop's files, where a dropped folder is one entry and none of its files; the page
    reads the folder's files from the drop's entries and hands them to the folder box with their paths,
    also when the folder is dropped on the box of loose files beside it."""
    good, bad = parts
    with own_page(browser, app_server, "Review") as page:
        tree = {"line": {"good": {"000.png": _encoded(good[0]), "001.png": _encoded(good[1])}, "broken": {"000.png": _encoded(bad[0])}}}
        page.evaluate(DROP_FOLDER, [tree, box])
        expect(page.locator("#review-folder").get_by_role("cell", name="000.png")).to_have_count(2)
        expect(page.locator("#review-folder").get_by_role("cell", name="001.png")).to_have_count(1)
        page.locator("#review-score").click()
        expect(page.locator("#review-status")).to_contain_text("Scored 3 image(s)")
        for path in ("line/good/000.png", "line/good/001.png", "line/broken/000.png"):
            expect(page.locator("#review-gallery")).to_contain_text(path)
        assert page.evaluate("JSON.stringify(window.rbdPicked)") == "{}"  # the record forgotten once scored


def test_the_export_offered_goes_once_the_review_changes_or_a_new_one_starts(browser, app_server, parts):
    """The Export box's zip is the review as it was when made: it stayed after later decisions or a threshold moved, and
    after Start a new review offered the closed review's decisions."""
    good, bad = parts
    with own_page(browser, app_server, "Review") as page:
        page.locator("#review-files input[type=file]").set_input_files([str(good[0]), str(bad[0])])
        expect(page.locator("#review-files").get_by_role("cell", name=bad[0].name).first).to_be_visible()
        page.locator("#review-score").click()
        expect(page.locator("#review-status")).to_contain_text("Scored 2 image(s)")
        page.locator("#review-export").click()
        link = page.locator("#review-export-file a[download]").first
        expect(link).to_be_visible()
        blur(page)
        page.keyboard.press("a")
        expect(page.locator("#review-metrics")).to_contain_text("Reviewed 1 of 2")
        expect(link).to_be_hidden()
        page.locator("#review-export").click()
        expect(link).to_be_visible()
        set_rate(page, "20")  # other verdicts than the zip's
        expect(link).to_be_hidden()
        page.locator("#review-export").click()
        expect(link).to_be_visible()
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#review-new").click()
        expect(page.locator("#review-text")).to_contain_text("No images to review yet")
        expect(link).to_be_hidden()


def test_reviews_upload_boxes_are_locked_while_their_files_are_scored(browser, app_server, parts, monkeypatch):
    """Files added while a batch was scored were emptied from the box with it, never scored, a second press of
    Score was dropped unseen, and a new review started meanwhile was undone by the scoring's end."""
    good, _ = parts
    add = ReviewSession.add
    monkeypatch.setattr(ReviewSession, "add", lambda self, *args, **kwargs: (time.sleep(3), add(self, *args, **kwargs))[1])
    with own_page(browser, app_server, "Review") as page:
        page.locator("#review-files input[type=file]").set_input_files([str(good[0])])
        expect(page.locator("#review-files").get_by_role("cell", name=good[0].name)).to_be_visible()
        page.locator("#review-score").click()
        expect(page.locator("#review-score")).to_be_disabled(timeout=2_000)
        expect(page.locator("#review-new")).to_be_disabled()
        expect(page.locator("#review-files input[type=file], #review-folder input[type=file]")).to_have_count(0)
        expect(page.locator("#review-status")).to_contain_text("Scored 1 image(s)")
        expect(page.locator("#review-score")).to_be_enabled()
        expect(page.locator("#review-new")).to_be_enabled()
        page.locator("#review-files input[type=file]").set_input_files([str(good[1])])  # open for the next batch, emptied
        expect(page.locator("#review-files").get_by_role("cell", name=good[1].name)).to_be_visible()
        expect(page.locator("#review-files").get_by_role("cell", name=good[0].name)).to_have_count(0)
        clear(page, "#review-files")
        page.locator("#review-score").click()  # nothing to score: refused, and the boxes open again to take the images
        expect(page.locator(".toast-body").filter(has_text="no image files")).to_be_visible()
        expect(page.locator("#review-score")).to_be_enabled()
        expect(page.locator("#review-files input[type=file]")).to_have_count(1)


def test_a_picked_mvtec_folder_is_fine_tuned_on_its_train_good_images_only(browser, app_server, category):
    """Gradio uploads a picked folder's files by name alone: without the page's record of their paths, its
    test/ and ground_truth/ files were trained on as normal images."""
    with own_page(browser, app_server, "Fine-tune") as page:
        page.locator("#train-folder input[type=file]").set_input_files(str(category))
        expect(page.locator("#train-folder").get_by_role("cell", name="000_mask.png").first).to_be_visible()
        page.locator("#train-epochs input").fill("1")
        page.locator("#train-run").click()
        status = page.locator("#train-status")
        expect(status).to_contain_text("now the active model", timeout=120_000)
        normal = len(list((category / "train" / "good").iterdir()))
        expect(status).to_contain_text(f" of {normal} images")
        expect(status).to_contain_text("test/ and ground_truth/ folders left out")


def test_the_mask_editor_opens_on_the_image_and_saves_on_it(page, app_server, pictures, detector):
    page.locator("#review-filter").get_by_text("all", exact=True).click()
    clear(page, "#review-files")
    page.locator("#review-files input[type=file]").set_input_files([str(pictures / "tall_part.png"), str(pictures / "tall_other.png")])
    expect(page.locator("#review-files").get_by_role("cell", name="tall_other.png").first).to_be_visible()
    page.locator("#review-score").click()
    expect(page.locator("#review-status")).to_contain_text("Scored 2 image(s)")
    text = page.locator("#review-text")
    blur(page)
    for _ in range(8):  # to the first image, then on to the tall part
        page.keyboard.press("ArrowLeft")
    expect(text).to_contain_text(re.compile(r"^\s*1 / 6 "))  # the four of the tests above and the two tall parts
    for _ in range(6):
        if "tall_part.png" in text.inner_text():
            break
        place = text.inner_text().split(" / ")[0].strip()
        page.keyboard.press("ArrowRight")
        expect(text).not_to_contain_text(re.compile(rf"^\s*{place} / 6 "))
    expect(text).to_contain_text("tall_part.png")
    session = review_session(app_server, "tall_part.png")
    item = next(i for i in session.items if i.file_name == "tall_part.png")
    model_mask = review.mask_to_edit(session, item.id, detector.threshold)
    assert model_mask.any()  # the model flags the tall part: its mask is what the editor must open with

    blur(page)
    page.keyboard.press("e")
    editor = page.locator("#review-editor")
    expect(editor).to_be_visible()
    page.locator("#review-save").click()  # nothing painted: exactly the model's mask
    expect(page.locator("#review-text")).to_contain_text("decision: correct")
    saved = lambda: review.final_mask(review_session(app_server, "tall_part.png"), item.id)  # noqa: E731
    np.testing.assert_array_equal(saved(), model_mask)

    box = open_editor(page, "Paint the defect")
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 4, y)
    page.mouse.down()
    page.mouse.move(x + 4, y, steps=4)
    page.mouse.up()
    shot(page, "5-review-editor")
    page.locator("#review-save").click()
    expect(editor).to_be_hidden()
    time.sleep(1)
    painted = saved()
    centre = (item.height // 2, item.width // 2)
    assert painted[centre[0] - 1:centre[0] + 2, centre[1] - 1:centre[1] + 2].all()  # the stroke is where it was painted
    assert (painted | model_mask == painted).all()  # the model's mask stayed where it was
    extra = np.argwhere(painted & ~model_mask)
    if len(extra):
        assert (np.abs(extra - centre) <= (item.height // 3, item.width // 2)).all()  # nothing landed elsewhere

    blur(page)
    page.keyboard.press("e")
    expect(page.locator("#review-save")).to_be_visible()
    wide = page.viewport_size
    page.set_viewport_size({"width": 850, "height": wide["height"]})  # the editor goes under the gallery, not 330 px beside it
    try:
        time.sleep(1)
        label = editor.locator("label[data-testid=block-label]").bounding_box()
        pan = editor.locator("button[aria-label=Pan]").bounding_box()
        assert editor.bounding_box()["width"] >= 480, editor.bounding_box()
        assert label["x"] + label["width"] <= pan["x"], (label, pan)  # its title clear of its toolbar
    finally:
        page.set_viewport_size(wide)
    for key in ("ArrowRight", "a", "e"):  # keys are off while it is open: each left it, its paint lost unsaved
        blur(page)
        page.keyboard.press(key)
    time.sleep(1)
    expect(editor).to_be_visible()
    expect(page.locator("#review-text")).to_contain_text("tall_part.png")
    expect(page.locator("#review-text")).to_contain_text("decision: correct")  # not accepted with the model's own mask
    page.locator("#review-next").click()  # a click on another button leaves it: a save belongs to the image it was opened on
    expect(page.locator("#review-save")).to_be_hidden()
    expect(editor).to_be_hidden()
    np.testing.assert_array_equal(saved(), painted)



def test_a_long_strip_is_painted_folded_and_saved_where_it_was_painted(page, app_server, pictures, detector):
    clear(page, "#review-files")
    page.locator("#review-files input[type=file]").set_input_files([str(pictures / "strip.png")])
    expect(page.locator("#review-files").get_by_role("cell", name="strip.png").first).to_be_visible()
    page.locator("#review-score").click()
    expect(page.locator("#review-status")).to_contain_text("Scored 1 image(s)")
    text = page.locator("#review-text")
    expect(text).to_contain_text(re.compile(r"^\s*\d / 7 "))  # the view holds the new image too
    thumbnail = page.locator("#review-gallery .caption-label").filter(has_text=re.compile(r"^strip\.png"))
    thumbnail.first.click()
    expect(text).to_contain_text(re.compile(r"^\s*\d / 7 · strip\.png"))
    blur(page)
    page.keyboard.press("r")  # the model flags it; rejected, the editor opens on an empty mask
    expect(text).not_to_contain_text("strip.png")
    thumbnail.first.click()
    expect(text).to_contain_text(re.compile(r"^\s*\d / 7 · strip\.png .* decision: reject"))
    session = review_session(app_server, "strip.png")
    item = next(i for i in session.items if i.file_name == "strip.png")  # 50 x 2000: 4 pieces of 500, 6 px apart
    assert not review.mask_to_edit(session, item.id, detector.threshold).any()

    box = open_editor(page, "Paint the defect (the long strip in pieces)")
    editor = page.locator("#review-editor")
    shown = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=box))).convert("L"))  # screen pixels, maybe more than CSS px
    picture = shown < 250  # the picture on white, its gaps white too
    rows = np.flatnonzero(picture.mean(axis=1) > 0.5)  # the picture's, and the label bar's above it
    rows = max(np.split(rows, np.flatnonzero(np.diff(rows) > 12) + 1), key=len)  # the picture: the tallest block
    columns = np.flatnonzero(picture[rows[0]:rows[-1] + 1].mean(axis=0) > 0.5)
    scale = shown.shape[1] / box["width"]
    top, left = box["y"] + rows[0] / scale, box["x"] + columns[0] / scale
    height, width = (rows[-1] - rows[0] + 1) / scale, (columns[-1] - columns[0] + 1) / scale
    assert width / height == pytest.approx(500 / 218, rel=0.1)  # a block of four pieces, not a 40:1 sliver
    y = top + height * 25 / 218  # the middle row of the first piece; x from 40 % to 60 % of it: columns 200-300
    page.mouse.move(left + 0.4 * width, y)
    page.mouse.down()
    page.mouse.move(left + 0.6 * width, y, steps=8)
    page.mouse.up()
    shot(page, "5b-review-editor-strip")
    page.locator("#review-save").click()
    expect(editor).to_be_hidden()
    time.sleep(1)
    painted = review.final_mask(review_session(app_server, "strip.png"), item.id)
    assert painted.shape == (50, 2000) and painted[23:28, 215:285].all()  # in the first piece, where it was painted
    rows, columns = np.nonzero(painted)
    # a brush's width around it and nowhere else: painted on another piece it would lie 500 columns away
    assert abs(rows.mean() - 25) <= 8 and columns.min() >= 170 and columns.max() <= 330

def test_cancel_stops_training_at_once_and_says_the_model_is_unchanged(page, category):
    page.get_by_role("tab", name="Fine-tune").click()
    page.locator("#train-files input[type=file]").set_input_files([str(p) for p in sorted((category / "train" / "good").iterdir())])
    expect(page.locator("#train-files").get_by_role("cell", name="009.png").first).to_be_visible()
    # the box's list scrolls: 80 files pushed Train and its progress thousands of pixels down
    assert page.locator("#train-files").bounding_box()["height"] <= 300
    # a refused budget is said, and leaves nothing behind: Gradio's own check of a minimum refused the click before the
    # handler ran, and then Cancel "cancelled" a training that never was and the next Train was dropped
    page.locator("#train-minutes input").fill("-1")
    page.locator("#train-run").click()
    expect(page.locator(".toast-body").filter(has_text="max_minutes must be positive").first).to_be_visible()
    page.locator(".toast-body .toast-close").first.click()
    page.locator("#train-cancel").click()
    expect(page.locator("#train-status")).to_contain_text("No training is running.")
    page.locator("#train-epochs input").fill("100000")
    page.locator("#train-minutes input").fill("0")
    page.locator("#train-run").click()
    status = page.locator("#train-status")
    expect(status).to_contain_text("training…")
    expect(status).to_contain_text("step ")  # the progress bar's count
    expect(page.locator("#train-loss")).to_be_visible()
    page.locator("#train-cancel").click()
    start = time.monotonic()
    expect(status).to_contain_text("Training cancelled after", timeout=20_000)
    assert time.monotonic() - start < 15
    expect(status).to_contain_text("the active model is unchanged")
    expect(status.locator(".error")).to_have_count(0)  # no "Error" badge drawn over the message
    expect(page.locator("#model-info")).to_contain_text("stripes")


def test_a_refused_share_leaves_the_model_bar_usable(page):
    page.locator("#train-share").click()  # the shipped model is active: not a fine-tune of this browser
    expect(page.locator(".toast-body").filter(has_text="not a fine-tune made in this browser").first).to_be_visible()
    time.sleep(1)
    for place in ("#model-choice", "#threshold", "#model-info", "#train-status"):  # no "Error" badge over them, taking clicks
        expect(page.locator(place).get_by_text("Error", exact=True)).to_have_count(0)
    page.locator(".toast-body .toast-close").first.click()


def test_after_a_fine_tune_the_review_shows_its_model_and_can_be_rescored(page):
    page.locator("#train-epochs input").fill("2")
    page.locator("#train-run").click()
    expect(page.locator("#train-status")).to_contain_text("now the active model")
    expect(page.locator("#model-info")).to_contain_text("model-")
    shot(page, "6-fine-tune")
    page.get_by_role("tab", name="Review").click()
    about = page.locator("#review-model")
    expect(about).to_contain_text("scored by stripes")
    expect(about).to_contain_text("The active model is model-")
    page.locator("#review-rescore").click()
    expect(page.locator("#review-status")).to_contain_text("decisions are kept")
    expect(about).to_contain_text("scored by model-")
    expect(about).not_to_contain_text("The active model is")
    answers = [False, True]  # a review with images asks first: one click threw a dozen decisions away
    asked = lambda dialog: dialog.accept() if answers.pop(0) else dialog.dismiss()  # noqa: E731
    page.on("dialog", asked)
    page.evaluate("document.querySelectorAll('#review-gallery img').forEach((image) => image.remove())")  # as a filter can leave it
    page.locator("#review-new").click()  # still asked, answered no: the review stays
    time.sleep(2)
    expect(page.locator("#review-text")).not_to_contain_text("No images to review yet")
    page.locator("#review-new").click()
    expect(page.locator("#review-text")).to_contain_text("No images to review yet")
    page.locator("#review-new").click()  # an empty review: no question
    expect(page.locator("#review-status")).to_contain_text("Started a new review")
    assert answers == []
    page.remove_listener("dialog", asked)
    page.get_by_role("tab", name="Evaluate").click()
    shot(page, "7-evaluate")


def test_a_reload_keeps_the_fine_tuned_model_active_at_the_rate_the_tab_set(page):
    """The model survived a reload (or an app restart), its threshold went back to the model's own without a word."""
    set_rate(page, "5")
    expect(page.locator("#model-info")).to_contain_text("for 5% expected false alarms")
    page.reload(wait_until="domcontentloaded")
    loaded(page)
    expect(page.locator("#model-info")).to_contain_text("model-")
    expect(page.locator("#model-choice input")).to_have_value(re.compile("model-"))
    expect(page.locator("#model-info")).to_contain_text("for 5% expected false alarms")
    expect(page.locator("#threshold input[type=number]")).to_have_value("5")
    page.locator("#threshold-reset").click()  # the model's own again, for the tests after this one
    expect(page.locator("#model-info")).not_to_contain_text("for 5% expected false alarms")


def test_delete_asks_first_and_removes_the_fine_tune(page):
    page.get_by_role("tab", name="Fine-tune").click()
    answers = [False, True]
    page.on("dialog", lambda dialog: dialog.accept() if answers.pop(0) else dialog.dismiss())
    page.locator("#train-delete").click()  # answered no: nothing changes
    time.sleep(2)
    expect(page.locator("#model-info")).to_contain_text("model-")
    page.locator("#train-delete").click()
    status = page.locator("#train-status")
    expect(status).to_contain_text(re.compile(r"Deleted model-\S+; the active model is now stripes"))
    deleted = re.search(r"Deleted (model-\S+);", status.inner_text()).group(1)
    expect(page.locator("#model-info")).to_contain_text("stripes")
    shot(page, "8-fine-tune-deleted")
    page.locator("#model-choice input").click()
    expect(page.get_by_role("option", name=re.compile("stripes"))).to_be_visible()
    expect(page.get_by_role("option", name=re.compile(re.escape(deleted)))).to_have_count(0)  # other tests' shared ones may stay
    page.keyboard.press("Escape")
    page.locator("#train-delete").click()  # the shipped model: refused without a question
    expect(page.locator(".toast-body").filter(has_text="comes with the app").first).to_be_visible()
    assert answers == []
    page.locator(".toast-body .toast-close").first.click()


def test_a_models_zip_is_loaded_as_a_model_of_ones_own(page, checkpoint, tmp_path):
    """A model trained on the command line reached the app only through the Hub."""
    archive = shutil.make_archive(str(tmp_path / "bolts"), "zip", checkpoint)
    page.get_by_role("tab", name="Fine-tune").click()
    with page.expect_file_chooser() as chooser:
        page.locator("#train-upload").click()
    chooser.value.set_files(archive)
    expect(page.locator("#train-status")).to_contain_text("from bolts.zip. It is now the active model")
    expect(page.locator("#model-info")).to_contain_text("bolts-")
    expect(page.locator("#model-choice input")).to_have_value(re.compile(r"bolts-.* \(yours\)"))
    (tmp_path / "notes.zip").write_bytes(b"not a zip")  # refused: the success before is not left standing as its result
    with page.expect_file_chooser() as chooser:
        page.locator("#train-upload").click()
    chooser.value.set_files(str(tmp_path / "notes.zip"))
    expect(page.locator(".toast-body").filter(has_text="notes.zip is not a readable zip file").first).to_be_visible()
    expect(page.locator("#train-status")).not_to_contain_text("Loaded")
    page.locator(".toast-body .toast-close").first.click()


def test_an_example_clicked_is_inspected_at_once_by_the_model_it_names(browser, checkpoint, detector, tmp_path):
    """Its label names a shipped model: that model becomes active (the picker and the model line say so) and the
    example is scored by it, with no Inspect press; an example whose model is not shipped is scored by the active one."""
    import app as app_module
    from conftest import free_port
    from rbd.catalog import Catalog

    for name in ("ksdd", "stripes", "weld"):  # "ksdd" first by name: the default
        shutil.copytree(checkpoint, tmp_path / "shipped" / name)
    demo = app_module.build_app(tmp_path / "work", Catalog(tmp_path / "shipped", tmp_path / "work" / "models"))
    _, url, _ = app_module.launch(demo, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=free_port())
    page = new_page(browser)
    try:
        page.goto(url, wait_until="domcontentloaded")
        loaded(page)
        expect(page.locator("#model-info")).to_contain_text("ksdd")
        summary = page.locator("#inspect-summary")
        # two examples clicked at once, the first one's model not loaded yet: the second's was dropped, and the first
        # one's model judged the second example
        page.get_by_text("weld defective (weld model)").click()
        time.sleep(0.3)
        page.get_by_text("ksdd good (ksdd model)").click()
        expect(summary).to_contain_text("ksdd_good.jpg")
        time.sleep(3)  # every answer in
        expect(page.locator("#model-choice input")).to_have_value("ksdd (shipped)")
        expect(summary).to_contain_text("ksdd_good.jpg")
        assert "judged it" not in summary.inner_text()
        page.get_by_text("weld defective (weld model)").click()
        expect(summary).to_contain_text("weld_defective.jpg")
        expect(page.locator("#model-info")).to_contain_text("weld ·")
        expect(page.locator("#model-choice input")).to_have_value("weld (shipped)")
        score = float(re.search(r"anomaly score\s+([0-9.]+)", summary.inner_text()).group(1))
        assert score == pytest.approx(detector.predict(Path(app_module.__file__).parent / "examples" / "weld_defective.jpg").score, abs=1e-4)
        shot(page, "example-weld")
        assert "judged it" not in summary.inner_text()  # by the model its label names
        page.get_by_text("bottle good (bottle model)").click()  # no bottle model here: the active one scores it
        expect(summary).to_contain_text("bottle_good.jpg")
        expect(summary).to_contain_text("this example is of a bottle part, for the shipped bottle model; the active model, weld, judged it")
        expect(page.locator("#inspect-results")).not_to_contain_text("weld_defective.jpg")  # the example alone
        expect(page.locator("#model-choice input")).to_have_value("weld (shipped)")
    finally:
        demo.close()
        page.context.close()


def test_a_restarted_app_resumes_the_same_review(browser, checkpoint, parts, tmp_path):
    """The review id lives in the browser (BrowserState), the decisions on disk: a new server on
    the same work folder and address shows the same review with its decisions. The review is of a
    picked folder whose two images share a name: they keep their paths in it."""
    import app as app_module
    from conftest import free_port
    from rbd.catalog import Catalog

    shutil.copytree(checkpoint, tmp_path / "shipped" / "stripes")
    shutil.copytree(checkpoint, tmp_path / "shipped" / "zebra")  # not the default: a restart must not fall back to it
    port = free_port()

    def serve():
        demo = app_module.build_app(tmp_path / "work", Catalog(tmp_path / "shipped", tmp_path / "work" / "models"))
        app_module.launch(demo, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=port)
        return demo

    good, bad = parts
    picked = tmp_path / "line"
    for folder, image in (("good", good[0]), ("broken", bad[0])):
        (picked / folder).mkdir(parents=True)
        shutil.copy(image, picked / folder / "000.png")
    page = new_page(browser)
    demo = serve()
    try:
        page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
        loaded(page)
        page.locator("#model-choice input").click()
        page.get_by_role("option", name="zebra").click()
        expect(page.locator("#model-info")).to_contain_text("zebra")
        page.get_by_role("tab", name="Review").click()
        page.locator("#review-folder input[type=file]").set_input_files(str(picked))
        expect(page.locator("#review-folder").get_by_role("cell", name="000.png")).to_have_count(2)
        page.locator("#review-score").click()
        expect(page.locator("#review-text")).to_contain_text("1 / 2")
        fit = page.locator("#review-image img").evaluate("image => getComputedStyle(image).objectFit")
        assert fit == "contain", fit  # a small part enlarged to the box: Gradio drew a 20-pixel one as a dot
        expect(page.locator("#review-gallery")).to_contain_text("line/good/000.png")
        expect(page.locator("#review-gallery")).to_contain_text("line/broken/000.png")
        expect(page.locator("#review-folder").get_by_role("cell", name="000.png")).to_have_count(0)  # scored: the box is emptied
        assert page.evaluate("JSON.stringify(window.rbdPicked)") == "{}"  # and the folder's record forgotten
        blur(page)
        page.keyboard.press("a")
        expect(page.locator("#review-metrics")).to_contain_text("Reviewed 1 of 2")
        other = page.context.new_page()  # another tab of the same browser picks another model: the browser's last
        other.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
        loaded(other)
        expect(other.locator("#model-choice input")).to_have_value("zebra (shipped)")  # a new tab: the browser's last model
        other.locator("#model-choice input").click()
        other.get_by_role("option", name="stripes").click()
        expect(other.locator("#model-info")).to_contain_text("stripes")
        other.close()
    finally:
        demo.close()

    page.evaluate("window.rbdBeforeRestart = true")
    time.sleep(2.5)  # the last key well before the restart is found: one found within 2 s of a key reloads at once
    demo = serve()  # a new process would do the same: nothing is kept in memory between the two
    try:
        # the page left open finds the restart (its next click ran on the default model beside a bar naming zebra) and
        # keeps what it shows until the next key or click, which reloads it (until it reloads, a key decides nothing on a
        # guess: tests/test_ui.py)
        time.sleep(7)
        assert page.evaluate("window.rbdBeforeRestart") is True
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => window.rbdBeforeRestart === undefined", timeout=30000)
        loaded(page)
        expect(page.locator("#model-choice input")).to_have_value("zebra (shipped)")
        expect(page.locator("#model-info")).to_contain_text("zebra")
        page.get_by_role("tab", name="Review").click()
        expect(page.locator("#review-metrics")).to_contain_text("Reviewed 1 of 2")
        expect(page.locator("#review-text")).not_to_contain_text("The active model is")  # judged by zebra, as scored
        # it picks up at its first unreviewed image; the one decided before shows its decision in the gallery
        expect(page.locator("#review-text")).to_contain_text("2 / 2 · line/good/000.png")
        expect(page.locator("#review-text")).to_contain_text("decision: not reviewed")
        expect(page.locator("#review-gallery")).to_contain_text("✓ accepted")
    finally:
        demo.close()
        page.context.close()
