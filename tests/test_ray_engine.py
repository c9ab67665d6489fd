"""`rbd predict --engine ray`: Ray Data and a pool of detector actors write what the local engine
writes (plus results.parquet), from local folders and pyarrow URIs, listing unreadable files
without stopping; with --address it joins a running cluster."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import rbd
from rbd.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _rows(folder):
    with open(folder / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def inputs(category, tmp_path):
    """Test images in two folders (one read through a file:// URI), a stem twice, and an unreadable file."""
    local, remote = tmp_path / "local", tmp_path / "remote"
    shutil.copytree(category / "test" / "good", local / "good")
    (local / "good" / "broken.png").write_bytes(b"not an image")
    shutil.copytree(category / "test" / "hole", remote / "hole")
    shutil.copy(category / "test" / "good" / "000.png", remote / "000.png")  # the stem 000 again
    return local, remote


def _assert_same_outputs(ray_out, local_out, uri_of=lambda file: file):
    ours, theirs = _rows(ray_out), _rows(local_out)
    assert [r["file"] for r in ours] == [uri_of(r["file"]) for r in theirs] and len(ours) == 11
    for a, b in zip(ours, theirs):
        assert float(a["score"]) == pytest.approx(float(b["score"]), abs=1e-4)
        assert float(a["normalized_score"]) == pytest.approx(float(b["normalized_score"]), abs=1e-4)
        assert a["threshold"] == b["threshold"] and a["verdict"] == b["verdict"]
        assert (a["overlay"], a["mask"]) == (b["overlay"], b["mask"]) and (ray_out / a["overlay"]).is_file()
    pictures = sorted(p.relative_to(local_out).as_posix() for p in local_out.rglob("*.png"))
    assert pictures == sorted(p.relative_to(ray_out).as_posix() for p in ray_out.rglob("*.png")) and len(pictures) == 22
    assert "hole/000_overlay.png" in pictures and "good/000_overlay.png" in pictures  # each folder's tree kept
    for name in pictures:
        a, b = (np.asarray(Image.open(folder / name), dtype=int) for folder in (ray_out, local_out))
        assert np.abs(a - b).max() <= 1, name  # overlays: maps equal to float rounding; masks: equal


def test_ray_engine_writes_what_the_local_engine_writes(checkpoint, inputs, tmp_path, capfd):
    """capfd: what the process writes to its standard error, Ray's C++ core too, not only Python's sys.stderr."""
    local, remote = inputs
    assert main(["predict", str(checkpoint), str(local), str(remote), "--out", str(tmp_path / "by_local"), "--batch-size", "3"]) == 0
    local_warning = capfd.readouterr().err
    remote_uri = remote.as_uri()
    code = main(["predict", str(checkpoint), str(local), remote_uri, "--out", str(tmp_path / "by_ray"),
                 "--engine", "ray", "--batch-size", "3"])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert "results.parquet" in out and "logging.cc" not in err  # Ray's own start-up line stays out
    skipped = [line for line in err.splitlines() if "skipped 1 unreadable file(s)" in line]
    assert len(skipped) == 1 and "broken.png: not an image file" in skipped[0] and "broken.png" in local_warning
    _assert_same_outputs(tmp_path / "by_ray", tmp_path / "by_local",
                         lambda file: file.replace(str(remote), remote_uri) if file.startswith(str(remote)) else file)

    table = pq.read_table(tmp_path / "by_ray" / "results.parquet").to_pylist()
    assert len(table) == 12 and {r["file"] for r in table} >= {str(local / "good" / "broken.png")}
    broken = next(r for r in table if r["file"].endswith("broken.png"))
    assert broken["score"] is None and "not an image file" in broken["error"] and broken["overlay"] is None
    scored = {r["file"]: r for r in table if r["error"] is None}
    for row in _rows(tmp_path / "by_ray"):
        assert scored[row["file"]]["score"] == pytest.approx(float(row["score"]), abs=1e-6)
        assert (scored[row["file"]]["overlay"], scored[row["file"]]["mask"]) == (row["overlay"], row["mask"])
        assert 0 <= scored[row["file"]]["familiarity"] <= 1
        assert scored[row["file"]]["out_of_domain"] == {"yes": True, "no": False}[row["out_of_domain"]]


def test_a_uri_folder_lists_names_with_uri_syntax_in_them_as_the_files_they_are(tmp_path):
    """A space, '%' or '#' in a file name must not be read as URI syntax (`c%41.jpg` opened as `cA.jpg`)."""
    from pyarrow import fs

    from rbd.cli import _input_images
    from rbd.ray_engine import list_uri

    names = ["a b.png", "c%41.png", "cA.png", "d#1.png"]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(bytes([i]) * 8)
    uris = list_uri(tmp_path.as_uri())
    for uri, name in zip(uris, sorted(names)):
        filesystem, path = fs.FileSystem.from_uri(uri)
        with filesystem.open_input_stream(path) as stream:
            assert stream.readall() == (tmp_path / name).read_bytes(), uri
    assert [name for _, name in _input_images([tmp_path.as_uri()], uris=True)] == [n.removesuffix(".png") for n in sorted(names)]


def test_ray_engine_joins_a_running_cluster(checkpoint, inputs, tmp_path):
    """A cluster this test starts (and stops); the command, another process, joins it by its address."""
    import ray

    local, remote = inputs
    context = ray.init(num_cpus=2, include_dashboard=False)
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "rbd", "predict", str(checkpoint), str(local), str(remote),
                               "--out", str(tmp_path / "by_ray"), "--engine", "ray", "--address", context.address_info["address"],
                               "--batch-size", "4", "--quiet"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    finally:
        ray.shutdown()
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["predict", str(checkpoint), str(local), str(remote), "--out", str(tmp_path / "by_local"), "--quiet"]) == 0
    _assert_same_outputs(tmp_path / "by_ray", tmp_path / "by_local")


