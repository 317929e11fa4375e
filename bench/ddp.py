"""DDP scaling on CPU: training throughput with 1 and 2 processes of 1 thread each (gloo).

    python bench/ddp.py [--config-name exp/cpu_demo] [--steps 60] [--nprocs 1 2]

Launches ``torchrun --standalone --nproc_per_node=N train.py`` for each N and reads target
cells/s (all ranks together) from the run log; scaling efficiency = cells/s(N) / (N * cells/s(1)).
On a GPU machine the same script measures 1 GPU (and more where there are more).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def throughput(nprocs: int, config: str, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nprocs}",
               str(REPO / "train.py"), "--config-name", config, f"train.steps={steps}", "train.run_id=bench",
               f"train.ckpt_dir={tmp}/c", f"train.log_dir={tmp}/r", "train.final_eval=false", "train.threads=1",
               "train.log_every=10", f"train.eval_every={10**9}", f"train.save_every={10**9}"]
        subprocess.run(cmd, cwd=REPO, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = [json.loads(line) for line in open(Path(tmp) / "r/bench/log.jsonl")]
    rates = [r["cells_per_s"] for r in log if "cells_per_s" in r][1:]  # skip the warm-up window
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-name", default="exp/cpu_demo")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default="bench/results/ddp.json")
    args = ap.parse_args()
    rates = {n: throughput(n, args.config_name, args.steps) for n in args.nprocs}
    base = rates[min(rates)] / min(rates)
    print(f"{args.config_name}: target cells/s (median over 10-step windows, 1 thread per process)")
    for n, r in rates.items():
        print(f"  {n} process{'es' if n > 1 else ''}: {r:,.0f} cells/s   scaling efficiency {r / (n * base):.0%}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": args.config_name, "cells_per_s": rates, "date": time.strftime("%Y-%m-%d")},
                              indent=2))
    print(f"  wrote {out}")


if __name__ == "__main__":
    main()
