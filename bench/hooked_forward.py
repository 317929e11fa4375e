"""What one hooked forward costs, as analyses run it: fused where no hook reads inside attention or
LayerNorm, TransformerLens' op-by-op code where one does, and the fast training forward beside them.

    python bench/hooked_forward.py [--boards 16 64 128] [--repeats 9] [--threads 2]
                                   [--config-name exp/cpu_demo]

For each batch size, the three are timed in turn, ``--repeats`` rounds (medians printed, with the
range): ``fused`` (a hook on one MLP output, as an ablation or an interchange installs it), ``op-by-op``
(the same plus a no-op hook on every pattern and LayerNorm output, which makes TransformerLens compute
them) and ``fast`` (``fast_target_logits``, training and inference). Speed does not depend on the
weights: a randomly initialised model of the config is timed. The CPU is named in the output.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from interfere.config import compose, layout_of, sections
from interfere.cpu import configure_cpu, cpu_description
from interfere.data.stream import heldout_rules, random_boards
from interfere.explore import batched
from interfere.model.lean import op_by_op_hooks
from interfere.model.life_model import LifeTransformer


def timings(model: LifeTransformer, tokens: torch.Tensor, repeats: int) -> dict[str, list[float]]:
    mlp = [(f"blocks.{model.cfg.n_layers - 1}.hook_mlp_out", lambda act, hook: act)]
    ways: dict[str, Callable[[], object]] = {
        "fused": lambda: batched.target_logits(model, tokens, mlp),
        "op-by-op": lambda: batched.target_logits(model, tokens, mlp + op_by_op_hooks(model.cfg.n_layers)),
        "fast": lambda: model.fast_target_logits(tokens),
    }
    out: dict[str, list[float]] = {name: [] for name in ways}
    with torch.no_grad():
        for way in ways.values():
            way()  # warm-up
        for _ in range(repeats):
            for name, way in ways.items():
                t0 = time.perf_counter()
                way()
                out[name].append(1000 * (time.perf_counter() - t0))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--boards", type=int, nargs="+", default=[16, 64, 128])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--config-name", default="exp/cpu_demo")
    args = p.parse_args()
    configure_cpu(args.threads)
    data, model_cfg, _ = sections(compose(args.config_name))
    torch.manual_seed(0)
    model = LifeTransformer(model_cfg, layout_of(data)).eval()
    print(f"CPU: {cpu_description()}, {args.threads} threads; {args.config_name}, "
          f"{data.height}x{data.width} boards, T = {model.layout.seq_len}; ms per forward, median [min-max]")
    g = torch.Generator().manual_seed(0)
    rules = heldout_rules(64, 1234)
    for n in args.boards:
        boards = random_boards(n, data.height, data.width, 0.1, 0.9, g)
        tokens = model.encode_prompt(rules[torch.arange(n) % len(rules)], boards)
        res = timings(model, tokens, args.repeats)
        med = {k: statistics.median(v) for k, v in res.items()}
        cols = "  ".join(f"{k} {med[k]:7.1f} [{min(v):.1f}-{max(v):.1f}]" for k, v in res.items())
        print(f"{n:4d} boards  {cols}  op-by-op/fused {med['op-by-op'] / med['fused']:.2f}x  "
              f"fused/fast {med['fused'] / med['fast']:.2f}x")


if __name__ == "__main__":
    main()
