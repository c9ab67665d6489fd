"""What Inspect's server spends on a large photo when the threshold or the heat map's opacity moves,
Gradio's encoding of the pictures included.

    python -m bench.app_inspect [--side 4096] [--repeats 10]

One synthetic photo (side x 0.8 side, blocky texture, JPEG; `bench.large_photo`'s) is inspected
with the shipped bottle checkpoint. Then, `--repeats` times each, alternately: what a move of the
threshold runs (`ui.inspection.redraw`: every held image judged again, the one shown drawn again)
and what a move of the opacity runs (the handler the app wires to the slider), each followed by the
`postprocess` of the app's own output components, which is where Gradio encodes the pictures to
files (also timed output by output). The HTTP round trip and the browser's part are not in it.
Median milliseconds.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import gradio as gr
import torch

from ui import inspection

from .large_photo import app_context, photo, photo_options

RATE, OPACITY = 1.0, 0.5


def main() -> None:
    args = photo_options(__doc__, repeats=10)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ctx, model = app_context(tmp, args.checkpoint)
        with gr.Blocks():
            area = inspection.layout(ctx)
        held = inspection.inspect_images(ctx, None, [str(photo(tmp / "photo.jpg", args.side))], model, RATE, OPACITY, None)["held"]
        events = {"threshold": lambda: inspection.redraw(ctx, held, 0, model, RATE, OPACITY),
                  "opacity": lambda: inspection.restyle(ctx, held, 0, model, RATE, OPACITY)}
        ms: dict[str, list[float]] = {}  # "<event> handler", "<event> encoded" (handler and encoding), "encode <output>"
        for _ in range(args.repeats):
            for name, event in events.items():
                start = time.perf_counter()
                outputs = event()
                ms.setdefault(f"{name} handler", []).append(1000 * (time.perf_counter() - start))
                for key, value in outputs.items():
                    encoding = time.perf_counter()
                    getattr(area, key).postprocess(value)
                    ms.setdefault(f"encode {key}", []).append(1000 * (time.perf_counter() - encoding))
                ms.setdefault(f"{name} encoded", []).append(1000 * (time.perf_counter() - start))
    print(json.dumps({"side": args.side, "shown": list(held[0]["image"].shape[:2]), "repeats": args.repeats,
                      **{key: round(statistics.median(values), 1) for key, values in ms.items()}}))


if __name__ == "__main__":
    main()
