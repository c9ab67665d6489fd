"""Test set-up. The environment variables must be set before anything imports huggingface_hub or
gradio: offline, a Hub miss would otherwise retry for ~23 s, and Gradio would phone home."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests use tiny tensors: one thread is fastest, and with another CPU-bound process on the machine,
    two OpenMP threads contending for cores made a 64 px forward pass take ~1.4 s instead of ~3 ms."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _normal_image(rng, height=64, width=80):
    """A grey part: horizontal stripes with a little sensor noise."""
    rows = 0.5 + 0.25 * np.sin(np.arange(height) / 3.0)[:, None]
    image = np.repeat(rows, width, axis=1) + rng.normal(0, 0.02, (height, width))
    return np.clip(image, 0, 1)


def _defective_image(rng, height=64, width=80):
    """A normal part with a dark disc: the image and its mask."""
    image = _normal_image(rng, height, width)
    cy, cx, r = rng.integers(15, height - 15), rng.integers(15, width - 15), rng.integers(6, 10)
    yy, xx = np.mgrid[:height, :width]
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    image[mask] = 0.05
    return image, mask


def _save(array, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8)).save(path)


def make_category(root: Path, n_train=10, n_good=5, n_bad=5, seed=0) -> Path:
    """A small synthetic MVTec-layout category: striped parts, defects are dark discs."""
    rng = np.random.default_rng(seed)
    for i in range(n_train):
        _save(_normal_image(rng), root / "train" / "good" / f"{i:03d}.png")
    for i in range(n_good):
        _save(_normal_image(rng), root / "test" / "good" / f"{i:03d}.png")
    for i in range(n_bad):
        image, mask = _defective_image(rng)
        _save(image, root / "test" / "hole" / f"{i:03d}.png")
        _save(mask.astype(float), root / "ground_truth" / "hole" / f"{i:03d}_mask.png")
    return root


TINY_MODEL = dict(image_size=64, bottleneck_width=16, embed_dim=64, decoder_widths=(32, 16, 16))


@pytest.fixture(scope="session")
def category(tmp_path_factory) -> Path:
    return make_category(tmp_path_factory.mktemp("data") / "stripes")


@pytest.fixture(scope="session")
def detector(category):
    """A small detector trained once for the whole session (a few seconds on one thread).

    Tests assert verdicts, which must not flip with another CPU's rounding: four held-out images
    and a 0.1% false-alarm rate keep chance false alarms of this tiny model away."""
    import rbd

    config = rbd.TrainConfig(epochs=40, batch_size=4, seed=0, holdout_fraction=0.4, false_alarm_rate=0.001)
    return rbd.train(category / "train" / "good", rbd.ModelConfig(**TINY_MODEL), config)


@pytest.fixture(scope="session")
def checkpoint(detector, tmp_path_factory) -> Path:
    import rbd

    return rbd.save(detector, tmp_path_factory.mktemp("ckpt") / "stripes")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty, offline Hugging Face cache. huggingface_hub reads its settings once at import,
    so the module constants are patched as well as the environment."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf"
    for name, value in {"HF_HUB_OFFLINE": "1", "HF_HOME": str(cache), "HF_HUB_CACHE": str(cache / "hub")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HOME", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache / "hub"))
    return cache / "hub"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_server(checkpoint, tmp_path_factory):
    """The app served in-process on a free port, offering the session's tiny detector as its
    only shipped checkpoint. Yields (url, root): root holds shipped/ and the work folder."""
    import shutil

    import app as app_module
    from rbd.catalog import Catalog

    root = tmp_path_factory.mktemp("app")
    shutil.copytree(checkpoint, root / "shipped" / "stripes")
    demo = app_module.build_app(root / "work", Catalog(root / "shipped", root / "work" / "models"))
    _, url, _ = app_module.launch(demo, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=free_port())
    yield url, root
    demo.close()


@pytest.fixture(scope="session")
def parts(category, detector):
    """(good, defective) test image paths of the synthetic category; the good ones most normal
    first (lowest score), so a test that needs a clear pass takes good[0]."""
    good = sorted((category / "test" / "good").iterdir(), key=lambda path: detector.predict(path).score)
    return good, sorted((category / "test" / "hole").iterdir())
