"""`torchrun --nproc_per_node 2 -m rbd train`: two CPU processes (gloo) train one model, each on its own
crops, stop at the same step, and rank 0 alone calibrates and saves."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rbd
from rbd.distributed import Group, current

ROOT = Path(__file__).resolve().parents[1]

# `python -m rbd`, with the crops each process draws written to CROPS_DIR/rank<R>.jsonl, a line a step
RECORDING = """
import importlib, json, os, runpy

training = importlib.import_module("rbd.train")  # the module, which rbd.train (the function) hides
draw = training._random_picks

def recorded(*args):
    picks = draw(*args)
    with open(os.path.join(os.environ["CROPS_DIR"], f"rank{os.environ['RANK']}.jsonl"), "a") as f:
        f.write(json.dumps(picks) + "\\n")
    return picks

training._random_picks = recorded
runpy.run_module("rbd", run_name="__main__", alter_sys=True)
"""


def test_two_processes_train_on_different_crops_and_rank_0_saves(category, tmp_path):
    script, out, crops = tmp_path / "recording.py", tmp_path / "ckpt", tmp_path / "crops"
    script.write_text(RECORDING)
    category = shutil.copytree(category, tmp_path / "data")
    (category / "train" / "good" / "broken.png").write_bytes(b"not an image")  # every process reads it: one says so
    crops.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CROPS_DIR": str(crops), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
               "train", str(category), "--out", str(out), "--image-size", "64", "--epochs", "3", "--device", "cpu", "--quiet"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("saved") == 1 and "with 2 processes" in done.stderr  # rank 0 reports, once
    assert done.stderr.count("skipped 1 unreadable file(s)") == 1, done.stderr[-3000:]

    detector = rbd.load(out)
    summary = detector.training
    assert summary["processes"] == 2
    assert summary["steps"] == 3  # 9 training images, 8 crops a process: one step an epoch
    steps = {rank: [json.loads(line) for line in (crops / f"rank{rank}.jsonl").read_text().splitlines()] for rank in (0, 1)}
    assert len(steps[0]) == len(steps[1]) == summary["steps"]  # both stopped at rank 0's step
    assert steps[0] != steps[1]  # each its own crops
    assert detector.predict(sorted((category / "test" / "good").iterdir())[0]).verdict in ("good", "defective")


def test_one_process_is_a_group_of_one():
    group = current()
    assert group == Group() and group.is_main and group.size == 1
    assert group.from_main(0.25) == 0.25
    assert Group(rank=1, size=2).seed(0) != Group(rank=0, size=2).seed(0)


def test_one_gpu_named_for_every_torchrun_process_is_refused(monkeypatch):
    """Each process takes the GPU of its LOCAL_RANK; `--device cuda:1` would have put them all on one (or fought it)."""
    from rbd import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(rbd.InvalidInputError, match="give --device cuda, not cuda:1"):
        with distributed.process_group("cuda:1"):
            pass
