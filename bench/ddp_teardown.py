"""Stress the DDP teardown: loop create-step-destroy on CPU processes and report any hang.

    python bench/ddp_teardown.py --iters 200 [--nprocs 2] [--teardown session|naive] [--hang-after 60]

``session`` is the order training uses; ``naive`` is the old order (the group destroyed while the
DDP wrapper lives), kept to show the hang it causes. Details: ``interfere.train.teardown_check``.
Exit status 1 on a hang.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from interfere.train.teardown_check import TEARDOWNS, stress


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--teardown", choices=TEARDOWNS, default="session")
    ap.add_argument("--hang-after", type=float, default=60.0, help="seconds without progress that count as a hang")
    ap.add_argument("--out", default="bench/results/ddp_teardown.json")
    args = ap.parse_args()
    result = stress(args.iters, args.nprocs, args.teardown, args.hang_after)
    print(f"teardown {args.teardown}: {result.line()}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**vars(args), **vars(result), "machine": platform.processor() or platform.machine(),
                               "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2))
    sys.exit(1 if result.hung else 0)


if __name__ == "__main__":
    main()
