"""How torch's OpenMP threads wait, chosen before torch loads OpenMP (it reads its settings once, at load).

By default a thread that reaches a barrier spins before it sleeps. Beside another busy process, one of the two
threads is often descheduled, and its partner spins through every barrier of every small op until the scheduler
brings it back: exp/cpu_demo trained at 14.0 steps/s alone and 4.5 beside one busy single-threaded process at 2
threads (0.32x; at 1 thread 8.1 either way), AMD EPYC with AVX-512, ``bench/busy_neighbour.py``. Waiting passively
(``OMP_WAIT_POLICY=PASSIVE``) keeps 6.7 steps/s beside it but costs a quarter alone (9.9); a short spin
(``GOMP_SPINCOUNT=3000``) keeps 12.9 alone and 5.5 beside it. So: passive when other processes are busy as training
starts, the short spin otherwise (a neighbour may come later). Neither changes a single number the threads compute:
a seed trains the same weights either way. A setting the user made is left alone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

BUSY_CORES = 0.5  # other processes using at least this many cores: wait passively
SHORT_SPIN = "3000"


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def others_busy_cores(seconds: float = 0.3) -> float | None:
    """How many cores other processes keep busy over ``seconds`` (this one sleeps meanwhile); None off Linux."""
    try:
        busy0, total0 = _busy_jiffies()
        time.sleep(seconds)
        busy1, total1 = _busy_jiffies()
    except (OSError, ValueError, IndexError):
        return None
    return (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)


def choose_wait_policy() -> str:
    """Set the OpenMP wait policy in this process's environment (module docstring); what was chosen, in words."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return "as set in the environment"
    busy = others_busy_cores()
    if busy is not None and busy >= BUSY_CORES:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return f"passive waits (other processes keep {busy:.1f} cores busy)"
    os.environ["GOMP_SPINCOUNT"] = SHORT_SPIN
    return f"a short spin ({SHORT_SPIN}) before a wait sleeps"
