"""The GPU path, measured in one run: batched throughput, maps against the CPU's, a fine-tune's quality.

    python -m bench.gpu --checkpoint checkpoints/bottle                    # on a CUDA machine
    python -m bench.gpu --device cpu --batches 1 2 --minutes 0.1 --sets S  # CPU mode: what CI runs

1. Throughput: images per second of `Detector.predict_batch` on 256x256 images at each
   `--batches` size, with the default precision (bfloat16/float16 autocast of the student where
   the device has it; the teacher is always float32) and in float32.
2. Agreement: the largest difference of maps and scores between this device and the CPU's float32
   path on the same images (float32 on the device should agree to 1e-3; mixed precision less).
3. Quality: on each of `--sets`, training for `--minutes` on the device, then `rbd.evaluate`.

Results go to `--out/gpu-<device>.json` and print as tables. bfloat16/float16 autocast and
batching on CUDA have no other check in this project: run this when a GPU is at hand.
"""

from __future__ import annotations

import json
import platform
import statistics
import time

import numpy as np
import torch

import rbd
from bench import options
from rbd.datasets import mvtec_test_set, training_folder
from rbd.images import read_image, read_image_folder


def images_per_second(detector: rbd.Detector, batch: int, repeats: int, size: int = 256) -> float:
    """Median over `repeats` timed calls of `predict_batch` on `batch` random images (after one warm-up)."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(batch)]
    detector.predict_batch(images, batch)  # warm-up: kernels chosen, memory allocated
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detector.predict_batch(images, batch)  # maps come back to the CPU as numpy: the device has finished
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def throughput(checkpoint: str, device: str, batches: list[int], repeats: int) -> list[dict]:
    rows = []
    for precision in ("auto", "float32"):
        detector = rbd.load(checkpoint, device=device)
        detector.precision = precision
        rows += [{"precision": precision, "batch": b, "images_per_second": round(images_per_second(detector, b, repeats), 2)}
                 for b in batches]
    return rows


def agreement(checkpoint: str, device: str, images: list[np.ndarray]) -> list[dict]:
    """Largest map and score differences of this device's predictions from the CPU's float32 ones."""
    reference = rbd.load(checkpoint, device="cpu")
    reference.precision = "float32"
    expected = reference.predict_batch(images)
    rows = []
    for precision in ("float32", "auto"):
        detector = rbd.load(checkpoint, device=device)
        detector.precision = precision
        got = detector.predict_batch(images)
        rows.append({"precision": precision, "images": len(images),
                     "max_map_difference": float(max(np.abs(a.anomaly_map - b.anomaly_map).max() for a, b in zip(got, expected))),
                     "max_score_difference": float(max(abs(a.score - b.score) for a, b in zip(got, expected)))})
    return rows


def quality(data, name: str, device: str, minutes: float) -> dict:
    images, _ = read_image_folder(training_folder(data / name))
    detector = rbd.train(images, config=rbd.TrainConfig(max_minutes=minutes, device=device))
    return {"set": name, "steps": detector.training["steps"], "train_s": detector.training["seconds"],
            **rbd.evaluate(detector, data / name).summary()}


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--checkpoint", default="checkpoints/bottle", help="the model for throughput and agreement")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per set")
    args = options.parse(parser)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; use --device cpu for the CPU mode")
    sample = [read_image(item.path) for item in mvtec_test_set(args.data / args.sets[0])[:8]]
    result = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine(),
        "torch": torch.__version__, "threads": args.threads, "date": time.strftime("%Y-%m-%d"),
        "throughput": throughput(args.checkpoint, args.device, args.batches, args.repeats),
        "agreement": agreement(args.checkpoint, args.device, sample),
        "quality": [quality(args.data, name, args.device, args.minutes) for name in args.sets],
    }
    (args.out / f"gpu-{args.device.replace(':', '')}.json").write_text(json.dumps(result, indent=2))
    print(f"{result['device']}, torch {result['torch']}, {result['date']}")
    print("| precision | batch | images/s |\n|---|---|---|")
    for row in result["throughput"]:
        print(f"| {row['precision']} | {row['batch']} | {row['images_per_second']} |")
    print("| precision | max map difference | max score difference |\n|---|---|---|")
    for row in result["agreement"]:
        print(f"| {row['precision']} | {row['max_map_difference']:.2e} | {row['max_score_difference']:.2e} |")
    print("| set | steps | image AUROC | pixel AUROC | AUPRO |\n|---|---|---|---|---|")
    for row in result["quality"]:
        cells = [row["image_auroc"], row["pixel_auroc"], row["aupro"]]
        print(f"| {row['set']} | {row['steps']} | " + " | ".join("–" if c is None else f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
