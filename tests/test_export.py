"""ONNX export: the whole scoring network in one file, run by onnxruntime with torch's outputs, the
calibration in its metadata, and `rbd.load` / `rbd predict` taking the file like a checkpoint."""

import csv
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import rbd
from rbd.checkpoint import checkpoint_config
from rbd.cli import main
from rbd.export import export_onnx, onnx_target
from rbd.network import ScoringNetwork


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    """The session's checkpoint exported by the command line (once: an export takes half a minute)."""
    path = tmp_path_factory.mktemp("onnx") / "stripes.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(path), "--quiet"]) == 0
    return path


def test_the_file_has_named_dynamic_inputs_outputs_and_the_checkpoint_config(exported, detector):
    model = onnx.load(str(exported))
    shape = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert [(v.name, shape(v)) for v in model.graph.input] == [("image", ["batch", 3, "height", "width"])]
    assert [(v.name, shape(v)) for v in model.graph.output] == [
        ("anomaly_map", ["batch", 1, "height", "width"]), ("score", ["batch"]), ("familiarity", ["batch"])]
    metadata = json.loads({p.key: p.value for p in model.metadata_props}["rbd"])
    assert metadata == json.loads(json.dumps(checkpoint_config(detector)))  # threshold, calibration, model settings


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (3, 3, 96, 160)])
def test_onnxruntime_gives_torchs_map_score_and_familiarity(exported, detector, shape):
    """Two sizes and batch sizes, neither the one the export was traced with (2 x 64 x 96)."""
    images = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    anomaly_map, score, familiarity = session.run(None, {"image": images.numpy()})
    with torch.no_grad():
        expected = ScoringNetwork(detector.model)(images)
    assert anomaly_map.shape == (shape[0], 1, *shape[2:]) and score.shape == familiarity.shape == (shape[0],)
    assert np.abs(anomaly_map - expected.anomaly_map.numpy()).max() <= 1e-3
    np.testing.assert_allclose(score, expected.score.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(familiarity, expected.familiarity.numpy(), atol=1e-6)



@pytest.mark.parametrize("shape", [(1, 3, 65, 64), (1, 3, 100, 130)])
def test_onnxruntime_refuses_sides_that_are_not_multiples_of_the_input_multiple(exported, shape):
    """Used directly, at sides rbd never feeds: an error, not a wrong map."""
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="Reshape"):
        session.run(None, {"image": np.random.default_rng(0).random(shape, dtype=np.float32)})

def test_load_gives_a_detector_with_the_checkpoints_predictions(exported, checkpoint, category):
    torch_detector, onnx_detector = rbd.load(checkpoint), rbd.load(exported)
    assert onnx_detector.config == torch_detector.config
    assert onnx_detector.threshold == torch_detector.threshold and onnx_detector.calibration == torch_detector.calibration
    assert onnx_detector.training == torch_detector.training
    paths = sorted((category / "test").rglob("*.png"))
    for ours, theirs in zip(onnx_detector.predict_batch(paths, batch_size=3), torch_detector.predict_batch(paths, batch_size=3)):
        # maps are standardised (divided by small normal spreads), so float32 rounding differences of the two runtimes grow
        assert ours.score == pytest.approx(theirs.score, rel=1e-3)
        assert ours.normalized_score == pytest.approx(theirs.normalized_score, rel=1e-3)
        assert ours.familiarity == pytest.approx(theirs.familiarity)
        assert ours.verdict == theirs.verdict and ours.anomaly_map.shape == theirs.anomaly_map.shape
        assert np.abs(ours.anomaly_map - theirs.anomaly_map).max() <= 1e-3


