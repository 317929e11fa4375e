"""Where bf16 autocast starts to pay on this CPU: whole training steps, fp32 over bf16, across widths.

    python bench/autocast_crossover.py [--config-name exp/cpu_demo] [--sizes 8 16] [--d-models 32 64 ...]
        [--threads 2] [--repeats 5]

For each board size and ``d_model`` (heads of 16 dimensions, ``d_mlp = 4 d_model``, the config's
layer count), times a fast-path forward and backward in both precisions with
:func:`step_speedup` (interleaved, best of ``--repeats``), the very
measure behind ``BF16_MIN_D_MODEL``. Prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from interfere.ca import N_RULE_BITS
from interfere.config import compose, layout_of, sections
from interfere.cpu import configure_cpu, cpu_description
from interfere.data.layout import SequenceLayout
from interfere.model.life_model import LifeTransformer
from interfere.train.loop import TargetLogits
from interfere.train.precision import BF16_MIN_D_MODEL

PROBE_TOKENS = 4096  # tokens per timed step of step_speedup: a few sequences


def step_speedup(net: torch.nn.Module, layout: SequenceLayout, batch_size: int, repeats: int = 3) -> float:
    """fp32 time over bf16-autocast time of a forward and backward of ``net`` (target logits, as
    training computes them) on all-dead boards under rule 0 (best of ``repeats``, interleaved, after a
    warm-up). Uses no randomness and leaves the gradients as it found them (none)."""
    n = max(1, min(batch_size, PROBE_TOKENS // layout.seq_len))
    device = next(net.parameters()).device
    boards = torch.zeros(n, layout.height, layout.width, dtype=torch.long)
    tokens = layout.encode(torch.zeros(n, N_RULE_BITS, dtype=torch.long), boards).tokens.to(device)
    labels = torch.zeros(n, len(layout.target_index), dtype=torch.long, device=device)

    def seconds(bf16: bool) -> float:
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = net(tokens)
        torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten()).backward()
        return time.perf_counter() - t0

    try:
        seconds(False), seconds(True)  # warm-up: first calls allocate and fault in memory
        # interleaved, best of each: a burst of load from another process hits both precisions
        times = [(seconds(False), seconds(True)) for _ in range(repeats)]
        return min(t[0] for t in times) / min(t[1] for t in times)
    finally:
        net.zero_grad(set_to_none=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-name", default="exp/cpu_demo")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--d-models", type=int, nargs="+", default=[32, 64, 96, 128, 192, 256, 512])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="bench/results/autocast_crossover.json")
    args = ap.parse_args()
    configure_cpu(args.threads)
    torch.manual_seed(0)
    rows = []
    print(f"{cpu_description()}, {args.threads} threads; rule in use: bf16 from d_model {BF16_MIN_D_MODEL}")
    print(f"{'board':>6s} {'d_model':>8s} {'fp32/bf16':>10s}")
    for size in args.sizes:
        for d_model in args.d_models:
            overrides = [f"data.height={size}", f"data.width={size}", f"model.d_model={d_model}",
                         f"model.n_heads={max(1, d_model // 16)}", f"model.d_mlp={4 * d_model}"]
            data, model_cfg, _ = sections(compose(args.config_name, overrides))
            layout = layout_of(data)
            net = TargetLogits(LifeTransformer(model_cfg, layout, torch.device("cpu")), fast=True)
            speedup = step_speedup(net, layout, data.batch_size, repeats=args.repeats)
            rows.append({"size": size, "d_model": d_model, "n_layers": model_cfg.n_layers, "speedup": speedup})
            print(f"{size:4d}²  {d_model:8d} {speedup:9.2f}×", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": args.config_name, "threads": args.threads, "rows": rows,
                               "machine": cpu_description(), "torch": torch.__version__,
                               "date": time.strftime("%Y-%m-%d")}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
