"""Where a prediction's time goes: each stage of `Detector.predict` beside the teacher alone, in one run.

    python -m bench.stages --checkpoint checkpoints/bottle --threads 2

Three streams of images: square (256x256), a long strip (208x512, like ksdd's parts) and mixed
sizes (200-600 px a side, aspect up to 1:3, seeded), each encoded as PNG so that decoding is
timed too. For every image the stages run one after another with the same public functions
the detector composes (rbd.images, rbd.geometry, the model's parts, rbd.anomaly_map,
rbd.detector): from resize to "to image size" they are what `predict` does (decoding comes before
it, and `predict` makes no mask until one is asked for). `predict` (the detector end to end, from
the decoded image) and `teacher` (its forward pass alone on the same input) are timed in the same
loop, interleaved, so load on the machine touches all of them alike. Reported: the median
milliseconds per image of each stage, and `predict / teacher`, the ratio the speed target is set
on; with `--batch N` the stages run on the passes `score_images` makes of N images: equal-shaped
inputs (mixed sizes grouped by model input shape), on a CPU fewer where they are large
(`rbd.detector.pass_size`). Times are per image.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
from collections import defaultdict

import numpy as np
import torch
from PIL import Image

import rbd
from rbd.anomaly_map import distance_maps
from rbd.detector import defect_mask, pass_size
from rbd.geometry import to_image_size, to_input
from rbd.images import read_image
from rbd.runtime import scoring_autocast

STAGES = ("decode", "resize", "teacher", "student", "distances", "memory", "map", "score", "to image size", "mask")
OF_PREDICT = STAGES[1:-1]  # the stages `predict` runs: not decoding, nor the mask it makes only when asked


def stream(kind: str, count: int, rng: np.random.Generator) -> list[bytes]:
    """`count` PNG-encoded images of textured noise of one kind's sizes."""
    def size() -> tuple[int, int]:
        if kind == "square":
            return 256, 256
        if kind == "strip":
            return 512, 208
        short = int(rng.integers(200, 400))
        long = int(min(600, short * rng.uniform(1.0, 3.0)))
        return (short, long) if rng.random() < 0.5 else (long, short)

    encoded = []
    for _ in range(count):
        h, w = size()
        pixels = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)  # blocky texture, not white noise
        buffer = io.BytesIO()
        Image.fromarray(pixels).resize((w, h), Image.Resampling.BILINEAR).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded


class Clock:
    """Accumulates wall time per stage name for one timed pass."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def time(self, stage: str, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        self.seconds[stage] += time.perf_counter() - start
        return result


@torch.inference_mode()
def staged(detector: rbd.Detector, encoded: list[bytes], clock: Clock) -> None:
    """One prediction per image, stage by stage; `encoded` share one model input shape."""
    model, config = detector.model, detector.config
    images = [clock.time("decode", read_image, io.BytesIO(data)) for data in encoded]
    fits = [config.fit(im.shape[0], im.shape[1]) for im in images]
    batch = clock.time("resize", lambda: torch.stack([to_input(im, f) for im, f in zip(images, fits)]))
    with scoring_autocast(batch.device):
        teacher = clock.time("teacher", model.features, batch)
        student = clock.time("student", model.student, teacher)
        scale_maps = clock.time("distances", distance_maps, teacher, student)
        memory_map = clock.time("memory", lambda: model.memory(teacher) if model.memory is not None else None)
        maps = clock.time("map", model.combine, scale_maps, memory_map, batch.shape[-2:])
        scores = clock.time("score", model.score, maps, memory_map, batch.shape[-2:])
        if memory_map is not None:
            clock.time("score", model.memory.familiarity, memory_map)
    for row, f in enumerate(fits):
        full = clock.time("to image size", lambda: to_image_size(maps[row, 0], f).numpy())
        clock.time("mask", defect_mask, full, float(scores[row]), detector.threshold)


@torch.inference_mode()
def end_to_end(detector: rbd.Detector, encoded: list[bytes], clock: Clock) -> None:
    """`predict` from decoded images, and the teacher alone on the same model inputs."""
    images = [read_image(io.BytesIO(data)) for data in encoded]
    clock.time("predict", detector.predict_batch, images, len(images))
    config = detector.config
    batch = torch.stack([to_input(im, config.fit(im.shape[0], im.shape[1])) for im in images])
    with scoring_autocast(batch.device):
        clock.time("teacher alone", detector.model.features, batch)


def _input_shape(data: bytes, config) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return config.fit(image.height, image.width).input


def groups(encoded: list[bytes], batch: int, config, device: torch.device) -> list[list[bytes]]:
    """Images in the passes `score_images` makes of `batch` at a time: one model input shape each,
    at most `pass_size` images, in stream order."""
    by_shape: dict[tuple[int, int], list[bytes]] = defaultdict(list)
    for data in encoded:
        by_shape[_input_shape(data, config)].append(data)
    return [run[i : i + step] for shape, run in by_shape.items()
            for step in [pass_size(shape, batch, device)] for i in range(0, len(run), step)]


def measure(detector: rbd.Detector, encoded: list[bytes], batch: int, warmup: int) -> dict:
    runs = groups(encoded, batch, detector.config, detector.network.device)
    for run in runs[:warmup]:
        staged(detector, run, Clock())
        end_to_end(detector, run, Clock())
    per_image: dict[str, list[float]] = defaultdict(list)
    us_per_pixel: list[float] = []
    for run in runs:
        clocks = Clock()
        staged(detector, run, clocks)
        end_to_end(detector, run, clocks)
        for stage, seconds in clocks.seconds.items():
            per_image[stage].append(1000 * seconds / len(run))
        height, width = _input_shape(run[0], detector.config)
        us_per_pixel.append(1e6 * clocks.seconds["predict"] / len(run) / (height * width))
    medians = {stage: round(statistics.median(ms), 2) for stage, ms in per_image.items()}
    return {"ms": medians, "predict / teacher": round(medians["predict"] / medians["teacher alone"], 2),
            "stages of predict besides the teacher, ms": round(sum(medians[s] for s in OF_PREDICT if s != "teacher"), 2),
            "predict us per input pixel": round(statistics.median(us_per_pixel), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/bottle")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=60, help="images per stream (default 60)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--streams", nargs="+", default=["square", "strip", "mixed"], choices=["square", "strip", "mixed"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = rbd.load(args.checkpoint)
    results = []
    for kind in args.streams:
        encoded = stream(kind, args.images, np.random.default_rng(0))
        for batch in args.batch:
            results.append({"stream": kind, "batch": batch, **measure(detector, encoded, batch, warmup=2)})
            print(json.dumps(results[-1]), flush=True)
    columns = ("predict", "teacher alone", *STAGES)
    print(f"\n{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
          f"{detector.config.backbone}, {time.strftime('%Y-%m-%d')}; median ms per image")
    print("| stream | batch | " + " | ".join(columns) + " | predict / teacher | us per input pixel |")
    print("|---" * (len(columns) + 4) + "|")
    for r in results:
        print(f"| {r['stream']} | {r['batch']} | " + " | ".join(f"{r['ms'].get(c, 0):.1f}" for c in columns)
              + f" | {r['predict / teacher']:.2f} | {r['predict us per input pixel']:.3f} |")


if __name__ == "__main__":
    main()
