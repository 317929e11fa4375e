"""A stress check of the DDP create-step-destroy cycle: does teardown ever hang?

    python bench/ddp_teardown.py --iters 200 [--nprocs 2] [--teardown session|naive]

Each of ``nprocs`` CPU processes (gloo, 1 thread) repeats: join a fresh process group, wrap a tiny
model in ``DistributedDataParallel``, take one training step with the loop's own functions, tear
down. ``session`` tears down the way training does (:func:`interfere.train.distributed.session`);
``naive`` destroys the group while the wrapper is still alive, the order that used to hang. The
parent watches every rank's iteration counter; a rank that makes no progress for ``hang_after``
seconds is a hang: its Python stacks (all threads) are dumped to stderr and the processes killed.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import tempfile
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from interfere.config import compose, layout_of, sections
from interfere.data.stream import BatchStream
from interfere.errors import UserError
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
        raise UserError(f"teardown must be one of {TEARDOWNS}, got {teardown!r}")
    if iters < 1 or nprocs < 2:
        raise UserError(f"need iters >= 1 and nprocs >= 2, got {iters} and {nprocs}")
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
