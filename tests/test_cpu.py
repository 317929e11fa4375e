import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys, torch
from interfere.cpu import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
x = torch.ones(8 << 20)  # 32 MiB: glibc's largest mmap threshold, so its temporaries are mmapped by default
def step():
    return ((x * 2 + 1).exp() * x).sum()  # four 32 MiB temporaries, like one training step's activations
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    applied, faults = out.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_keep_freed_memory_stops_refaulting_large_blocks():
    applied, kept = _page_faults("keep")
    _, default = _page_faults("default")
    assert applied
    assert default > 10 * 4 * (32 << 20) // 4096 // 2  # every temporary of every step faults its pages in
    assert kept < default // 10
