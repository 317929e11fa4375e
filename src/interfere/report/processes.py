"""The report in two processes (docs/design.md, "The analysis interface"): the first data seed, its figures and the
circuit here, the other sections in a forked second process, each at half the threads.

Why: on a CPU torch's second thread speeds these small forwards up by only 1.2-1.7x (bench/hooked_forward.py at 1
and 2 threads) and the figures not at all, so two processes of one thread finish sooner than one of two. The second
process gets its work as a frozen :class:`Split` through the fork (the model and the examples are not pickled) and
sends back its result, or its error, through a pipe; one that dies (killed, out of memory) is reported as such, and
a parent that fails stops its child: no report is written either way (the caller's staging folder is removed).
"""

from __future__ import annotations

import multiprocessing
import pickle
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

import torch
from threadpoolctl import threadpool_limits

from interfere.errors import UserError


@dataclass(frozen=True)
class Split:
    """Who runs what: ``here`` in this process and ``there`` in the second, with their thread counts."""

    here: Callable[[], dict]
    there: Callable[[], dict]
    threads_here: int
    threads_there: int


def _child(split: Split, conn: Connection) -> None:
    """The second process: its threads (numpy's BLAS too: two processes of two spinning BLAS threads each crawl),
    its work, and its result or its error sent back."""
    torch.set_num_threads(split.threads_there)
    try:
        with threadpool_limits(split.threads_there):
            result = split.there()
        conn.send(("ok", result))
    except UserError as err:  # a problem the user can fix: the parent prints it in one line
        conn.send(("user", str(err)))
    except BaseException as err:  # noqa: BLE001 - a bug: sent to the parent, which raises it with its traceback
        conn.send(("error", f"{type(err).__name__}: {err}", traceback.format_exc()))
    finally:
        conn.close()


def run_split(split: Split) -> tuple[dict, dict]:
    """``(split.here(), split.there())``, the second in a forked process, at the same time."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(split, send), daemon=True)
    child.start()  # forks now: the child has this process's model, examples and settings
    send.close()
    before, done = torch.get_num_threads(), False
    torch.set_num_threads(split.threads_here)
    try:
        with threadpool_limits(split.threads_here):
            first = split.here()
        result = first, _receive(receive, child)
        done = True
        return result
    finally:
        torch.set_num_threads(before)
        if not done and child.is_alive():  # this process failed first: the child's work is of no use
            child.terminate()
        child.join()
        receive.close()


def _receive(receive: Connection, child: multiprocessing.process.BaseProcess) -> dict:
    try:
        message = receive.recv()
    except (EOFError, OSError, pickle.UnpicklingError):  # the child is gone, or died while sending
        child.join()
        raise UserError(f"the report's second process died (exit code {child.exitcode}) before it finished: "
                        "run again with --one-process, or free memory") from None
    if message[0] == "user":
        raise UserError(message[1])
    if message[0] == "error":
        raise RuntimeError(f"the report's second process failed: {message[1]}\n{message[2]}")
    return message[1]
