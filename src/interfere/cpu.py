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
import time
from pathlib import Path

import torch
import torch.nn.functional as F

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


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with native bf16 matmuls
BF16_MIN_SPEEDUP = 1.25  # bf16 is chosen only when clearly faster, so the choice does not flip run to run


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX); without it bf16 is emulated, ~100x slower."""
    try:
        return any(f in Path("/proc/cpuinfo").read_text().split() for f in BF16_FLAGS)
    except OSError:
        return False


def bf16_speedup(rows: int, d_model: int, d_mlp: int, repeats: int = 5) -> float:
    """fp32 time over bf16-autocast time of the training step's largest product ``[rows, d_model] x
    [d_model, d_mlp]``, forward and backward (best of ``repeats`` each)."""
    x = torch.randn(rows, d_model, requires_grad=True)
    w = torch.randn(d_mlp, d_model, requires_grad=True)

    def best(bf16: bool) -> float:
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = F.linear(x, w)
            y.float().sum().backward()
            times.append(time.perf_counter() - t0)
        return min(times[1:])

    return best(False) / best(True)


def cpu_autocast_choice(rows: int, d_model: int, d_mlp: int) -> tuple[bool, str]:
    """``train.autocast: auto`` on a CPU: (use bf16, why), decided once at start-up."""
    if not native_bf16():
        return False, f"this CPU has no native bf16 ({' / '.join(BF16_FLAGS)} absent): fp32"
    speedup = bf16_speedup(rows, d_model, d_mlp)
    if speedup >= BF16_MIN_SPEEDUP:
        return True, f"native bf16, measured {speedup:.2f}x faster than fp32 at this shape: bf16"
    return False, f"native bf16, but measured only {speedup:.2f}x fp32 at this shape (< {BF16_MIN_SPEEDUP}x): fp32"
