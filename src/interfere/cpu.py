"""CPU runtime settings shared by training, analyses and benchmarks: threads and the allocator.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns it with ``munmap`` on free, so each large activation tensor of every step
arrives as untouched pages that the kernel must fault in and zero one 4 KiB page at a time.
Telling ``malloc`` to keep such blocks in its heap and not to trim the heap makes a step reuse
the memory of the previous one: a life_smoke_ref training step went from 5.75 to 5.01 s
(``bench/README.md``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import torch

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc <malloc.h>
_INT_MAX = 2**31 - 1


def keep_freed_memory() -> bool:
    """Make glibc ``malloc`` reuse freed large blocks instead of unmapping them; True if applied.

    A no-op (False) where the C library is not glibc. The process's resident memory then stays
    near its peak until it exits, which is what a training or analysis process wants anyway.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))


def configure_cpu(threads: int, keep_memory: bool = True) -> None:
    """``threads`` intra-op threads for torch, and (by default) :func:`keep_freed_memory`."""
    torch.set_num_threads(threads)
    if keep_memory:
        keep_freed_memory()
