"""Scoring files against predicting decoded images: does a folder cost what its decoding and `predict` cost?

    python -m bench.files --checkpoints checkpoints --sets bottle ksdd weld --images 60

Issue 10 asks that `rbd evaluate` and `predict_files` reach `predict`'s per-image cost plus
decoding. On the first `--images` test images of each set (its own shipped checkpoint), in rounds
that interleave every way so that load on the machine touches them alike, this times per image:
`decode` (the files read as `predict_files` reads them, nothing scored), `predict` (the decoded
images, one `Detector.predict` each), `predict_files` at batch 1 and at its default batch of 8, and
`rbd.evaluate`'s own median (`ms_per_image`: decode, predict and the map at image size, over the
whole test set). `files / (decode + predict)` is the overhead of going through files at batch 1.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import rbd
from bench import options
from rbd.datasets import mvtec_test_set
from rbd.detector import predict_files
from rbd.images import image_batches


def per_image_ms(run, count: int) -> float:
    start = time.perf_counter()
    run()
    return 1000 * (time.perf_counter() - start) / count


def measure(detector: rbd.Detector, paths: list[Path], rounds: int) -> dict[str, float]:
    """Median over `rounds` of each way's mean milliseconds per image."""
    images = [image for _, batch in image_batches(paths, 1) for _, image in batch]
    ways = {
        "decode": lambda: [batch for _, batch in image_batches(paths, 1)],
        "predict": lambda: [detector.predict(image) for image in images],
        "predict_files, batch 1": lambda: list(predict_files(detector, paths, batch_size=1)),
        "predict_files, batch 8": lambda: list(predict_files(detector, paths)),
    }
    for run in ways.values():  # warm-up: kernels for each input shape, the allocator's heap
        run()
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, run in ways.items():
            times[name].append(per_image_ms(run, len(paths)))
    return {name: round(statistics.median(ms), 2) for name, ms in times.items()}


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="folder holding a checkpoint per set")
    parser.add_argument("--images", type=int, default=60, help="test images per set (default 60)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.set_defaults(sets=["bottle", "ksdd", "weld"])
    args = options.parse(parser)
    rows = []
    for name in args.sets:
        detector = rbd.load(args.checkpoints / name)
        paths = [item.path for item in mvtec_test_set(args.data / name)][: args.images]
        row = {"set": name, "images": len(paths), **measure(detector, paths, args.rounds),
               "evaluate ms_per_image": rbd.evaluate(detector, args.data / name).ms_per_image}
        row["files / (decode + predict)"] = round(row["predict_files, batch 1"] / (row["decode"] + row["predict"]), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    (args.out / "files.json").write_text(json.dumps(rows, indent=1))
    columns = [c for c in rows[0] if c != "set"]
    print("\n| set | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for row in rows:
        print(f"| {row['set']} | " + " | ".join(str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
