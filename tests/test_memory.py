"""Evaluation runs in memory-bounded chunks at any shape: same numbers, bounded peak."""

import json
import subprocess
import sys

import pytest
import torch

from interfere.config import compose, layout_of, sections
from interfere.model import inference, memory
from interfere.model.life_model import LifeTransformer

PRELUDE = """
import json, resource, sys, torch
from pathlib import Path
from interfere.config import compose, layout_of, sections
from interfere.cpu import configure_cpu
from interfere.model import memory
from interfere.model.life_model import LifeTransformer

configure_cpu(2)
rss = lambda: int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()
# The peak resident size since here (VmHWM, reset by clear_refs 5): getrusage's ru_maxrss survives exec and starts
# at the size of the pytest process this interpreter was forked from, which may be gigabytes late in a test session.
Path("/proc/self/clear_refs").write_text("5")
peak = lambda: int(next(ln.split()[1] for ln in Path("/proc/self/status").read_text().splitlines()
                        if ln.startswith("VmHWM:"))) * 1024
"""

LIFE32_EVAL = PRELUDE + """
from interfere.ca import get_rule
from interfere.evaluate import eval_boards, evaluate, rollout_divergence
from interfere.train.precision import autocast_choice

free, n_boards = int(float(sys.argv[1]) * 1e9), int(sys.argv[2])
memory.available_bytes = lambda device: free  # a machine with this much memory free
data, model_cfg, train_cfg = sections(compose("exp/life32", ["model.n_layers=2"]))
torch.manual_seed(0)
model = LifeTransformer(model_cfg, layout_of(data)).eval()
cpu = torch.device("cpu")
bf16, _ = autocast_choice(train_cfg.autocast, cpu, model_cfg.d_model)  # as the end of training would
before = rss()
with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
    # a one-board evaluation first: what any evaluation holds (a chunk, and the CPU libraries' own
    # caches, which differ by CPU), so that the growth after it is what more boards add
    evaluate(model, data, n_boards=1, boards_per_named_rule=1, rollouts=False)
    warm = peak()
    report = evaluate(model, data, n_boards=n_boards, boards_per_named_rule=1, rollouts=False)
    first_wrong = rollout_divergence(model, get_rule("B3/S23"), eval_boards(2, data, seed=1), steps=2)
    measured = {"first": warm - before, "growth": peak() - warm, "peak": peak(),
                "chunk": memory.inference_batch(model.life_cfg, model.layout, n_boards, cpu)}
    memory.available_bytes = lambda device: 10**12  # now every board in one batch: the chunks change no number
    whole = evaluate(model, data, n_boards=n_boards, boards_per_named_rule=1, rollouts=False)
print(json.dumps({**measured, "acc": report["heldout"]["cell_acc"], "acc_whole": whole["heldout"]["cell_acc"],
                  "rollout": first_wrong, "per_sequence": memory.inference_bytes(model.life_cfg, model.layout, 1)}))
"""

HOOKED_FORWARD = PRELUDE + """
data, model_cfg, _ = sections(compose("exp/life32", ["model.n_layers=1"]))
model = LifeTransformer(model_cfg, layout_of(data)).eval()
tokens = model.encode_prompt(torch.zeros(2, 18, dtype=torch.long), torch.zeros(2, 32, 32, dtype=torch.long))
before = rss()
with torch.no_grad():  # a hook on the pattern: TransformerLens' explicit attention, the worst case
    model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_pattern", lambda pattern, hook: pattern)])
print(json.dumps({"growth": peak() - before, "estimate": memory.forward_bytes(model.life_cfg, model.layout, 2)}))
"""


def _child(script: str, *args: str, timeout: int) -> dict:
    """Run ``script`` in a fresh interpreter (its own peak memory) and return the JSON it prints last."""
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_hooked_forward_estimate_is_within_a_factor_of_two_at_the_life32_shape():
    """Analyses size their chunks by ``forward_bytes``: two life32-shaped sequences through one layer
    of the hooked model (T = 2,069: 137 MB per attention-sized tensor), with the pattern hooked (the
    fused attention, when no hook reads the pattern, needs less)."""
    res = _child(HOOKED_FORWARD, timeout=120)
    assert 0.5 < res["growth"] / res["estimate"] < 2, res


def test_chunked_inference_gives_the_same_logits_as_one_batch(monkeypatch):
    data, model_cfg, _ = sections(compose("exp/life_smoke", []))
    torch.manual_seed(0)
    model = LifeTransformer(model_cfg, layout_of(data)).eval()
    tokens = model.encode_prompt(torch.randint(0, 2, (6, 18)), torch.randint(0, 2, (6, data.height, data.width)))
    with torch.no_grad():
        whole = model.fast_target_logits(tokens)
        one_per_chunk = memory.inference_bytes(model.life_cfg, model.layout, 1) / memory.CHUNK_SHARE
        monkeypatch.setattr(memory, "available_bytes", lambda device: int(one_per_chunk * 1.5))
        assert memory.inference_batch(model.life_cfg, model.layout, 6, torch.device("cpu")) == 1
        chunked = inference.target_logits(model, tokens)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)


def test_end_of_training_evaluation_of_a_life32_model_stays_within_its_memory_budget():
    """exp/life32's shape (32x32 boards, d_model 512, 8 heads: ~120 MB per sequence in an inference
    layer; 2 of its 8 layers, as inference holds one layer's tensors at a time) evaluated as a run
    ends, in chunks sized for 0.6 GB of free memory: 8 boards in one batch would need ~0.95 GB, a
    chunk a quarter of the free memory, 0.15 GB. Eight boards must add less than a chunk's budget to
    the peak of a one-board evaluation (unchunked, they would add ~0.8 GB)."""
    free_gb, n_boards = 0.6, 8
    res = _child(LIFE32_EVAL, str(free_gb), str(n_boards), timeout=240)
    budget = memory.CHUNK_SHARE * free_gb * 1e9
    assert res["chunk"] < n_boards and n_boards * res["per_sequence"] > 3 * budget  # one batch would not fit
    assert res["growth"] < budget, f"8 boards grew peak memory by {res['growth'] / 1e9:.2f} GB over 1 board"
    # one board's evaluation: a chunk plus the CPU libraries' caches (0.14-0.16 GB here, 0.52 GB on CI's CPU)
    assert res["first"] < 1e9, f"a one-board evaluation grew resident memory by {res['first'] / 1e9:.2f} GB"
    assert res["peak"] < 8e9  # the stated bound for life32-shaped work on a CPU (bench/README.md)
    assert res["acc"] == pytest.approx(res["acc_whole"], abs=1e-6)  # the chunked evaluation is the whole one
