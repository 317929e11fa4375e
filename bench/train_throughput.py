"""Training throughput against the machine's matmul ceiling, with a per-phase breakdown.

    python bench/train_throughput.py --config-name exp/life_smoke_ref [--threads 1] [--steps 8]
        [--path fast|hooked] [--autocast none|bf16] [--no-keep-memory] [--no-deterministic] [--fill-uninitialized]
        [--device cpu|cuda]
        [--out bench/results/...json]
    python bench/train_throughput.py --config-name exp/life32 --device cuda --autocast bf16   # on a GPU

Prints and writes: median seconds per optimizer step (after warm-up), target cells/s, tokens/s,
the share of each phase (data, forward, backward, optimizer), the model FLOPs per step (counted:
matmuls and the attention a query may actually use, x3 for forward + backward), the achieved
GFLOP/s and the measured ceiling of a 2048^2 ``torch.mm`` in the same dtype and thread count.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from interfere.config import compose, layout_of, resolve_device, sections
from interfere.cpu import configure_cpu, cpu_description
from interfere.data.layout import SequenceLayout
from interfere.data.stream import BatchStream
from interfere.model.life_model import LifeTransformer, ModelConfig
from interfere.train.loop import TargetLogits, deterministic_algorithms, make_optimizer, target_loss


def matmul_gflops(dtype: torch.dtype, device: torch.device, repeats: int = 7) -> float:
    """The machine's matmul ceiling: the best of ``repeats`` timed square products (GFLOP/s);
    2048^2 on CPU, 8192^2 on a GPU (large enough to saturate it)."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock phases are real (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops(cfg: ModelConfig, layout: SequenceLayout, useful: bool) -> float:
    """FLOPs of one forward pass of one sequence.

    ``useful``: what the loss mathematically needs: only allowed (query, key) pairs; in the last
    layer only the target queries; in the first layer no target queries, keys or values (every
    target's input is ``<MASK>`` plus its segment, the same in every sequence, so they are computed
    once per step, a negligible cost not counted here). Else the full T x T model.
    """
    cfg = cfg.resolved()
    t, d, hd = layout.seq_len, cfg.d_model, cfg.n_heads * cfg.d_head
    n_targets = len(layout.target_index)
    n_context = t - n_targets
    mask = layout.attention_mask(cfg.window if cfg.positions == "window" else None)  # a window model's is local
    pairs = int(mask.sum()) if useful else t * t
    target_pairs = int(mask[layout.target_index].sum()) if useful else n_targets * t
    total = 0.0
    for layer in range(cfg.n_layers):
        first, last = useful and layer == 0, useful and layer == cfg.n_layers - 1
        ctx_queries = 0 if last else n_context  # the last layer's context queries reach no target
        tgt_qkv = 0 if first else n_targets
        rows = ctx_queries + n_targets  # rows that go on past attention
        total += 2 * d * hd * (ctx_queries + 2 * n_context + 3 * tgt_qkv)  # Q, K, V projections
        total += 2 * 2 * (target_pairs if last else pairs) * cfg.d_head * cfg.n_heads  # QK^T and AV
        total += 2 * rows * hd * d  # output projection
        total += 2 * 2 * rows * d * cfg.d_mlp  # MLP in and out
    total += 2 * (n_targets if useful else t) * d * 2  # unembed to the two outputs
    return total


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-name", default="exp/life_smoke_ref")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=8, help="timed steps (after 2 warm-up steps)")
    ap.add_argument("--path", choices=["fast", "hooked"], default="fast")
    ap.add_argument("--autocast", choices=["none", "bf16"], default="none")
    ap.add_argument("--keep-memory", action=argparse.BooleanOptionalAction, default=True,
                    help="glibc malloc keeps freed large blocks (interfere.cpu.keep_freed_memory), as training does")
    ap.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                    help="torch deterministic algorithms, as training does (train.deterministic)")
    ap.add_argument("--fill-uninitialized", action="store_true",
                    help="deterministic mode's NaN fill of new tensors, which training turns off "
                         "(train.loop.deterministic_algorithms): measures what the fill costs")
    ap.add_argument("--device", default="cpu",
                    help="cpu | cuda | auto (on a GPU, pass --autocast bf16: training does)")
    ap.add_argument("--out", default=None)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the config, e.g. data.height=10 data.width=10")
    return ap.parse_args()


