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


def test_a_detector_moves_to_a_device_named_as_rbd_names_them(monkeypatch, checkpoint):
    """`Detector.to("gpu")` or `"cuda"` without a GPU ended in a bare torch error; "auto" was no device at all."""
    import rbd

    detector = rbd.load(checkpoint)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert detector.to("auto").network.device == torch.device("cpu")
    for device, said in (("gpu", "device must be auto, cpu, cuda or cuda:N"), ("cuda", "no CUDA GPU"), ("cuda:1", "no CUDA GPU"),
                         (torch.device("meta"), "device must be auto, cpu, cuda or cuda:N, got 'meta'"),
                         (torch.device("cuda"), "no CUDA GPU")):
        with pytest.raises(rbd.InvalidInputError, match=said):
            detector.to(device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(rbd.InvalidInputError, match="'cuda:1' was asked for but this machine has 1 GPU"):
        runtime.resolve_device("cuda:1")
    assert runtime.resolve_device("cuda:0") == torch.device("cuda:0")
    assert runtime.resolve_device("cpu:0") == torch.device("cpu:0")  # as torch names it


def test_float32_precision_never_autocasts_and_unknown_ones_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    with runtime.autocast(torch.device("cpu"), "float32"):
        assert not torch.is_autocast_enabled("cpu")
    with runtime.autocast(torch.device("cpu"), "auto"):
        assert torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="precision must be one of auto, float32"):
        runtime.autocast(torch.device("cpu"), "float8")


def test_scoring_on_a_cpu_never_autocasts_elsewhere_as_precision_says(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    for precision in runtime.PRECISIONS:
        with runtime.scoring_autocast(torch.device("cpu"), precision):
            assert not torch.is_autocast_enabled("cpu")
    asked = []
    monkeypatch.setattr(runtime, "autocast", lambda device, precision="auto": asked.append((device.type, precision)))
    runtime.scoring_autocast(torch.device("cuda"), "auto")
    assert asked == [("cuda", "auto")]


def test_a_prediction_on_a_bfloat16_cpu_is_the_float32_path(monkeypatch, checkpoint):
    """Maps and scores stay float32 on a CPU whatever it runs natively, so a checkpoint judges
    alike on every CPU: no op of the network runs under autocast, and the teacher is float32
    even when a caller autocasts."""
    import rbd

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    detector = rbd.load(checkpoint)
    seen = []
    detector.network.register_forward_pre_hook(lambda module, args: seen.append(torch.is_autocast_enabled("cpu")))
    detector.predict(torch.rand(64, 64, 3).numpy())
    assert seen == [False]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert all(f.dtype == torch.float32 for f in detector.model.features(torch.rand(1, 3, 64, 64)))


def test_in_own_thread_runs_on_a_thread_that_ends_with_the_call_in_the_callers_context():
    import contextvars
    import threading

    request = contextvars.ContextVar("request")
    request.set("user-7")
    seen = {}

    def work(x, scale=1):
        seen["thread"] = threading.current_thread()
        seen["request"] = request.get()
        return x * scale

    assert runtime.in_own_thread(work, 3, scale=2) == 6
    assert seen["thread"] is not threading.current_thread() and not seen["thread"].is_alive()
    assert seen["request"] == "user-7"

    def fail():
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        runtime.in_own_thread(fail)
    with pytest.raises(StopIteration):  # a generator's end reaches the caller, who resumes it there
        runtime.in_own_thread(next, iter([]))