def test_predict_and_info_take_the_onnx_file(exported, checkpoint, category, tmp_path, capsys):
    images = category / "test" / "hole"
    rows = {}
    for name, model in (("torch", checkpoint), ("onnx", exported)):
        assert main(["predict", str(model), str(images), "--out", str(tmp_path / name), "--quiet"]) == 0
        with open(tmp_path / name / "results.csv", newline="") as f:
            rows[name] = list(csv.DictReader(f))
    assert [r["file"] for r in rows["onnx"]] == [r["file"] for r in rows["torch"]] and len(rows["onnx"]) == 5
    for ours, theirs in zip(rows["onnx"], rows["torch"]):
        assert float(ours["score"]) == pytest.approx(float(theirs["score"]), rel=1e-4, abs=1e-4)
        assert ours["verdict"] == theirs["verdict"] and ours["threshold"] == theirs["threshold"]
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted(p.name for p in (tmp_path / "torch").iterdir())
    capsys.readouterr()
    assert main(["info", str(exported)]) == 0
    assert json.loads(capsys.readouterr().out)["threshold"] == rbd.load(checkpoint).threshold


def test_bad_exports_and_files_are_one_line_errors(exported, checkpoint, tmp_path, capsys):
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "model.bin")]) == 2
    assert "--out" in capsys.readouterr().err and not (tmp_path / "model.bin").exists()
    assert main(["export", str(exported), "--out", str(tmp_path / "again.onnx")]) == 2
    err = capsys.readouterr().err
    assert "ONNX export, which has no torch model" in err and "exporting" not in err  # refused before the long work is announced
    for target in ("model", tmp_path):  # the Python API checks its target before the export's minute too
        with pytest.raises(rbd.InvalidInputError, match="the ONNX file to write, a name ending in .onnx"):
            export_onnx(rbd.load(checkpoint), target)
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(rbd.CheckpointError, match="not a readable ONNX model"):
        rbd.load(tmp_path / "broken.onnx")
    stranger = onnx.load(str(exported))
    del stranger.metadata_props[:]
    onnx.save(stranger, str(tmp_path / "stranger.onnx"))
    with pytest.raises(rbd.CheckpointError, match="not exported by rbd"):
        rbd.load(tmp_path / "stranger.onnx")
    for other in ("stranger.onnx", "broken.onnx"):  # another tool's model, or no model: the user's file, never written over
        before = (tmp_path / other).read_bytes()
        assert main(["export", str(checkpoint), "--out", str(tmp_path / other)]) == 2
        assert "is there, and is no ONNX export of rbd's: remove it or name another file" in capsys.readouterr().err
        assert (tmp_path / other).read_bytes() == before
    assert onnx_target(exported) == exported  # an earlier export of rbd's: replaced
    with pytest.raises(rbd.InvalidInputError, match="no torch model"):
        rbd.save(rbd.load(exported), tmp_path / "ckpt")



def test_a_session_on_one_gpu_of_several_is_given_its_index(exported, monkeypatch):
    """Without a device id onnxruntime's CUDA provider runs on GPU 0, whichever GPU `to("cuda:1")` named."""
    from types import SimpleNamespace

    from rbd import onnx_runtime

    asked = []
    session = SimpleNamespace(get_outputs=lambda: [SimpleNamespace(name=name) for name in onnx_runtime.OUTPUTS])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", lambda path, options, providers: asked.append(providers) or session)
    onnx_runtime.OnnxNetwork(exported, device="cuda:1")
    onnx_runtime.OnnxNetwork(exported, device="cpu")
    assert asked == [[("CUDAExecutionProvider", {"device_id": 1})], [("CPUExecutionProvider", {})]]


def test_auto_takes_a_gpu_only_where_onnxruntime_has_one(exported, monkeypatch):
    """The onnxruntime rbd installs is the CPU build: on a GPU machine `rbd predict model.onnx` (device auto) refused to run."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert rbd.load(exported, device="auto").network.device == torch.device("cpu")
    with pytest.raises(rbd.InvalidInputError, match="this onnxruntime cannot run on cuda"):  # asked for by name: said
        rbd.load(exported, device="cuda")
