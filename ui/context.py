"""What every handler of one app shares: the catalog of models, the work folder and what is open.

Nothing here is per browser: each browser's model, review id and uploads travel with its requests
(Gradio states), and the objects kept here are looked up by them.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import math
import os
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import rbd
from rbd.catalog import Catalog
from rbd.expiry import mark_used, remove_idle
from rbd.files import atomic_write, hold_lock
from rbd.review import ReviewSession, session_folder


def idle_days(value: str) -> float:
    """RBD_IDLE_DAYS as days, a number above 0 (inf: never): text failed the app's start with a bare ValueError, and
    0, -1 or nan removed every review and private model at the first sweep."""
    try:
        days = float(value)
    except ValueError:
        days = math.nan
    if not days > 0:
        raise rbd.InvalidInputError(f"RBD_IDLE_DAYS must be a number of days above 0 (inf: never), got {value!r}")
    return days


IDLE_DAYS = idle_days(os.environ.get("RBD_IDLE_DAYS", "30"))  # reviews and private models unused this long are removed
OPEN_REVIEWS = 32  # review sessions kept open in memory (the least recently used is closed first)
EXPORTS_KEPT_S = 86400
CURSORS_KEPT_S = 86400  # a tab's place in its review is forgotten after a day without a request


@dataclass
class Cursor:
    """What the server knows of a browser tab: the review image it has on screen, whose key presses run one at a time,
    each from where the one before left off (the browser's own copy may lag behind), and its Inspect examples clicked."""

    item: int | None = None
    known: bool = False  # whether this server drew the tab's view: after a restart, or a day idle, it does not know it
    lock: threading.Lock = field(default_factory=threading.Lock)
    used: float = field(default_factory=time.time)
    examples: int = 0  # Inspect examples the tab clicked: an Inspect run's answer gives way to one clicked while it ran
    # the review image the tab's mask editor is open on, and the threshold it opened at: a threshold moved at once after
    # `e` was judged with the page's copy from before the editor opened, and closed it
    editing: dict | None = None
    # the review image this tab decided last and its decision's time: a second key pressed before the page drew the
    # first one's view carries the view before it, and is no other tab's decision to keep (`ui.review._decided_since`)
    decided: tuple[int, str] | None = None
    # times the tab's Export box was emptied by a change of its review or its verdicts: a zip written meanwhile holds
    # the review as it was before, and filled the box again after the change emptied it
    exports_taken: int = 0

    def press(self, move: Callable[[], dict]) -> dict:
        """Apply `move` (it moves `item` and returns the view) in turn."""
        with self.lock:
            return move()


class Context:
    """The app's shared objects: `work` holds uploads (only while a request runs), reviews, exports and
    fine-tuned models."""

    def __init__(self, work: Path, catalog: Catalog, idle_days: float = IDLE_DAYS):
        self.work, self.catalog = Path(work), catalog
        self.reviews, self.exports, self.uploads = self.work / "reviews", self.work / "exports", self.work / "uploads"
        self.uploads.mkdir(parents=True, exist_ok=True)
        # a record per browser of its fine-tune while it runs, and this server's run: a record of another run is a
        # training that a restart cut off (ui.fine_tune.running_record)
        self.trainings, self.run = self.work / "trainings", secrets.token_hex(8)
        self.browsers = self.work / "browsers"  # the review each browser scored into last (`browser_review`)
        self.idle_s = 86400 * idle_days
        # the fine-tune of each browser tab, from Train's click on (keyed by its session): ui.fine_tune.pending
        self.jobs: dict[object, dict] = {}
        self._open: OrderedDict[str, tuple[ReviewSession, float]] = OrderedDict()
        self._alive: weakref.WeakValueDictionary[str, ReviewSession] = weakref.WeakValueDictionary()  # every object in use
        self._cursors: dict[str, Cursor] = {}
        self._guard = threading.Lock()

    def claim(self) -> None:
        """The work folder, this process's alone (where the system can lock files: `hold_lock`): two apps on one folder
        each kept their reviews in memory, so one's decisions were not the other's, and images both scored into one
        review wrote over each other's."""
        if not hold_lock(self.work / "app.lock"):
            raise SystemExit(f"error: another rbd app serves the work folder {self.work}: stop it, or give this one a "
                             "folder of its own (RBD_WORK_DIR)")

    @property
    def state_secret(self) -> str:
        """The key browser-stored ids are signed with, kept in the work folder so that they survive restarts."""
        if os.environ.get("RBD_STATE_SECRET"):
            return os.environ["RBD_STATE_SECRET"]
        path = self.work / "browser-state-secret"
        if not path.exists():
            with atomic_write(path, mode=0o600) as f:  # the server's alone
                f.write(secrets.token_hex(16).encode())
        return path.read_text().strip()

    @property
    def gradio_cache(self) -> Path:
        """Gradio's cache: its copy of each upload, and of each file the app serves (a download)."""
        import gradio.utils

        return Path(gradio.utils.get_upload_folder())

    @property
    def upload_folders(self) -> list[Path]:
        """Where uploads are copied (one temporary folder each): never named in a message."""
        return [self.uploads, self.gradio_cache]

    def detector(self, model: dict) -> rbd.Detector:
        """The detector of a browser's model state ({"key", "revision", "owner", ...})."""
        if not model or not model.get("key"):
            raise rbd.CheckpointError("no model is loaded: pick one or enter a Hub repo id")
        return self.catalog.get(model["key"], model.get("revision"), model.get("owner"))

    def review(self, review_id: str, create: bool = False) -> ReviewSession | None:
        """The open review session of this id (read from disk once); None if there is none, unless
        `create` asks for a new, empty one."""
        if not review_id:
            return None
        with self._guard:
            if review_id in self._open:
                session, marked = self._open.pop(review_id)
                self._open[review_id] = (session, marked)
                if time.time() - marked > 60:  # the idle clock, touched at most once a minute
                    self._mark(review_id, session)
                return session
        with self._guard:  # evicted from the open ones but still in use (a long scoring holds it): that object
            session = self._alive.get(review_id)  # serves on, or its later images would never reach this one
        if session is None:
            session = ReviewSession(session_folder(self.reviews, review_id)) if create else ReviewSession.open(self.reviews, review_id)
        if session is not None:
            with self._guard:  # the sweep judges and moves idle reviews under it (`remove_idle`)
                if session.items and not session.folder.is_dir():  # expired between its reading and now
                    if not create:
                        return None
                    session = ReviewSession(session.folder)  # a new one, not the old one's images without their files
                if review_id in self._open:  # another request opened it meanwhile: one object serves them all, or
                    return self._open[review_id][0]  # a decision made through the other would never reach this one
                self._mark(review_id, session)
                while len(self._open) > OPEN_REVIEWS:
                    self._open.popitem(last=False)
        return session

    def browser_review(self, browser: str) -> str | None:
        """The review `browser` scored into or started last. A tab opened before its browser had a review holds none
        (Gradio reads the browser's store when a page loads only): its first Score made a second review, and after a
        reload every tab showed the one written last, the other out of reach until it expired."""
        with contextlib.suppress(FileNotFoundError, rbd.InvalidInputError):
            review_id = session_folder(self.browsers, browser).read_text().strip()
            session_folder(self.reviews, review_id)  # checked: it came from a file a browser's id names
            return review_id
        return None

    def remember_review(self, browser: str, review_id: str) -> None:
        """`review_id` is the review `browser` scored into or started last (`browser_review`)."""
        with contextlib.suppress(rbd.InvalidInputError):  # ids as a browser sent them: checked
            session_folder(self.reviews, review_id)
            with atomic_write(session_folder(self.browsers, browser)) as f:
                f.write(review_id.encode())

    def _mark(self, review_id: str, session: ReviewSession) -> None:
        if session.folder.is_dir():  # a new review has no folder until its first images
            mark_used(session.folder)
        self._open[review_id] = (session, time.time())
        self._alive[review_id] = session

    def cursor(self, request) -> Cursor:
        """The cursor of the browser tab (Gradio session) that sent `request`."""
        now = time.time()
        with self._guard:
            for key in [key for key, cursor in self._cursors.items() if now - cursor.used > CURSORS_KEPT_S]:
                del self._cursors[key]
            cursor = self._cursors.setdefault(request.session_hash if request is not None else "", Cursor())
            cursor.used = now
            return cursor

    @contextlib.contextmanager
    def upload_folder(self) -> Iterator[Path]:
        """A temporary folder for one request's uploads, removed afterwards."""
        with tempfile.TemporaryDirectory(dir=self.uploads) as folder:
            yield Path(folder)

    def export_folder(self, key: str | None = None) -> Path:
        """A fresh folder per export, so two users never share a file name (day-old ones go: `remove_idle`). With a
        `key`, the folder of that key (made where it is not there yet): an export that depends on the key alone is made once."""
        self.exports.mkdir(parents=True, exist_ok=True)
        if key is None:
            return Path(tempfile.mkdtemp(dir=self.exports))
        folder = self.exports / f"key-{hashlib.sha1(key.encode()).hexdigest()[:20]}"
        folder.mkdir(exist_ok=True)
        return folder

    def remove_exports(self, name: str) -> None:
        """Remove every export named `name` (a model's zip and the folder zipped) from every user's export folder, and
        the copies of the zip Gradio served from its cache, where a download link would still reach them."""
        for export in self.exports.glob(f"*/{glob.escape(name)}"):
            shutil.rmtree(export, ignore_errors=True)
        for folder in (self.exports, self.gradio_cache):
            for export in folder.glob(f"*/{glob.escape(name)}.zip"):
                export.unlink(missing_ok=True)

    def remove_idle(self) -> list[Path]:
        """Remove the reviews and private models of sessions idle longer than allowed (returned), exports a day old, and
        the records of cut-off trainings that no browser came back for. (Exports were swept by every export, which
        Inspect now makes on every threshold move.)"""
        remove_idle(self.exports, EXPORTS_KEPT_S)
        remove_idle(self.uploads, EXPORTS_KEPT_S)  # a request's own, left behind where the app was killed during it
        for record in [*self.trainings.glob("*.json"), *self.browsers.glob("*")]:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - record.stat().st_mtime > self.idle_s:
                    record.unlink()
        removed = remove_idle(self.reviews, self.idle_s, guard=self._guard, in_use=self._release)
        return removed + self.catalog.remove_idle(self.idle_s)

    def _release(self, folder: Path) -> bool:
        """Whether the idle review in `folder` is still in use, once it is no longer kept open (under `_guard`): a
        request holds it (a long scoring), and would find its files gone."""
        self._open.pop(folder.name, None)
        return folder.name in self._alive

    def sweep_every(self, seconds: float) -> threading.Event:
        """Run `remove_idle` now and then every `seconds` in a daemon thread; set the event to stop."""
        stop = threading.Event()

        def sweep():
            while True:
                self.remove_idle()
                if stop.wait(seconds):
                    return
        threading.Thread(target=sweep, daemon=True, name="rbd-expiry").start()
        return stop
