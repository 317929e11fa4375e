"""Process-group set-up and teardown for `torchrun` (DDP); a no-op single process when WORLD_SIZE is unset.

Teardown order matters. A ``DistributedDataParallel`` wrapper owns a C++ ``Reducer`` that holds a
reference to the process group. If the group is destroyed while a wrapper is still alive, the
wrapper's later deallocation drops the *last* reference to the gloo group, whose destructor joins
its worker thread while the main thread holds the GIL; a worker that is just then destroying a
finished all-reduce needs the GIL too, and the process hangs forever (measured: 2 of 2 stress loops
hung within 6 create-step-destroy cycles; ``bench/ddp_teardown.py``). So :func:`session` releases
every wrapper first (frames of a failed run are cleared, reference cycles collected) and only then
destroys the group.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Rank 0 evaluates and writes while the others wait at a barrier: be generous.
BARRIER_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, value: object) -> object:
        """Rank 0's ``value`` on every rank (pickled; for small objects)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_distributed(device_kind: str, init_method: str | None = None) -> Dist:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU).

    ``init_method`` (default ``env://``, torchrun's) lets a test or stress loop rendezvous elsewhere.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=BARRIER_TIMEOUT, init_method=init_method)
    return Dist(rank=rank, local_rank=local, world_size=world)


def shutdown(d: Dist) -> None:
    """Destroy the process group, after collecting any DDP wrapper that only a cycle keeps alive.

    The caller must hold no reference to a DDP wrapper any more (module docstring).
    """
    if d.enabled and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device_kind: str, init_method: str | None = None) -> Iterator[Dist]:
    """``init_distributed`` ... ``shutdown``, in the safe order even when the body raises.

    A traceback keeps the frames of the failed calls, and so their locals (the DDP wrapper among
    them), alive; their locals are cleared before the group is destroyed. The exception itself,
    its message and its line numbers are kept.
    """
    d = init_distributed(device_kind, init_method)
    try:
        yield d
    except BaseException as err:
        traceback.clear_frames(err.__traceback__)
        raise
    finally:
        shutdown(d)
