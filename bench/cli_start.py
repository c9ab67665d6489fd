"""How long the command line takes to answer where it builds no model: `--help`, `info`, a usage mistake.

    python -m bench.cli_start --runs 7
    python -m bench.cli_start --runs 7 --checkouts /tmp/rbd-old .    # two checkouts, run alternately

Each run is a fresh `python -m rbd` process (what a user waits for), timed from start to exit; the
checkouts take turns, so that a machine's slower moments fall on both. Prints the median and range
of each command's seconds per checkout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
COMMANDS = {  # what each answers without a model, and its exit status: the parser, a checkpoint's stored config, a usage mistake
    "--help": (["--help"], 0),
    "info": (["info", str(CHECKOUT / "checkpoints" / "bottle")], 0),
    "usage mistake": (["train"], 2),
}


def seconds(checkout: Path, arguments: list[str], status: int) -> float:
    """One fresh process's wall-clock seconds for `python -m rbd ARGUMENTS` with `checkout`'s rbd; a run that ends
    otherwise than `status` (a checkout that fails to import ends fast) is an error, not a time."""
    environment = {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "rbd", *arguments], env=environment, cwd=checkout, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != status:
        raise SystemExit(f"{checkout}: rbd {' '.join(arguments)} ended with {result.returncode}, not {status}: {result.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command per checkout (default: %(default)s)")
    parser.add_argument("--checkouts", nargs="+", type=Path, default=[CHECKOUT], help="rbd checkouts (default: this one)")
    args = parser.parse_args()
    times = {(checkout, name): [] for checkout in args.checkouts for name in COMMANDS}
    for _ in range(args.runs):
        for name, (arguments, status) in COMMANDS.items():
            for checkout in args.checkouts:
                times[checkout, name].append(seconds(checkout.resolve(), arguments, status))
    print("| checkout | command | median s | range s |\n|---|---|---|---|")
    for (checkout, name), values in times.items():
        print(f"| {checkout} | {name} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |")


if __name__ == "__main__":
    main()
