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


def test_autocast_auto_picks_bf16_only_with_native_support_and_a_clear_speedup(monkeypatch):
    from interfere import cpu

    monkeypatch.setattr(cpu, "native_bf16", lambda: False)
    monkeypatch.setattr(cpu, "bf16_speedup", lambda *a: pytest.fail("no timing without native bf16"))
    assert cpu.cpu_autocast_choice(4096, 64, 256)[0] is False
    monkeypatch.setattr(cpu, "native_bf16", lambda: True)
    for speedup, expected in ((2.0, True), (1.3, True), (1.1, False), (0.6, False)):
        monkeypatch.setattr(cpu, "bf16_speedup", lambda *a, s=speedup: s)
        use, why = cpu.cpu_autocast_choice(4096, 64, 256)
        assert use is expected and f"{speedup:.2f}x" in why


def test_bf16_speedup_measures_a_positive_ratio():
    from interfere import cpu

    assert cpu.bf16_speedup(64, 32, 64, repeats=1) > 0
