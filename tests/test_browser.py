"""The app in a real browser: Debian's chromium driven by Playwright against a server launched in-process.

Covers what the API tests cannot: uploads through the page's file inputs, button wiring, the rendered
Markdown, the keyboard shortcuts attached by `launch(js=SHORTCUTS)`, and downloading the export zip.
Needs `apt-get install -y chromium` (never `playwright install`). The steps wait generously: the
machine may be busy with other work.
"""

import csv
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

WAIT_MS = 60_000  # per step
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


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


@pytest.fixture(scope="module")
def page(browser, app_server):  # the browser first: fail before training and launching anything
    messages = []
    page = new_page(browser, messages)
    page.goto(app_server[0], wait_until="domcontentloaded")
    # app.load has loaded the model once its description (with the threshold) is shown
    expect(page.get_by_text("held-out normal images")).to_be_visible(timeout=WAIT_MS)
    yield page
    print("\n".join(messages))  # browser console: pytest shows it in the last test's report if that test failed
    page.context.close()


def blur(page):
    """Shortcuts are ignored while typing in an input; move focus back to the page."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def test_inspect_an_uploaded_image(page, detector):
    example = EXAMPLES / "ksdd_crack.jpg"  # any image works with the session's tiny model
    page.get_by_role("tab", name="Inspect").click()
    page.locator("#inspect-image input[type=file]").set_input_files(str(example))
    expect(page.locator("#inspect-image img")).to_have_attribute("src", re.compile("."), timeout=WAIT_MS)  # uploaded
    page.locator("#inspect-run").click()

    summary = page.locator("#inspect-summary")
    expect(summary).to_contain_text("anomaly score", timeout=WAIT_MS)
    text = summary.inner_text()
    expected = detector.predict(example)
    assert expected.verdict.upper() in text and example.name in text, text
    score = float(re.search(r"anomaly score\s+([0-9.]+)", text).group(1))
    assert score == pytest.approx(expected.score, abs=1e-4)  # the file itself was scored, not a re-encoded copy
    expect(page.locator("#inspect-overlay img")).to_have_attribute("src", re.compile("."), timeout=WAIT_MS)


def test_review_with_keyboard_shortcuts_and_export(page, parts, tmp_path):
    good, bad = parts
    page.get_by_role("tab", name="Review").click()
    review_files = page.locator("#review-files")
    review_files.locator("input[type=file]").set_input_files([str(p) for p in good[:2] + bad[:2]])
    expect(review_files.get_by_role("cell", name=bad[1].name).first).to_be_visible(timeout=WAIT_MS)  # uploaded
    page.locator("#review-score").click()

    text, metrics = page.locator("#review-text"), page.locator("#review-metrics")
    expect(text).to_contain_text("1 / 4", timeout=WAIT_MS)
    expect(metrics).to_contain_text("Reviewed 0 of 4", timeout=WAIT_MS)

    blur(page)
    page.keyboard.press("a")
    expect(metrics).to_contain_text("Reviewed 1 of 4", timeout=WAIT_MS)
    expect(text).to_contain_text("2 / 4", timeout=WAIT_MS)
    page.keyboard.press("r")
    expect(metrics).to_contain_text("Reviewed 2 of 4", timeout=WAIT_MS)
    expect(text).to_contain_text("3 / 4", timeout=WAIT_MS)
    page.keyboard.press("ArrowLeft")
    expect(text).to_contain_text("2 / 4", timeout=WAIT_MS)
    expect(text).to_contain_text("decision: reject", timeout=WAIT_MS)

    page.locator("#review-export").click()
    link = page.locator("#review-export-file a[download]").first
    expect(link).to_be_visible(timeout=WAIT_MS)
    with page.expect_download(timeout=WAIT_MS) as download:
        link.click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)

    with zipfile.ZipFile(path) as z:
        rows = list(csv.DictReader(io.StringIO(z.read("decisions.csv").decode())))
        coco = json.loads(z.read("coco.json"))
    decisions = sorted(r["decision"] for r in rows)
    assert decisions == ["", "", "accept", "reject"], rows
    assert len(coco["images"]) == 2  # the reviewed ones


def test_a_restarted_app_resumes_the_same_review(browser, checkpoint, parts, tmp_path):
    """The review id lives in the browser (BrowserState), the decisions on disk: a new server on
    the same work folder and address shows the same review with its decisions."""
    import app as app_module
    from conftest import free_port
    from rbd.catalog import Catalog

    shutil.copytree(checkpoint, tmp_path / "shipped" / "stripes")
    port = free_port()

    def serve():
        demo = app_module.build_app(tmp_path / "work", Catalog(tmp_path / "shipped", tmp_path / "work" / "models"))
        app_module.launch(demo, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=port)
        return demo

    good, bad = parts
    page = new_page(browser)
    demo = serve()
    try:
        page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
        expect(page.get_by_text("held-out normal images")).to_be_visible()
        page.get_by_role("tab", name="Review").click()
        page.locator("#review-files input[type=file]").set_input_files([str(good[0]), str(bad[0])])
        expect(page.locator("#review-files").get_by_role("cell", name=bad[0].name).first).to_be_visible()
        page.locator("#review-score").click()
        expect(page.locator("#review-text")).to_contain_text("1 / 2")
        blur(page)
        page.keyboard.press("a")
        expect(page.locator("#review-metrics")).to_contain_text("Reviewed 1 of 2")
    finally:
        demo.close()

    demo = serve()  # a new process would do the same: nothing is kept in memory between the two
    try:
        page.reload(wait_until="domcontentloaded")
        expect(page.get_by_text("held-out normal images")).to_be_visible()
        page.get_by_role("tab", name="Review").click()
        expect(page.locator("#review-metrics")).to_contain_text("Reviewed 1 of 2")
        expect(page.locator("#review-text")).to_contain_text("decision: accept")
    finally:
        demo.close()
        page.context.close()
