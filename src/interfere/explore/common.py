"""What every exploration's command line shares: flags, the checkpoint and model, examples, outputs.

An exploration is an analysis module (:mod:`interfere.explore.analysis`: ``Params``, ``wants``,
``measure``, ``plot``) plus ``build_parser``; :func:`run_main` turns the flags into a :class:`Context`
(model from the checkpoint, layout, seeded examples) and typed params, measures, plots into a fresh
output folder and writes ``summary.json`` with provenance.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType

import torch

from interfere.ca.rules import get_rule
from interfere.ca.simulate import neighbour_counts, step
from interfere.cli import (
    add_checkpoint_args,
    add_thresholds_arg,
    command_line,
    exit_on_user_error,
    load_model_from_args,
    thresholds_from_args,
)
from interfere.cpu import cpu_description
from interfere.data.layout import SequenceLayout
from interfere.data.stream import DataConfig, heldout_rules, random_boards
from interfere.errors import UserError
from interfere.explore.analysis import Activations, Examples, jsonable
from interfere.explore.batched import scaled_samples
from interfere.model.checkpoint import weights_hash
from interfere.model.life_model import LifeTransformer

DEFAULT_OUT_ROOT = Path("assets/explorations")


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
        """Provenance for a figure: run, step, training and boards seeds, rule set, and e.g. layer/head."""
        parts = [f"run {self.ckpt.get('run_id')}", f"step {self.ckpt['step']}", f"train seed {self.train_seed}",
                 f"boards seed {self.seed}",
                 f"rule {self.rule}" if self.rule else "held-out random rules"]
        parts += [f"{k} {v}" for k, v in where.items()]
        return " · ".join(parts)

    @property
    def train_seed(self) -> int | None:
        """The seed the checkpoint was trained with (``seed`` is the analysis's own, for its boards)."""
        return self.ckpt.get("config", {}).get("seed")

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
        return examples_of(self.model, rules, boards)

    def write_summary(self, name: str, numbers: dict, files: list[Path]) -> Path:
        summary = {
            "exploration": name, "checkpoint": self.ckpt["path"], "weights_sha256": weights_hash(self.ckpt["path"]),
            "cpu": cpu_description(), "step": self.ckpt["step"],
            "run_id": self.ckpt.get("run_id"), "train_seed": self.train_seed, "boards_seed": self.seed,
            "rule": self.rule or "held-out mix",
            "board": f"{self.layout.height}x{self.layout.width}", "command": self.command,
            "files": [p.name for p in files], **numbers,
        }
        path = self.out / "summary.json"
        path.write_text(json.dumps(jsonable(summary), indent=2, default=str))
        return path


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
    add_thresholds_arg(p)
    return p


def examples_of(model: LifeTransformer, rules: torch.Tensor, boards: torch.Tensor) -> Examples:
    """Examples for ``[N, 18]`` rules and ``[N, H, W]`` boards, with an empty activation cache."""
    tokens = model.encode_prompt(rules, boards)
    return Examples(rules, boards, step(boards, rules), neighbour_counts(boards), tokens, Activations(model, tokens))


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


def run_main(module_name: str, argv: list[str] | None = None) -> dict:
    """The command line of the analysis module ``module_name`` (its ``__spec__.name``, also under
    ``python -m``): parse flags, load the model, measure on fresh examples, plot into a fresh folder, write
    summary.json."""
    module = importlib.import_module(module_name)
    args = module.build_parser().parse_args(argv)
    with exit_on_user_error():
        if args.rule is not None:
            get_rule(args.rule)  # fail before the (slower) checkpoint load
        thresholds = thresholds_from_args(args)
        model, ckpt = load_model_from_args(args)
        ctx = Context(model=model, ckpt=ckpt, layout=model.layout, data=DataConfig(**ckpt["config"]["data"]),
                      out=Path(), seed=args.seed, rule=args.rule, command=command_line())
        if getattr(args, "samples_base", None) is not None and args.samples is None:
            args.samples = scaled_samples(args.samples_base, ctx.layout.n_cells, args.samples_floor)
        _validate_common(ctx, args)
        params = params_from_args(module, args, ctx, thresholds)
        with staged_dir(args.out) as (work, final), torch.no_grad():
            ctx.out = work
            ex = ctx.examples(params.samples)
            ex.acts.want(module.wants(model, params))
            result = module.measure(model, ex, params)
            files = module.plot(result, work, ctx.caption)
            numbers = jsonable(result)
            ctx.write_summary(module.NAME, numbers, files)
        print(f"{module.NAME}: wrote {len(files)} figure(s) and summary.json to {final}")
        return numbers


def params_from_args(module: ModuleType, args: argparse.Namespace, ctx: Context, thresholds: dict) -> object:
    """The module's typed ``Params`` from the flags of the same names (its ``params_from_args`` if it has
    one); a ``thresholds`` field gets the thresholds file's section of the module's name."""
    if hasattr(module, "params_from_args"):
        return module.params_from_args(args, ctx, thresholds)
    names = {f.name for f in fields(module.Params)}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    if "thresholds" in names:
        values["thresholds"] = thresholds
    return module.Params(**values)


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
