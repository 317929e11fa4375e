"""Stress the DDP teardown: loop create-step-destroy on CPU processes and report any hang.

    python bench/ddp_teardown.py --iters 200 [--nprocs 2] [--teardown session|naive] [--hang-after 60]

Each of ``nprocs`` CPU processes (gloo, 1 thread) repeats: join a fresh process group, wrap a tiny model in
``DistributedDataParallel``, take one training step with the loop's own functions, tear down. ``session`` tears down
the way training does (:func:`interfere.train.distributed.session`); ``naive`` destroys the group while the wrapper
is still alive, the order that used to hang. The parent watches every rank's iteration counter; a rank that makes no
progress for ``--hang-after`` seconds is a hang: its Python stacks (all threads) are dumped to stderr and the
processes killed. Exit status 1 on a hang; tests/test_ddp.py runs it.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import platform
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from interfere.config import compose, layout_of, sections
from interfere.data.stream import BatchStream
from interfere.model.life_model import LifeTransformer
from interfere.train.distributed import init_distributed, session
from interfere.train.loop import TargetLogits, accumulate_gradients, make_optimizer

TEARDOWNS = ("session", "naive")


@dataclass
class StressResult:
    iters: int
    done: list[int]  # iterations finished, per rank
    hung: bool
    seconds: float

    def line(self) -> str:
        state = f"HANG after {min(self.done)} iterations" if self.hung else "no hang"
        return (f"{len(self.done)} ranks x {self.iters} iterations: {state} "
                f"(done per rank {self.done}, {self.seconds:.1f} s)")


def _step(rank: int) -> DistributedDataParallel:
    """One training step of a tiny model under DDP; returns the wrapper (the caller decides its fate)."""
    data, model_cfg, train_cfg = sections(compose("exp/life_smoke"))
    torch.manual_seed(0)
    model = LifeTransformer(model_cfg, layout_of(data))
    net = DistributedDataParallel(TargetLogits(model, fast=True))
    batch = BatchStream(data, seed=rank).next(4)
    accumulate_gradients(net, [batch], torch.autocast("cpu", enabled=False))
    make_optimizer(model, train_cfg).step()
    return net


def _worker(rank: int, nprocs: int, iters: int, teardown: str, rendezvous: str, progress) -> None:
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(nprocs), LOCAL_RANK=str(rank))
    for i in range(iters):
        init_method = f"file://{rendezvous}/iter{i}?rank={rank}&world_size={nprocs}"
        if teardown == "session":
            with session("cpu", init_method):
                _step(rank)
        else:
            init_distributed("cpu", init_method)
            net = _step(rank)
            dist.destroy_process_group()
            del net  # the wrapper outlives the group: the old order
        progress[rank] = i + 1


def stress(iters: int, nprocs: int = 2, teardown: str = "session", hang_after: float = 60.0) -> StressResult:
    """Run the cycle ``iters`` times on ``nprocs`` processes; a stall of ``hang_after`` s is a hang."""
    if teardown not in TEARDOWNS:
        raise SystemExit(f"teardown must be one of {TEARDOWNS}, got {teardown!r}")
    if iters < 1 or nprocs < 2:
        raise SystemExit(f"need iters >= 1 and nprocs >= 2, got {iters} and {nprocs}")
    ctx = mp.get_context("spawn")
    progress = ctx.Array("i", nprocs)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as rendezvous:
        procs = [ctx.Process(target=_worker, args=(r, nprocs, iters, teardown, rendezvous, progress), daemon=True)
                 for r in range(nprocs)]
        for p in procs:
            p.start()
        hung = _watch(procs, progress, hang_after)
        done = list(progress[:])
        failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed and not hung:
        raise RuntimeError(f"a stress process failed (exit codes {failed}); see its traceback above")
    return StressResult(iters, done, hung, time.perf_counter() - t0)


def _watch(procs: list, progress, hang_after: float) -> bool:
    """Wait for the processes; True (after dumping stacks and killing them) if they stall."""
    last, since = list(progress[:]), time.perf_counter()
    while any(p.is_alive() for p in procs):
        time.sleep(0.2)
        if any(p.exitcode not in (0, None) for p in procs):  # a crash, not a hang: stop the others
            _kill(procs)
            return False
        now = list(progress[:])
        if now != last:
            last, since = now, time.perf_counter()
        elif time.perf_counter() - since > hang_after:
            for p in procs:
                if p.is_alive():
                    os.kill(p.pid, signal.SIGUSR1)  # faulthandler: every thread's stack to stderr
            time.sleep(2)
            _kill(procs)
            return True
    for p in procs:
        p.join()
    return False


def _kill(procs: list) -> None:
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join()


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
