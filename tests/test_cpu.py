import json
import os
import platform
import subprocess
import sys
from pathlib import Path

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


RELEASE = """
import resource, torch
from pathlib import Path
from interfere.cpu import keep_freed_memory, release_freed_memory
rss = lambda: int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()
keep_freed_memory()
x = torch.ones(1 << 27)  # 512 MiB
del x
kept = rss()
release_freed_memory()
print(kept, rss())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_release_freed_memory_hands_kept_blocks_back():
    kept, released = map(int, subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True,
                                              check=True, timeout=60).stdout.split())
    assert kept - released > 400 << 20


def test_autocast_auto_picks_bf16_only_with_native_support_and_a_wide_model(monkeypatch):
    import torch

    from interfere.train import precision

    cpu, wide, narrow = torch.device("cpu"), precision.BF16_MIN_D_MODEL, precision.BF16_MIN_D_MODEL // 2
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    use, why = precision.autocast_choice("auto", cpu, wide)
    assert use is False and "no native bf16" in why
    assert precision.autocast_choice("bf16", cpu, narrow)[0] is True
    assert precision.autocast_choice("auto", torch.device("cuda"), narrow)[0] is True
    assert precision.autocast_choice("none", torch.device("cuda"), wide)[0] is False
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    assert precision.autocast_choice("auto", cpu, wide)[0] is True
    use, why = precision.autocast_choice("auto", cpu, narrow)
    assert use is False and f"d_model {narrow}" in why
    assert precision.autocast_choice("none", cpu, wide)[0] is False


def test_the_autocast_benchmark_runs_and_writes_its_table(tmp_path):
    """bench/autocast_crossover.py (where the bf16 threshold comes from) still runs against the package."""
    out = tmp_path / "crossover.json"
    bench = Path(__file__).resolve().parents[1] / "bench" / "autocast_crossover.py"
    proc = subprocess.run([sys.executable, str(bench), "--sizes", "4", "--d-models", "16", "--repeats", "1",
                           "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["size"], r["d_model"]) for r in rows] == [(4, 16)]
    assert 0.001 < rows[0]["speedup"] < 1000 and f"{rows[0]['speedup']:9.2f}×" in proc.stdout  # a ratio, printed


def test_the_openmp_wait_policy_is_passive_beside_busy_processes_and_a_short_spin_otherwise(monkeypatch):
    """Chosen before torch loads OpenMP (interfere.openmp), in the environment; a user's own setting is kept."""
    from interfere import openmp

    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(openmp, "others_busy_cores", lambda seconds=0.3: 1.0)
    assert "passive" in openmp.choose_wait_policy() and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setattr(openmp, "others_busy_cores", lambda seconds=0.3: 0.1)
    assert "short spin" in openmp.choose_wait_policy() and os.environ["GOMP_SPINCOUNT"] == openmp.SHORT_SPIN
    assert "OMP_WAIT_POLICY" not in os.environ
    assert openmp.choose_wait_policy() == "as set in the environment"
    busy = openmp.others_busy_cores(0.05)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 0.5
