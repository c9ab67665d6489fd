"""Where and how the network runs: device choice, mixed-precision autocast, and on which thread.

Mixed precision runs only where the hardware has it natively (emulation would be slower than
float32): bfloat16 on CPUs with AVX512-BF16/AMX and on recent GPUs, float16 on older CUDA GPUs
(e.g. T4, V100), which training pairs with a gradient scaler. It never reaches the teacher
(`RBD.features` says why), and on a CPU it is for training steps only: maps and scores
(predictions, calibration) stay float32 there (`scoring_autocast`), because bfloat16 would save
a CPU prediction 3-5 % and move its map by up to 0.022 (BENCHMARKS.md), so a checkpoint
judges alike on every CPU.

A server runs the network from its worker threads, which must not keep CPU kernels' thread teams
alive between requests (`in_own_thread`).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Callable, TypeVar

import torch

from .errors import InvalidInputError

T = TypeVar("T")


def device_name_parts(device) -> tuple[str, str]:
    """("auto" | "cpu" | "cuda", index or "") of a device's name as rbd takes it; InvalidInputError for another."""
    kind, _, index = device.partition(":") if isinstance(device, str) else (device, "", "")
    if kind not in ("auto", "cpu", "cuda") or (index and (kind == "auto" or not index.isdigit())):
        raise InvalidInputError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return kind, index


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` picks CUDA when available; asking for CUDA (or one GPU of several, `cuda:1`) without a GPU is a clear error.
    A torch.device is checked by its name too (`meta` was taken, and the detector then failed in its first prediction)."""
    kind, index = device_name_parts(str(device) if isinstance(device, torch.device) else device)
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cpu":
        return torch.device(device)
    if not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} was asked for but no CUDA GPU is available")
    if index and int(index) >= torch.cuda.device_count():
        raise InvalidInputError(f"device {device!r} was asked for but this machine has {torch.cuda.device_count()} GPU(s)")
    return torch.device(device)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 where the hardware has it natively, float16 on other CUDA GPUs, else None (float32)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return torch.bfloat16 if check and check() else None


PRECISIONS = ("auto", "float32")  # auto: autocast as `autocast_dtype` chooses; float32: never (a baseline, or bit-exact maps)


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """Mixed-precision autocast as `autocast_dtype` chooses, or a no-op (none native, or `precision="float32"`)."""
    if precision not in PRECISIONS:
        raise InvalidInputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = autocast_dtype(device) if precision == "auto" else None
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def scoring_autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """`autocast` for computing maps and scores: on a CPU always float32, elsewhere as `precision` says."""
    return autocast(device, "float32" if device.type == "cpu" else precision)


def in_own_thread(fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)` on a new thread that ends with it, in a copy of the caller's context
    (context variables: a server's per-request state); its result or exception is the caller's.

    torch's CPU kernels run on an OpenMP thread team owned by the thread that calls them, and GNU
    OpenMP keeps that team until its thread exits. While two threads own teams (a server's worker
    thread that scored an image, and a training thread), OpenMP counts more threads than cores,
    stops spinning at its barriers, and every kernel of both runs at about one core's speed: a
    fine-tune in the app made 0.6x the steps when an image had been inspected just before it
    (BENCHMARKS.md). A server's worker threads outlive their requests, so a request's network work
    runs here instead, and its team goes when it is done.
    """
    context = contextvars.copy_context()
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = context.run(fn, *args, **kwargs)
        except BaseException as err:  # re-raised on the caller's thread, StopIteration included
            outcome["error"] = err

    thread = threading.Thread(target=run, name=f"rbd-{getattr(fn, '__name__', 'call')}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
