"""Keep freed memory in the process for the next forward pass instead of handing it back to the OS.

glibc's malloc gives a large block (above its mmap threshold, 128 KiB at first) fresh pages from
the kernel and returns it on free; blocks below the threshold come from the heap, whose top is
returned to the kernel once more than the trim threshold of it is free. A forward pass allocates
and frees the same activations every time (6 MB for one of the teacher's maps of a 256x256
image), and glibc returned them, so every prediction faulted their pages in again (zeroing the
TF padding of one such fresh tensor was among the teacher's costliest operations). With both
thresholds raised, blocks up to `MMAP_THRESHOLD` come from the heap and stay there: a single
256x256 prediction 22 % faster, its teacher 27 % (BENCHMARKS.md). Larger blocks are not kept,
which is why a CPU prediction's batch holds at most `rbd.detector.MAX_CPU_BATCH_PIXELS` of input; training
steps, whose blocks are larger, are unchanged.

Setting either threshold turns off glibc's own adjustment of both, so both are set. Other
platforms, other C libraries, and a process whose user set the thresholds (the MALLOC_*_
environment variables) are left as they are.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit systems
TRIM_THRESHOLD = 256 << 20  # free heap kept: a few forward passes' activations of large images
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True if they were set."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in USER_SETTINGS):
        return False
    mallopt = ctypes.CDLL(None).mallopt
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
