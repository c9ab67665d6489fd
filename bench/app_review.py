"""Per-decision latency of a review through the API, with 50 and with 5,000 images, and the server's
memory after scoring the large review and inspecting 200 images.

    python -m bench.app_review [--large 5000] [--decisions 40] [--size 128]

A decision is one `/review_accept` call (record it, move on, send the new page of the gallery,
the current image and the metrics), timed from the client; the figure is the median over
`--decisions` calls. Scoring goes through `/review_score` with a zip of synthetic `--size` square
parts and the shipped bottle checkpoint.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import psutil
from gradio_client import Client, handle_file

from .app_server import parts_zip, served

RATE = 1.0  # % expected false alarms: the shipped checkpoints' calibrated rate


def decision_ms(client: Client, review_id: str, count: int) -> float:
    client.predict(review_id, RATE, "all", api_name="/review_list")
    times = []
    for _ in range(count):
        start = time.perf_counter()
        client.predict(review_id, RATE, "all", api_name="/review_accept")
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--decisions", type=int, default=40)
    parser.add_argument("--inspected", type=int, default=200)
    parser.add_argument("--size", type=int, default=128, help="side of the synthetic parts, in pixels")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "work").mkdir()
        with served(folder / "work") as (url, pid):
            client = Client(url, verbose=False, download_files=False)  # time the server, not downloads of the pictures
            server = psutil.Process(pid)
            results["rss_mb_started"] = server.memory_info().rss / 2**20
            for name, count in (("small", args.small), ("large", args.large)):
                archive = parts_zip(folder / f"{name}.zip", count, args.size, seed=count)
                start = time.perf_counter()
                client.predict([handle_file(str(archive))], None, name, api_name="/review_score")
                results[f"{name}_images"] = count
                results[f"{name}_scoring_images_per_s"] = count / (time.perf_counter() - start)
                results[f"{name}_decision_ms"] = decision_ms(client, name, args.decisions)
            results["rss_mb_after_review"] = server.memory_info().rss / 2**20
            inspect = parts_zip(folder / "inspect.zip", 20, args.size, seed=1)
            for _ in range(args.inspected // 20):  # 20 at a time: what one browser's Inspect holds
                Client(url, verbose=False, download_files=False).predict(None, [handle_file(str(inspect))], RATE, 0.5, api_name="/inspect")
            results["rss_mb_after_inspecting"] = server.memory_info().rss / 2**20
    results["decision_ratio_large_to_small"] = results["large_decision_ms"] / results["small_decision_ms"]
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
