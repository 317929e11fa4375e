"""Write a hand-made model (:mod:`interfere.model.handmade`) as a checkpoint that every command reads.

    python -m interfere handmade --list
    python -m interfere handmade --variant attention [--out checkpoints/handmade_attention/latest.pt]
                                 [--heads lookup=3,copy=1]

The checkpoint is a run like any other (``config``, weights, ``step`` 0) plus its ``ground_truth``: what each component
computes and the route of each case, the schema of the account's ``algorithm`` block. Discovery without ``--ckpt`` or
``--run-id`` never picks it (run ids ``handmade_*``, like the controls): name it to analyse it, e.g.

    python -m interfere report --ckpt checkpoints/handmade_attention/latest.pt
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch

from interfere.cli import exit_on_user_error
from interfere.config import TrainConfig
from interfere.cpu import configure_cpu
from interfere.data.layout import VOCAB
from interfere.data.stream import DataConfig, heldout_rules, random_boards
from interfere.errors import UserError
from interfere.model.checkpoint import FORMAT_VERSION, HANDMADE_PREFIX, LATEST, atomic_save
from interfere.model.handmade import VARIANTS, Heads, build, ground_truth, handmade_config
from interfere.model.inference import target_logits


def parse_heads(text: str | None) -> Heads:
    """``lookup=3,copy=1`` -> :class:`Heads` (the rest as default)."""
    if not text:
        return Heads()
    names = {f.name for f in fields(Heads)}
    values = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in names or not value.strip().isdigit():
            raise UserError(f"--heads: expected NAME=INDEX pairs with NAME in {sorted(names)}, got {part!r}")
        values[name.strip()] = int(value)
    return Heads(**values)


def checkpoint(variant: str, heads: Heads) -> dict:
    """The checkpoint dict of a variant: the base config with the hand-made model's shape, and its ground truth."""
    model = build(variant, heads)
    cfg = {"exp_name": f"{HANDMADE_PREFIX}{variant}", "seed": 0, "device": "cpu", "data": asdict(DataConfig()),
           "model": asdict(handmade_config()), "train": asdict(TrainConfig(steps=0))}
    return {"format_version": FORMAT_VERSION, "config": cfg, "vocab": list(VOCAB), "run_id": cfg["exp_name"],
            "step": 0, "train_time_s": 0.0, "model": model.state_dict(), "ema": None,
            "stopped": {"message": f"written by hand (interfere.model.handmade, variant {variant}), never trained"},
            "ground_truth": ground_truth(variant, heads)}


@torch.no_grad()
def heldout_accuracy(variant: str, heads: Heads, boards: int = 256,
                     sizes: tuple[int, ...] = (8, 16)) -> dict[int, float]:
    """Cell accuracy on the held-out test rules at each board side (the check printed after writing)."""
    from interfere.ca.simulate import step

    model, data, out = build(variant, heads), DataConfig(), {}
    rules = heldout_rules(data.n_heldout, data.heldout_seed)
    g = torch.Generator().manual_seed(0)
    for side in sizes:
        with model.sized(side, side):
            picked = rules[torch.randint(0, len(rules), (boards,), generator=g)]
            board = random_boards(boards, side, side, data.density_min, data.density_max, g)
            pred = target_logits(model, model.encode_prompt(picked, board)).argmax(-1)
            out[side] = float((pred == step(board, picked).flatten(1)).float().mean())
    return out


def main(argv: list[str] | None = None) -> Path | None:
    p = argparse.ArgumentParser(description="Write a transformer whose weights are set by hand (no training).")
    p.add_argument("--list", action="store_true", help="name the variants and what each computes")
    p.add_argument("--variant", default=None, choices=list(VARIANTS))
    p.add_argument("--out", default=None, help="checkpoint path (default checkpoints/handmade_<variant>/latest.pt)")
    p.add_argument("--heads", default=None, metavar="NAME=INDEX,...",
                   help="which head plays which part: count, own, rules (layer 0), lookup, copy (layer 1)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.list:
        for name, variant in VARIANTS.items():
            print(f"{name:10s} {variant.description}")
        return None
    with exit_on_user_error():
        if args.variant is None:
            raise UserError("give --variant (one of: " + ", ".join(VARIANTS) + ") or --list")
        configure_cpu(args.threads)
        heads = parse_heads(args.heads)
        t0 = time.perf_counter()
        out = Path(args.out or Path("checkpoints") / f"{HANDMADE_PREFIX}{args.variant}" / LATEST)
        atomic_save(checkpoint(args.variant, heads), out)
        acc = heldout_accuracy(args.variant, heads)
        print(f"handmade: wrote {out} ({args.variant}: {VARIANTS[args.variant].description}) "
              f"in {time.perf_counter() - t0:.1f} s")
        print("held-out cell accuracy: " + ", ".join(f"{s}x{s} {100 * a:.3f}%" for s, a in acc.items()))
        return out


if __name__ == "__main__":
    main()