def time_steps(args: argparse.Namespace, device: torch.device) -> tuple[dict[str, list[float]], tuple]:
    """Seconds per phase of ``args.steps`` training steps after two warm-up steps; and the
    (data, model) configs and layout they ran."""
    data, model_cfg, tc = sections(compose(args.config_name, args.overrides))
    layout = layout_of(data)
    torch.manual_seed(0)
    model = LifeTransformer(model_cfg, layout, device)
    net = TargetLogits(model, fast=args.path == "fast")
    stream = BatchStream(data, seed=0, device=device)
    opt = make_optimizer(model, tc)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.autocast == "bf16")
    phases: dict[str, list[float]] = {"data": [], "forward": [], "backward": [], "optimizer": []}

    def now() -> float:
        synchronize(device)
        return time.perf_counter()

    for i in range(args.steps + 2):
        t0 = now()
        batch = stream.next()
        t1 = now()
        with autocast:
            logits = net(batch.tokens)
        loss, _ = target_loss(logits, batch.labels[:, model.target_index])
        t2 = now()
        loss.backward()
        t3 = now()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t4 = now()
        if i >= 2:
            for k, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[k].append(seconds)
    return phases, (data, model_cfg, layout)


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    if device.type == "cpu":
        configure_cpu(args.threads, keep_memory=args.keep_memory)
    dtype = torch.bfloat16 if args.autocast == "bf16" else torch.float32
    ceiling_before = matmul_gflops(dtype, device)
    with deterministic_algorithms(args.deterministic, device):  # as training does
        torch.utils.deterministic.fill_uninitialized_memory = args.fill_uninitialized
        phases, (data, model_cfg, layout) = time_steps(args, device)
    step_times = [sum(p[i] for p in phases.values()) for i in range(args.steps)]
    step = statistics.median(step_times)
    med = {k: statistics.median(v) for k, v in phases.items()}
    b = data.batch_size
    useful = 3 * b * forward_flops(model_cfg, layout, useful=True)
    full = 3 * b * forward_flops(model_cfg, layout, useful=False)
    ceiling = max(ceiling_before, matmul_gflops(dtype, device))  # the higher of before and after: a conservative ratio
    cells = b * len(layout.target_index)
    res = {
        "config": args.config_name, "threads": args.threads, "path": args.path, "autocast": args.autocast,
        "keep_memory": args.keep_memory, "deterministic": args.deterministic,
        "fill_uninitialized": args.fill_uninitialized,
        "median_step_s": step, "target_cells_per_s": cells / step, "tokens_per_s": b * layout.seq_len / step,
        "phase_share": {k: v / step for k, v in med.items()}, "phase_median_s": med,
        "useful_flops_per_step": useful, "full_tt_flops_per_step": full,
        "achieved_gflops": useful / step / 1e9, "matmul_ceiling_gflops": ceiling,
        "achieved_over_ceiling": useful / step / 1e9 / ceiling,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "machine": cpu_description(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    report(args, res, dtype)
    out = Path(args.out or f"bench/results/train_throughput_{args.config_name.split('/')[-1]}_{args.path}"
               f"_{args.autocast}_{device.type}_t{args.threads}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"  wrote {out}")


def report(args: argparse.Namespace, res: dict, dtype: torch.dtype) -> None:
    print(f"{args.config_name}  device={res['device']}  path={args.path}  autocast={args.autocast}  "
          f"threads={args.threads}  keep_memory={args.keep_memory}  deterministic={args.deterministic}"
          + ("  fill_uninitialized=True" if args.fill_uninitialized else ""))
    print(f"  median step           {res['median_step_s']:.3f} s   ({args.steps} steps after warm-up)")
    print(f"  target cells/s        {res['target_cells_per_s']:,.0f}")
    print(f"  tokens/s              {res['tokens_per_s']:,.0f}")
    print("  phases                " + "  ".join(f"{k} {100 * v:.0f}%" for k, v in res["phase_share"].items()))
    print(f"  FLOPs/step (useful)   {res['useful_flops_per_step']:.3e}   "
          f"(full T x T model: {res['full_tt_flops_per_step']:.3e})")
    print(f"  achieved              {res['achieved_gflops']:.1f} GFLOP/s")
    print(f"  {str(dtype).split('.')[-1]} mm ceiling      {res['matmul_ceiling_gflops']:.1f} GFLOP/s  ->  "
          f"achieved/ceiling {100 * res['achieved_over_ceiling']:.0f}%")


if __name__ == "__main__":
    main()
