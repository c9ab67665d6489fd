"""The allocator setting (rbd/allocator.py): freed tensors stay in the process for the next forward pass."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the setting is glibc's; elsewhere keep_freed_memory does nothing")

# Frees a 24 MB tensor and prints how many bytes of free memory malloc still holds (glibc's mallinfo2).
FREED_AND_KEPT = """
import ctypes, sys
if sys.argv[1] == "rbd":
    import rbd
import torch
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
x = torch.ones(6 << 20)
del x
print(mallinfo2().fordblks)
"""


def kept_after_free(first_import: str, **env) -> int:
    run = subprocess.run([sys.executable, "-c", FREED_AND_KEPT, first_import], capture_output=True, text=True, check=True,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}, **env})
    return int(run.stdout.split()[-1])


def test_importing_rbd_keeps_freed_tensors_in_the_process():
    assert kept_after_free("rbd") >= 24 << 20
    assert kept_after_free("torch only") < 24 << 20  # glibc's default hands the block back: the setting is what keeps it


def test_a_users_own_malloc_settings_are_left_alone():
    assert kept_after_free("rbd", MALLOC_MMAP_THRESHOLD_=str(1 << 20)) < 24 << 20
