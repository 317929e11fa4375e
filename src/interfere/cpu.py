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
import gc
import platform
from pathlib import Path

import torch

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc <malloc.h>
_INT_MAX = 2**31 - 1


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c"))


def keep_freed_memory() -> bool:
    """Make glibc ``malloc`` reuse freed large blocks instead of unmapping them; True if applied.

    A no-op (False) where the C library is not glibc. The process's resident memory then stays
    near its peak until :func:`release_freed_memory` or exit.
    """
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the kernel (glibc ``malloc_trim``), between the parts of a
    long job: one part's freed blocks, too fragmented for the next part's sizes, would otherwise
    stay resident beside them (the life32 report peaked 1.4 GB above its largest analysis)."""
    gc.collect()  # tensors held only by reference cycles are freed first
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def configure_cpu(threads: int, keep_memory: bool = True) -> None:
    """``threads`` intra-op threads for torch, and (by default) :func:`keep_freed_memory`."""
    torch.set_num_threads(threads)
    if keep_memory:
        keep_freed_memory()


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with native bf16 matmuls


def cpu_description() -> str:
    """The CPU's model name and its kernel capability (e.g. ``AVX512``), with or without native bf16:
    benchmark results carry it, since bf16 speed differs ~600x between CPUs with and without it."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    except OSError:
        name = platform.processor() or platform.machine()
    bf16 = "native bf16" if native_bf16() else "no native bf16"
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}, {bf16}"


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX); without, bf16 is emulated and
    hundreds of times slower."""
    try:
        return any(f in Path("/proc/cpuinfo").read_text().split() for f in BF16_FLAGS)
    except OSError:
        return False
