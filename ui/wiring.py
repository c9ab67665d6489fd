"""How the app's handlers meet Gradio.

Handlers are plain top-level functions: they take the app's `Context` first, then the values of
their inputs, and return a dict from output names to values, so a test calls them without a
server. `on` binds the context, names the outputs and turns rbd's errors into messages.

Gradio 6's page runs an event's `.then` listeners after a success alone: after an error it runs its `.failure` ones
(what must follow either way, such as unlocking a box, listens to both).
"""

from __future__ import annotations

import contextlib
import functools
import html
import inspect
import logging
import re
import typing
from typing import Callable, Iterable

import gradio as gr
from gradio_client.utils import strip_invalid_filename_characters

import rbd
from rbd.notices import collect, notify
from rbd.runtime import in_own_thread
from rbd.uploads import as_uploaded

try:  # on a ZeroGPU Space, GPU work must run inside spaces.GPU; elsewhere it is a no-op
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn=None, duration=None):
        return fn if fn is not None else (lambda fn: fn)


# An absolute path in an unforeseen error's message (the work folder, the Hub's cache, site-packages), said by its last
# part alone: rbd's own errors never name a server path, and neither may these.
SERVER_PATH = re.compile(r"(?<![\w.:/~])/(?:[^\s/'\"():,;]+/)+([^\s/'\"():,;]*)")

# How a tab's re-judge (a new model or threshold) is triggered: one that comes while another is pending runs after it.
# Gradio's default for events ("once") dropped it, and after two models picked in quick succession Inspect showed the
# first one's verdicts under the second one's name.
REJUDGE_MODE = "always_last"


MARKDOWN_SIGNS = re.compile(r"([\\`*_\[\]()<>#|~!])")


def as_markdown(text: str) -> str:
    """`text` (a file name, a notice naming files) shown as it is inside Markdown: `__cam1__ 0042.jpg` came out bold
    without its underscores, and `star [x](y).jpg` as a link."""
    return MARKDOWN_SIGNS.sub(r"\\\1", text)


def as_toast(message: str) -> str:
    """A message as a toast shows it: toasts read HTML, where `ground_truth/<defect>/<name>_mask.png` lost its tail as tags."""
    return html.escape(message, quote=False)


def told_again(ctx, notes: list[str]) -> list[str]:
    """Notices a handler collected itself (`rbd.notices.collect`), named as uploaded and told again as toasts; returned,
    to be kept beside the results they concern, as a toast fades."""
    notes = [as_uploaded(note, ctx.upload_folders) for note in notes]
    for note in notes:
        notify(note)
    return notes


def user_errors(fn: Callable, upload_folders: Iterable = ()) -> Callable:
    """Show rbd's errors as a message in the UI and its notices (skipped files, ...) as toasts,
    naming uploaded files as the user knows them (never by a server path).

    Generator handlers (streaming progress) are wrapped as generators, so Gradio still streams them.
    Each call, and each step of a generator, runs on a thread of its own (`rbd.runtime.in_own_thread`
    says why): Gradio's worker threads outlive their requests.
    """
    folders = list(upload_folders)

    @contextlib.contextmanager
    def reported():
        with collect() as notes:
            try:
                yield
            except rbd.RBDError as err:
                # shown until closed: the output it stands for shows only an "Error" badge once a toast has faded
                raise gr.Error(as_toast(as_uploaded(str(err), folders)), duration=None, print_exception=False) from err
            except gr.Error:
                raise
            except Exception as err:  # a bug, or what no check foresaw: said, where Gradio showed nothing at all
                logging.getLogger("rbd").exception("unexpected error")
                said = SERVER_PATH.sub(lambda found: found[1] or "…", as_uploaded(f"{type(err).__name__}: {err}", folders))
                raise gr.Error(as_toast(f"An unexpected error stopped this ({said[:300]}); the server's log has the details"),
                               duration=None, print_exception=False) from err
            finally:
                for note in notes:
                    gr.Warning(as_toast(as_uploaded(note, folders)))
                notes.clear()  # told: a failed block's notes are not handed on to the server's log as well (`collect`)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            # Gradio resumes a generator in a fresh context each time: collect per step
            steps = fn(*args, **kwargs)
            try:
                while True:
                    with reported():
                        try:
                            value = in_own_thread(next, steps)
                        except StopIteration:
                            return
                    yield value
            finally:
                steps.close()  # a cancelled request closes us: close the handler too
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with reported():
            return in_own_thread(fn, *args, **kwargs)
    return call


