"""Eight users inspecting at once while a fine-tune runs, against one user alone during the same fine-tune.

    python -m bench.app_load [--users 8] [--seconds 60]

Each user is a `gradio_client` session calling `/inspect` with one new 256x256 image at a time
(new images: one already held would not be scored again), as fast as answers come. A ninth
session fine-tunes the shipped bottle checkpoint on synthetic parts for the whole run and is
cancelled at the end. Reports images per second, p50 and p95 latency and errors for one user and
for all users together.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from gradio_client import Client, handle_file

from .app_server import parts_images, served

RATE = 1.0


def users(url: str, images: list[Path], count: int, seconds: float) -> dict:
    """`count` sessions inspecting for `seconds`; their latencies and errors together."""
    latencies, errors, pool, lock = [], [], itertools.cycle(images), threading.Lock()
    until = time.monotonic() + seconds

    def user():
        client = Client(url, verbose=False, download_files=False)
        while time.monotonic() < until:
            with lock:
                image = next(pool)
            start = time.perf_counter()
            try:
                client.predict(None, [handle_file(str(image))], RATE, 0.5, api_name="/inspect")
                latencies.append(time.perf_counter() - start)
            except Exception as err:  # counted and reported, never hidden
                errors.append(repr(err)[:200])

    threads = [threading.Thread(target=user) for _ in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {"users": count, "images": len(latencies), "images_per_s": len(latencies) / elapsed,
            "p50_s": statistics.median(ordered) if ordered else None,
            "p95_s": ordered[int(0.95 * (len(ordered) - 1))] if ordered else None, "errors": len(errors), "first_errors": errors[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "work").mkdir()
        images = parts_images(folder, 600, size=256, seed=3)
        with served(folder / "work") as (url, _):
            trainer = Client(url, verbose=False, download_files=False)
            training = trainer.submit([handle_file(str(p)) for p in images[:10]], None, False, "", True, 100000, 0, "bench",
                                      api_name="/fine_tune")
            while not training.status().progress_data and not training.done():  # wait until it trains
                time.sleep(1)
            alone = users(url, images[:300], 1, args.seconds)
            together = users(url, images[300:], args.users, args.seconds)
            cancelled = trainer.predict(api_name="/cancel_training")
    print(json.dumps({"one_user": alone, "all_users": together,
                      "throughput_ratio": together["images_per_s"] / alone["images_per_s"],
                      "training": cancelled}, indent=1))


if __name__ == "__main__":
    main()
