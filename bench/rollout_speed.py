"""Rollout speed of a size-free model: generations per second at a board size, as users meet it.

    python bench/rollout_speed.py [--sizes 64 128] [--gens 60] [--repeats 3] [--threads 2]
                                  [--run-id ID | --ckpt PATH] [--out bench/results/rollout_speed.json]

Two paths, each timed ``--repeats`` times (medians printed, with the range):

* ``python -m interfere run``: the model's autoregressive rollout next to the simulator (``compare_rollouts``) of
  a glider on an empty board, ``--gens`` generations;
* the explorer's play: ``POST /api/run`` over HTTP to the explorer's app served by uvicorn in this
  process's main thread, as ``python -m interfere explore`` serves it (JSON in and out), in requests of
  ``MAX_GENS_PER_REQUEST`` generations, as the page fetches them.

Speed does not depend on the weights: without a checkpoint a randomly initialised ``exp/cpu_any`` model
is timed. The CPU is named in the output.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI

from interfere.ca.patterns import centred, load_pattern
from interfere.cli import add_checkpoint_args, load_model_from_args
from interfere.config import compose, layout_of, sections
from interfere.cpu import configure_cpu, cpu_description
from interfere.evaluate import compare_rollouts
from interfere.explorer.app import MAX_GENS_PER_REQUEST, create_app
from interfere.explorer.engine import Engine
from interfere.model.life_model import LifeTransformer

START_TIMEOUT_S, REQUEST_TIMEOUT_S = 60, 600  # the server must start, and answer a request, within these


def model_for(args: argparse.Namespace) -> LifeTransformer:
    if args.ckpt or args.run_id:
        return load_model_from_args(args)[0]
    configure_cpu(args.threads)
    data, model_cfg, _ = sections(compose("exp/cpu_any"))
    torch.manual_seed(0)
    return LifeTransformer(model_cfg, layout_of(data)).eval()


def time_run(model: LifeTransformer, size: int, gens: int) -> float:
    glider = load_pattern("glider")
    model.resize(size, size)
    start = centred(glider, size, size)[None]
    t0 = time.perf_counter()
    compare_rollouts(model, glider.rule, start, gens)
    return gens / (time.perf_counter() - t0)


def time_play(port: int, size: int, gens: int) -> float:
    glider = load_pattern("glider")
    board = centred(glider, size, size).tolist()
    bits = glider.rule.bits.long().tolist()
    done, t0 = 0, time.perf_counter()
    while done < gens:
        step = min(MAX_GENS_PER_REQUEST, gens - done)
        body = json.dumps({"bits": bits, "model_board": board, "sim_board": board, "gens": step}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/run", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as reply:
            board = json.loads(reply.read())["simulator"][-1]
        done += step
    return gens / (time.perf_counter() - t0)


def serve_while(app: FastAPI, work: Callable[[int], None]) -> None:
    """Serve ``app`` with uvicorn in this (the main) thread while ``work(port)`` runs in another; then stop."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    def client() -> None:
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not server.started:
                if time.monotonic() > deadline or stopped.is_set():
                    raise RuntimeError(f"the explorer's server did not start on port {port}")
                time.sleep(0.05)
            work(port)
        except BaseException as err:  # re-raised in the main thread: no partial results written
            failure.append(err)
        finally:
            server.should_exit = True

    stopped = threading.Event()  # set when server.run returns, e.g. because it could not start
    failure: list[BaseException] = []
    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        server.run()
    finally:
        stopped.set()
    thread.join(REQUEST_TIMEOUT_S)
    if failure:
        raise failure[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--gens", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="bench/results/rollout_speed.json")
    add_checkpoint_args(ap)
    args = ap.parse_args()
    model = model_for(args)
    app = create_app(Engine(model, 1234, 64, (0.1, 0.9)), {"run_id": "bench", "step": 0, "checkpoint": "none"})
    time_run(model, args.sizes[0], 2)  # warm-up
    results = {"cpu": cpu_description(), "threads": torch.get_num_threads(), "gens": args.gens, "sizes": {}}
    print(f"{cpu_description()}, {torch.get_num_threads()} threads, {args.gens} generations, {args.repeats} repeats")

    def record(size: int, path: str, speeds: list[float]) -> None:
        results["sizes"].setdefault(str(size), {})[path] = {
            "median": statistics.median(speeds), "min": min(speeds), "max": max(speeds)}
        print(f"  {size}x{size} {path:<18} {statistics.median(speeds):6.1f} generations/s "
              f"(range {min(speeds):.1f}-{max(speeds):.1f})")

    for size in args.sizes:  # in the main thread, as python -m interfere run runs
        record(size, "interfere.run", [time_run(model, size, args.gens) for _ in range(args.repeats)])

    def play(port: int) -> None:
        time_play(port, args.sizes[0], 2)  # warm-up
        for size in args.sizes:
            record(size, "explorer /api/run", [time_play(port, size, args.gens) for _ in range(args.repeats)])

    serve_while(app, play)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"  wrote {out}")


if __name__ == "__main__":
    main()
