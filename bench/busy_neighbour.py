"""Training speed beside a busy neighbour: steps/s of exp/cpu_demo alone and beside one busy single-threaded process
(a Python loop), at 2 and 1 threads, each in a fresh child process (OpenMP reads its environment when torch loads).

    python bench/busy_neighbour.py [--steps 60] [--env OMP_WAIT_POLICY=passive ...]

Prints a table and the ratio busy / alone per setting; pass environment settings to compare (e.g. the OpenMP wait
policy). Run it on a quiet machine: another job on the cores is exactly what it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from interfere.cpu import cpu_description

CHILD = r"""
import json, sys, time, torch
from interfere.config import compose, sections
from interfere.cpu import configure_cpu
from interfere.data.stream import BatchStream
from interfere.model.life_model import LifeTransformer
from interfere.config import layout_of
from interfere.train.optim import make_optimizer
from interfere.train.step import TargetLogits, target_loss

threads, steps = int(sys.argv[1]), int(sys.argv[2])
configure_cpu(threads)
data, model_cfg, tc = sections(compose("exp/cpu_demo"))
torch.manual_seed(0)
model = LifeTransformer(model_cfg, layout_of(data))
net, opt, stream = TargetLogits(model, fast=True), make_optimizer(model, tc), BatchStream(data, seed=0)
times = []
for i in range(steps):
    t0 = time.perf_counter()
    batch = stream.next()
    loss, _ = target_loss(net(batch.tokens), batch.labels[:, batch.layout.target_index])
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - t0)
print(json.dumps({"first10": sum(times[:10]), "rest": sum(times[10:]), "steps": steps}))
"""


def one(threads: int, steps: int, busy: bool, env: dict[str, str]) -> dict:
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(steps)], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": str(threads), **env}, check=True, timeout=900)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {**r, "steps_per_s": (steps - 10) / r["rest"], "first10_per_s": 10 / r["first10"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    p.add_argument("--env", nargs="*", default=[], help="KEY=VALUE settings for the training child")
    args = p.parse_args()
    env = dict(kv.split("=", 1) for kv in args.env)
    print(f"CPU {cpu_description()}, {os.cpu_count()} cores; child env {env or '(default)'}")
    print("| threads | alone (steps/s) | beside a busy process (steps/s) | busy / alone | first 10 steps busy |")
    print("|---|---|---|---|---|")
    for threads in args.threads:
        alone, busy = one(threads, args.steps, False, env), one(threads, args.steps, True, env)
        print(f"| {threads} | {alone['steps_per_s']:.2f} | {busy['steps_per_s']:.2f} | "
              f"{busy['steps_per_s'] / alone['steps_per_s']:.2f} | {busy['first10_per_s']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