def test_address_without_the_ray_engine_is_a_usage_mistake(checkpoint, inputs, tmp_path, capsys):
    assert main(["predict", str(checkpoint), str(inputs[0]), "--out", str(tmp_path / "o"), "--address", "127.0.0.1:1"]) == 2
    assert "--address" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_a_file_uri_folder_leaves_out_its_output_folder_as_a_local_folder_does(inputs, tmp_path):
    """`--out` inside a folder named as file:// leaves out what a run before wrote there (its masks and overlays were
    scored), and keeps the user's own images there, as a local folder does."""
    from rbd.cli import _input_images
    from rbd.outputs import marked, png_bytes

    folder, _ = inputs
    out = folder / "results"
    out.mkdir()
    (out / "000_mask.png").write_bytes(marked(png_bytes(np.zeros((8, 8, 3), np.uint8)), "mask", out, "000_mask.png"))
    Image.new("L", (8, 8)).save(out / "mine.png")
    as_path = [name for _, name in _input_images([str(folder)], uris=True, leave_out=out)]
    assert [name for _, name in _input_images([folder.as_uri()], uris=True, leave_out=out)] == as_path
    assert "results/mine" in as_path and "results/000_mask" not in as_path


def test_a_long_non_ascii_name_is_decoded_as_any_other(checkpoint, inputs):
    """A URI's name is percent-encoded: 32 CJK characters (96 bytes) became 288, over a file name's limit."""
    from rbd.ray_engine import _Scorer

    scorer = _Scorer(str(checkpoint), None, "cpu", 1)
    image = inputs[0] / "good" / "000.png"
    uri = f"file:///data/{'%E6%A4%9C' * 32}.png"
    decoded, notice, size = scorer._decode(uri, image.read_bytes())
    assert decoded.shape[:2] == size == Image.open(image).size[::-1] and notice is None
    with pytest.raises(rbd.ImageReadError, match="%E6%A4%9C.png"):
        scorer._decode(uri, b"not an image")
    with pytest.raises(rbd.ImageReadError, match="^file:///data/myinput.png: not an image file$"):  # the name kept whole
        scorer._decode("file:///data/myinput.png", b"not an image")


def test_rays_own_lines_are_kept_whenever_it_joins_a_cluster(tmp_path, monkeypatch):
    """They are all a user sees of a cluster that does not answer: named by --address, by RAY_ADDRESS (which `ray job
    submit` sets) or by the file a `ray start` leaves; only a local instance's start-up line is left out."""
    from rbd.ray_engine import _joins_a_cluster

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert not _joins_a_cluster(None) and _joins_a_cluster("10.0.0.1:6379")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert _joins_a_cluster(None)
    monkeypatch.delenv("RAY_ADDRESS")
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("10.0.0.1:6379")
    assert _joins_a_cluster(None)