def on(trigger, fn: Callable, ctx, inputs: list, outputs: dict, **kwargs):
    """`trigger(...)` with `fn(ctx, *inputs)`, whose returned dict names its outputs (a subset of
    `outputs`; the others stay as they are). Extra keyword arguments go to the event."""
    bound = functools.partial(fn, ctx)
    signature = inspect.signature(bound)  # Gradio finds gr.Request, gr.Progress and event data here

    def named(result: dict) -> dict | None:
        if not outputs:  # an event that only tells (a toast)
            return None
        if not result:  # nothing to change (Gradio reads an empty dict as a missing value)
            return {next(iter(outputs.values())): gr.skip()}
        return {outputs[name]: value for name, value in result.items()}

    if inspect.isgeneratorfunction(fn):
        def handler(*args, **kw):
            for result in bound(*args, **kw):
                yield named(result)
    else:
        def handler(*args, **kw):
            return named(bound(*args, **kw))
    handler.__signature__ = signature
    handler.__annotations__ = {name: hint for name, hint in typing.get_type_hints(fn).items() if name in signature.parameters}
    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return trigger(user_errors(handler, ctx.upload_folders), inputs, list(outputs.values()), **kwargs)


def endpoint(api: bool, name: str) -> dict:
    """An event's API settings: named `name` when `api`, else kept out of the API."""
    return {"api_name": name} if api else {"api_visibility": "private"}


def _each(files) -> list:
    """Gradio hands over one file, a list of files, or None."""
    return [] if files is None else files if isinstance(files, list) else [files]


def paths(files) -> list[str]:
    return [str(f) for f in _each(files)]


class NamedFiles(gr.File):
    """A box of files that hands each one over with the name it has on the user's disk (`uploaded_names`): Gradio
    stores an upload under its name less `<>:"|?*!$`{}` and control characters, cut to 200 bytes, and a review's export
    then named files the user does not have."""

    is_template = True  # drawn by the browser as a gr.File

    def preprocess(self, payload):
        files = super().preprocess(payload)
        for file, data in zip(_each(files), _each(payload.root if hasattr(payload, "root") else payload)):
            file.orig_name = data.orig_name
        return files


def uploaded_names(files) -> list[str | None]:
    """The name each of `paths(files)` has on the user's disk, where its box is a `NamedFiles` (else None): the page's,
    untrusted (`rbd.uploads.gather_images` checks it as it checks a picked folder's paths)."""
    return [getattr(f, "orig_name", None) or None for f in _each(files)]


def with_picked(box: str) -> str:
    """An event's `js` that sets its last input to what the page recorded of the folders picked into the folder
    box `box` (its elem_id; the box has elem_classes ["rbd-folder"]): [path in the folder, size] per file, which
    `rbd.uploads.picked_names` matches to the uploads, as Gradio uploads a picked folder's files by name alone
    (ui.app.PAGE_SCRIPT)."""
    return f"(...values) => [...values.slice(0, -1), (window.rbdPicked || {{}})['{box}'] || null]"


def forget_picked(box: str, then: str = "") -> str:
    """An event's `js` that drops the page's record of `box`'s picked folders (once the box is emptied), then runs `then`."""
    return f"() => {{ delete (window.rbdPicked || {{}})['{box}']; {then} }}"


def stored_name(name: str) -> str:
    """The name Gradio stores an uploaded file under (it strips characters such as `<>:"|?*!$`), by which
    `rbd.uploads.picked_names` tells a picked folder's files apart."""
    return strip_invalid_filename_characters(name)
