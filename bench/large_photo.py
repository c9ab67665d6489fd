"""What the app spends drawing one large photo, with and without the display's pixel budget.

    python -m bench.large_photo --checkpoint checkpoints/bottle --side 4096 --repeats 3

A synthetic photo (side x 0.8 side, blocky texture) is scored into a review session; then, in one
run, each step is timed with `rbd.visualize.SHOWN_PIXELS` unbounded ("full", the code before the
budget) and at its default, alternately: a review step's picture (`rbd.review.overlay` at the
shown side, then folded), opening the mask editor (`rbd.review.editor_canvas`), turning a painted
layer back into a mask (`rbd.review.painted_mask`) and an Inspect redraw (`ui.inspection.redraw`,
of the photo scored once under each budget, since Inspect holds the picture at the size it draws).
Server side only: PNG encoding and the browser's part are not included. Median seconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import rbd
import rbd.visualize
from rbd import review
from rbd.catalog import Catalog
from rbd.review import ReviewSession
from rbd.visualize import fold, shown_size
from ui import inspection
from ui.context import Context

BUDGETS = {"full": 10**12, "budget": rbd.visualize.SHOWN_PIXELS}


def photo(path: Path, side: int) -> Path:
    rng = np.random.default_rng(0)
    height = int(side * 0.8)
    blocks = rng.integers(0, 256, (height // 32, side // 32, 3), dtype=np.uint8)
    Image.fromarray(blocks).resize((side, height), Image.Resampling.BILINEAR).save(path, quality=90)
    return path


def app_context(folder: Path, checkpoint: Path) -> tuple[Context, dict]:
    """The app's context on a work folder under `folder`, offering only `checkpoint`, and that model as the bar holds it."""
    (folder / "shipped").mkdir()
    (folder / "shipped" / "model").symlink_to(checkpoint.resolve())
    ctx = Context(folder / "work", Catalog(folder / "shipped", folder / "work" / "models"))
    return ctx, {"key": ctx.catalog.default_key(), "revision": None, "owner": None, "name": "model", "calibration": None}


def steps(session: ReviewSession, threshold: float, held: list, ctx, model: dict) -> dict:
    item = session.item(0)
    timings = {}

    def timed(name, fn):
        start = time.perf_counter()
        result = fn()
        timings[name] = time.perf_counter() - start
        return result

    timed("review step picture", lambda: fold(review.overlay(session, 0, threshold, max_side=max(shown_size(item.height, item.width)))))
    _, mask = timed("open editor", lambda: review.editor_canvas(session, 0, threshold))
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[mask] = 255
    timed("save painted mask", lambda: review.painted_mask(session, 0, [layer], threshold))
    timed("Inspect redraw", lambda: inspection.redraw(ctx, held, 0, model, 1.0, 0.5))
    return timings


def photo_options(description: str, repeats: int) -> argparse.Namespace:
    """The options of the large-photo benchmarks: --checkpoint, --side (the photo's long side), --repeats."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/bottle"))
    parser.add_argument("--side", type=int, default=4096, help="the photo's long side, in pixels")
    parser.add_argument("--repeats", type=int, default=repeats)
    return parser.parse_args()


def main() -> None:
    args = photo_options(__doc__, repeats=3)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ctx, model = app_context(tmp, args.checkpoint)
        detector = ctx.detector(model)
        path = photo(tmp / "photo.jpg", args.side)
        session = ReviewSession.create(tmp / "reviews", "bench", detector, [path])
        held = {}  # Inspect holds the picture at the size it draws it: one scoring under each budget
        for name, pixels in BUDGETS.items():
            rbd.visualize.SHOWN_PIXELS = pixels
            held[name] = inspection.inspect_images(ctx, None, [str(path)], model, 1.0, 0.5, None)["held"]
        seconds: dict[str, dict[str, list[float]]] = {name: {} for name in BUDGETS}
        for _ in range(args.repeats):
            for name, pixels in BUDGETS.items():  # alternately, so load on the machine touches both alike
                rbd.visualize.SHOWN_PIXELS = pixels
                for step, s in steps(session, detector.threshold, held[name], ctx, model).items():
                    seconds[name].setdefault(step, []).append(s)
    item = session.item(0)
    print(f"photo {item.width}x{item.height}, edited at {shown_size(item.height, item.width)[::-1]} within the budget; "
          f"median seconds of {args.repeats}, {time.strftime('%Y-%m-%d')}")
    print("| step | full size | within a megapixel | ratio |\n|---|---|---|---|")
    for step in seconds["full"]:
        full, bounded = (statistics.median(seconds[name][step]) for name in BUDGETS)
        print(f"| {step} | {full:.2f} | {bounded:.2f} | {full / bounded:.1f}x |")


if __name__ == "__main__":
    main()
