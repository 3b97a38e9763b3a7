"""The CPU memory allocator: keep freed memory in the process, so that a training step does not page-fault.

PyTorch's CPU tensors come from the C library's malloc. glibc's defaults give memory back to the system: a request
above its mmap threshold (which moves with the program's history, up to 32 MB) is a fresh mmap, unmapped again on
free, and free memory at the top of the heap beyond its trim threshold is returned too. A training step allocates and
frees the same large activations every step, so under those defaults some of them come back as fresh pages every
step, and every 4 KB page is zeroed by the kernel on first touch (a minor page fault). How many depends on the order
of allocations and on what else the process holds; on the default pair, LayAlign's training step costs about 1.2x
MindMerger's with glibc's defaults and 1.1x with this setting (docs/results/speed.md, `benchmarks/speed.py --modes
train [--malloc default]`).

`keep_freed_memory` fixes both thresholds: allocations up to 32 MB (glibc's ceiling for the mmap threshold) come
from the heap, and the heap is never trimmed, so that a step reuses the previous step's pages; what PyTorch's CUDA
caching allocator does for GPU memory. Larger blocks are still mapped and unmapped each time: served from the heap,
glibc's aligned allocation (posix_memalign, which PyTorch uses) can leave holes just too small for the next block of
the same size, and the process would grow. The process keeps the memory of its largest step (the size it reaches at
every step anyway: the peak is unchanged). The `layalign` command calls it at start-up; library users can call it
themselves. It leaves the allocator alone where the user has chosen one: MALLOC_* variables set, another malloc
preloaded (jemalloc, tcmalloc), or LAYALIGN_MALLOC=default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's ceiling on 64-bit systems
_INT_MAX = 2**31 - 1  # mallopt takes a C int


def keep_freed_memory() -> bool:
    """Configure glibc's malloc to keep freed blocks of up to 32 MB for reuse (see the module's notes). Returns True
    if it did; False on other systems or C libraries, or where the user chose the allocator."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if os.environ.get("LAYALIGN_MALLOC", "").lower() == "default":
        return False
    if any(name.startswith("MALLOC_") for name in os.environ) or "malloc" in os.environ.get("LD_PRELOAD", ""):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # mallopt returns 1 on success; either setting alone also switches off glibc's moving thresholds
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(libc.mallopt(M_TRIM_THRESHOLD, _INT_MAX))
