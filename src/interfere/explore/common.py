"""What every exploration shares: flags, the checkpoint and model, example batches, outputs.

An exploration is ``run(ctx, args) -> summary`` plus a ``main`` that parses flags; this module
turns the flags into a :class:`Context` (model from the checkpoint, layout, seeded examples,
a fresh output folder) and writes ``summary.json`` with provenance.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from interfere.ca.rules import get_rule
from interfere.ca.simulate import neighbour_counts, step
from interfere.cli import add_checkpoint_args, command_line, exit_on_user_error, load_model_from_args
from interfere.data.layout import SequenceLayout
from interfere.data.stream import DataConfig, heldout_rules, random_boards
from interfere.errors import UserError
from interfere.explore.batched import scaled_samples
from interfere.model.life_model import LifeTransformer

DEFAULT_OUT_ROOT = Path("assets/explorations")


@dataclass
class Examples:
    """A seeded batch of prompts with every ground-truth quantity an analysis may want."""

    rules: torch.Tensor  # [N, 18] bool
    boards: torch.Tensor  # [N, H, W] int64, the state at t
    next_boards: torch.Tensor  # [N, H, W] int64, the simulator's t+1
    counts: torch.Tensor  # [N, H, W] int64, live neighbours at t
    tokens: torch.Tensor  # [N, T] int64, on the model's device


@dataclass
class Context:
    model: LifeTransformer
    ckpt: dict
    layout: SequenceLayout
    data: DataConfig
    out: Path
    seed: int
    rule: str | None
    command: str

    def caption(self, **where: object) -> str:
        """Provenance for a figure: run, step, seed, rule set, and e.g. layer/head."""
        parts = [f"run {self.ckpt.get('run_id')}", f"step {self.ckpt['step']}", f"seed {self.seed}",
                 f"rule {self.rule}" if self.rule else "held-out random rules"]
        parts += [f"{k} {v}" for k, v in where.items()]
        return " · ".join(parts)

    def examples(self, n: int, seed_offset: int = 0, rule: str | None = None) -> Examples:
        """``n`` boards at the training densities under ``rule`` (default ``--rule``) or, when
        neither is given, a mix of held-out rules."""
        g = torch.Generator().manual_seed(self.seed + seed_offset)
        rule = rule or self.rule
        if rule:
            rules = get_rule(rule).bits.expand(n, -1).clone()
        else:
            held = heldout_rules(self.data.n_heldout, self.data.heldout_seed)
            rules = held[torch.randint(0, len(held), (n,), generator=g)]
        boards = random_boards(n, self.layout.height, self.layout.width, self.data.density_min,
                               self.data.density_max, g)
        tokens = self.model.encode_prompt(rules, boards)
        return Examples(rules, boards, step(boards, rules), neighbour_counts(boards), tokens)

    def write_summary(self, name: str, numbers: dict, files: list[Path]) -> Path:
        summary = {
            "exploration": name, "checkpoint": self.ckpt["path"], "step": self.ckpt["step"],
            "run_id": self.ckpt.get("run_id"), "seed": self.seed, "rule": self.rule or "held-out mix",
            "board": f"{self.layout.height}x{self.layout.width}", "command": self.command,
            "files": [p.name for p in files], **numbers,
        }
        path = self.out / "summary.json"
        path.write_text(json.dumps(summary, indent=2, default=_jsonable))
        return path


def _jsonable(x: object) -> object:
    return x.tolist() if hasattr(x, "tolist") else str(x)  # tensors and NumPy values


def unused_path(out: str | None, root: Path = DEFAULT_OUT_ROOT) -> Path:
    """``--out`` or ``assets/explorations/<timestamp>/``, suffixed ``-1``, ``-2``... if it exists."""
    base = Path(out) if out else root / time.strftime("%Y%m%d-%H%M%S")
    path, i = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{i}")
        i += 1
    return path


@contextlib.contextmanager
def staged_dir(out: str | None) -> Iterator[tuple[Path, Path]]:
    """(work folder, final folder): outputs are written to a hidden work folder that is renamed
    into place only when everything succeeded, so a failed run leaves no half-written folder."""
    final = unused_path(out)
    work = final.with_name(f".{final.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work, final
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    work.rename(final)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    add_checkpoint_args(p)
    p.add_argument("--rule", default=None,
                   help="a rule string (B3/S23) or named rule; default: a mix of held-out random rules")
    p.add_argument("--out", default=None, help="output folder (default assets/explorations/<timestamp>/)")
    return p


def add_samples_arg(p: argparse.ArgumentParser, base: int, floor: int, what: str = "boards") -> None:
    """``--samples``, whose default is ``base`` at 8x8 and scales down with the board's cell count
    (at 32x32, a 16th as many, at least ``floor``), so an analysis of big boards fits in memory and time."""
    p.add_argument("--samples", type=int, default=None,
                   help=f"{what} (default: {base} at 8x8, fewer for bigger boards: "
                        f"{scaled_samples(base, 1024, floor)} at 32x32)")
    p.set_defaults(samples_base=base, samples_floor=floor)


def check_range(name: str, value: int, n: int) -> None:
    if not 0 <= value < n:
        raise UserError(f"{name} {value} is out of range: valid values are 0..{n - 1}")


def parse_cell(text: str, layout: SequenceLayout) -> tuple[int, int]:
    try:
        row, col = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--query must be ROW,COL (e.g. 3,4), got {text!r}") from None
    layout.board_position(row, col)  # raises a clear error outside the board
    return row, col


def run_main(name: str, build_parser: Callable[[], argparse.ArgumentParser],
             run: Callable[[Context, argparse.Namespace], tuple[dict, list[Path]]],
             argv: list[str] | None = None) -> dict:
    """Parse flags, load the model, run the analysis into a fresh folder, write summary.json."""
    args = build_parser().parse_args(argv)
    with exit_on_user_error():
        if args.rule is not None:
            get_rule(args.rule)  # fail before the (slower) checkpoint load
        model, ckpt = load_model_from_args(args)
        ctx = Context(model=model, ckpt=ckpt, layout=model.layout, data=DataConfig(**ckpt["config"]["data"]),
                      out=Path(), seed=args.seed, rule=args.rule, command=command_line())
        if getattr(args, "samples_base", None) is not None and args.samples is None:
            args.samples = scaled_samples(args.samples_base, ctx.layout.n_cells, args.samples_floor)
        _validate_common(ctx, args)
        with staged_dir(args.out) as (work, final), torch.no_grad():
            ctx.out = work
            numbers, files = run(ctx, args)
            ctx.write_summary(name, numbers, files)
        print(f"{name}: wrote {len(files)} figure(s) and summary.json to {final}")
        return numbers


def _validate_common(ctx: Context, args: argparse.Namespace) -> None:
    cfg = ctx.model.cfg
    if getattr(args, "layer", None) is not None:
        n_points = cfg.n_layers + int(getattr(args, "final_layer_ok", False))  # n_layers = final residual
        check_range("--layer", args.layer, n_points)
    if getattr(args, "head", None) is not None:
        check_range("--head", args.head, cfg.n_heads)
    if getattr(args, "samples", None) is not None and args.samples < 2:
        raise UserError(f"--samples must be at least 2, got {args.samples}")
    if getattr(args, "controls", None) is not None and args.controls < 1:
        raise UserError(f"--controls must be at least 1, got {args.controls}")
    if getattr(args, "query", None):
        parse_cell(args.query, ctx.layout)
