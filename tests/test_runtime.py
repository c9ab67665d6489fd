"""Device and precision choice: mixed precision only where the hardware runs it natively."""

import pytest
import torch

from rbd import runtime


@pytest.mark.parametrize("bf16, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_cuda_gets_bfloat16_where_native_else_float16(monkeypatch, bf16, expected):
    asked = {}

    def supported(including_emulation=True):
        asked["including_emulation"] = including_emulation
        return bf16

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert runtime.autocast_dtype(torch.device("cuda")) is expected
    assert asked["including_emulation"] is False  # emulated bfloat16 would be slower than float32


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, None)])
def test_cpu_gets_bfloat16_only_where_native(monkeypatch, native, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    assert runtime.autocast_dtype(torch.device("cpu")) is expected
    context = runtime.autocast(torch.device("cpu"))
    with context:
        assert torch.is_autocast_enabled("cpu") is (expected is not None)


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        runtime.resolve_device("cuda")
    assert runtime.resolve_device("auto") == torch.device("cpu")


def test_float32_precision_never_autocasts_and_unknown_ones_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    with runtime.autocast(torch.device("cpu"), "float32"):
        assert not torch.is_autocast_enabled("cpu")
    with runtime.autocast(torch.device("cpu"), "auto"):
        assert torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="precision must be one of auto, float32"):
        runtime.autocast(torch.device("cpu"), "float8")


def test_a_float32_detector_runs_its_network_without_autocast(monkeypatch, checkpoint):
    """`Detector.precision` reaches the network: with "float32" no op runs under autocast."""
    import rbd

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    detector = rbd.load(checkpoint)
    seen = []
    detector.network.register_forward_pre_hook(lambda module, args: seen.append(torch.is_autocast_enabled("cpu")))
    image = torch.rand(64, 64, 3).numpy()
    detector.precision = "float32"
    detector.predict(image)
    detector.precision = "auto"
    detector.predict(image)
    assert seen == [False, True]
