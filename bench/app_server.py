"""The app as the benchmarks drive it: a server in a process of its own (so its memory and CPU are
its own), on a free port, with a fresh work folder, offering the shipped checkpoints."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(work: Path, timeout_s: float = 180) -> Iterator[tuple[str, int]]:
    """`python app.py` on `work`; yields (url, pid) once it answers, and stops it afterwards."""
    port = free_port()
    env = {**os.environ, "RBD_WORK_DIR": str(work), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env, cwd=ROOT,
                               stdout=open(work / "server.log", "ab"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not start; see {work / 'server.log'}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/", process.pid
    except Exception:
        print((work / "server.log").read_text()[-3000:], file=sys.stderr)  # the server's side of the failure
        raise
    finally:
        process.terminate()
        process.wait(30)


def parts_zip(path: Path, count: int, size: int = 128, seed: int = 0) -> Path:
    """A zip of `count` grey parts (stripes and noise, a dark spot on every tenth), PNG."""
    rng = np.random.default_rng(seed)
    rows = 0.5 + 0.25 * np.sin(np.arange(size) / 3.0)[:, None]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i in range(count):
            image = np.repeat(rows, size, axis=1) + rng.normal(0, 0.02, (size, size))
            if i % 10 == 0:
                y, x = rng.integers(20, size - 20, 2)
                image[y - 6:y + 6, x - 6:x + 6] = 0.05
            png = Path(path.parent / "part.png")
            Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(png)
            archive.write(png, f"parts/{i:05d}.png")
    return path


def parts_images(folder: Path, count: int, size: int = 128, seed: int = 0) -> list[Path]:
    """`parts_zip`'s parts as PNG files under `folder`, in order."""
    with zipfile.ZipFile(parts_zip(folder / "parts.zip", count, size, seed)) as archive:
        archive.extractall(folder)
    return sorted((folder / "parts").glob("*.png"))
