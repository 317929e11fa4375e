"""Multi-process training on CPU (gloo): torchrun end to end, and DDP's gradient averaging."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from interfere.config import compose, layout_of, sections
from interfere.data.stream import BatchStream
from interfere.model.checkpoint import read_checkpoint
from interfere.model.life_model import LifeTransformer
from interfere.train.distributed import session
from interfere.train.loop import TargetLogits, accumulate_gradients, make_optimizer

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(tmp_path, *overrides):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "train.py"), "--config-name", "exp/life_smoke", "train.steps=6", "train.run_id=ddp",
           f"train.ckpt_dir={tmp_path}/checkpoints", f"train.log_dir={tmp_path}/runs", "train.final_eval=false",
           "train.threads=1", "train.save_every=3", "train.dump_rank_weights=true", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _rank_weights(tmp_path):
    return [torch.load(tmp_path / f"runs/ddp/weights_rank{r}.pt", weights_only=True) for r in (0, 1)]


def test_torchrun_two_processes_one_checkpoint_identical_weights_and_resume(tmp_path):
    _torchrun(tmp_path / "straight")
    root = tmp_path / "straight"
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["ddp", "latest.pt"]
    assert sorted(p.name for p in (root / "checkpoints/ddp").iterdir()) == [".lock", "latest.pt"]  # no temp files
    ckpt = read_checkpoint(root / "checkpoints/ddp/latest.pt")
    assert ckpt["step"] == 6 and ckpt["world_size"] == 2 and len(ckpt["rng"]["stream"]) == 2
    ranks = _rank_weights(root)
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    # interrupted at step 3 and resumed under DDP: the same weights as the straight run
    _torchrun(tmp_path / "resumed", "train.stop_at=3")
    _torchrun(tmp_path / "resumed", "train.resume=true")
    resumed = read_checkpoint(tmp_path / "resumed/checkpoints/ddp/latest.pt")
    assert resumed["step"] == 6
    for key, value in ckpt["model"].items():
        assert torch.allclose(resumed["model"][key], value, atol=1e-6), key


def _ddp_step(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    with session("cpu"):  # the teardown training uses: the wrapper dies with _step_and_save's frame
        _step_and_save(rank, out)


def _step_and_save(rank: int, out: str) -> None:
    model, full = _model_and_batch()
    half = len(full.tokens) // 2
    mine = type(full).__new__(type(full))
    mine.tokens, mine.labels = full.tokens[rank * half:(rank + 1) * half], full.labels[rank * half:(rank + 1) * half]
    mine.layout = full.layout
    net = torch.nn.parallel.DistributedDataParallel(TargetLogits(model, fast=True))
    opt = make_optimizer(model, sections(compose("exp/life_smoke"))[2])
    accumulate_gradients(net, [mine], torch.autocast("cpu", enabled=False))
    opt.step()
    if rank == 0:
        torch.save(model.state_dict(), out)


def _model_and_batch():
    data, model_cfg, _ = sections(compose("exp/life_smoke"))
    torch.manual_seed(0)
    model = LifeTransformer(model_cfg, layout_of(data))
    return model, BatchStream(data, seed=5).next(8)


def _spawn(fn, args: tuple, nprocs: int, seconds: float) -> None:
    """``mp.spawn`` that fails (and kills its processes) after ``seconds`` instead of hanging."""
    ctx = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    deadline = time.monotonic() + seconds
    while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"spawned processes still running after {seconds} s: a hang")


def test_two_ranks_step_equals_one_process_on_the_concatenated_batch(tmp_path):
    out = tmp_path / "ddp.pt"
    _spawn(_ddp_step, (_free_port(), str(out)), nprocs=2, seconds=240)
    model, full = _model_and_batch()
    opt = make_optimizer(model, sections(compose("exp/life_smoke"))[2])
    no_autocast = torch.autocast("cpu", enabled=False)
    accumulate_gradients(TargetLogits(model, fast=True), [full], no_autocast)
    opt.step()
    ddp = torch.load(out, weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.allclose(ddp[key], value, atol=1e-6), key


def test_teardown_never_hangs_under_stress(tmp_path):
    """The create-step-destroy cycle, repeated (bench/ddp_teardown.py): the old teardown order hung within 5-9
    cycles here (bench/README.md), so 12 cycles would catch it."""
    out = tmp_path / "teardown.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "ddp_teardown.py"), "--iters", "12",
                           "--hang-after", "45", "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert not result["hung"] and result["done"] == [12, 12], result
