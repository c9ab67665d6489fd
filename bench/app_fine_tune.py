"""How many steps a fine-tune in the app makes in its time budget, in a fresh server and right after an Inspect.

    python -m bench.app_fine_tune --minutes 1 --scenarios fresh after-inspect fresh after-inspect

Each scenario starts the app in a process of its own (bench/app_server.py) and fine-tunes a new
model on 30 synthetic parts through the app's API (`/fine_tune`, no starting model), for
`--minutes`; `after-inspect` first scores three images through `/inspect`, as a user who looks at a
few parts before training does. Reported: the steps the fine-tune made and its time by phase, from
the trained model's record, and `cores_busy`, the server's CPU time over the fine-tune's wall time
(2 on an idle 2-core machine whose cores training keeps busy; about 1.2 where CPU kernels stall on
each other's thread teams, rbd.runtime.in_own_thread). Steps move with the load of the machine,
`cores_busy` much less. The two scenarios should be equal: the app must not slow training down
because it has scored an image.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import psutil
from gradio_client import Client, handle_file

from .app_server import parts_images, served

SCENARIOS = ("fresh", "after-inspect")


def fine_tune(scenario: str, minutes: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "work").mkdir()
        images = parts_images(folder, 33, size=256, seed=3)
        with served(folder / "work") as (url, pid):
            client = Client(url, verbose=False, download_files=False)
            if scenario == "after-inspect":
                for image in images[30:]:
                    client.predict(None, [handle_file(str(image))], 0.5, 0.5, api_name="/inspect")
            server, start = psutil.Process(pid), time.perf_counter()
            cpu = sum(server.cpu_times()[:2])
            client.predict([handle_file(str(p)) for p in images[:30]], None, False, "", False, 0, minutes, "bench",
                           api_name="/fine_tune")
            cores_busy = (sum(server.cpu_times()[:2]) - cpu) / (time.perf_counter() - start)
        training = json.loads(next((folder / "work" / "models").rglob("config.json")).read_text())["training"]
    return {"scenario": scenario, "minutes": minutes, "steps": training["steps"], "cores_busy": round(cores_busy, 2),
            "seconds_by_phase": training["seconds_by_phase"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    args = parser.parse_args()
    for scenario in args.scenarios:
        print(json.dumps(fine_tune(scenario, args.minutes)), flush=True)


if __name__ == "__main__":
    main()
