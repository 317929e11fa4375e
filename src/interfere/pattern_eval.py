"""Known patterns as a test: every RLE file of a folder rolled out by the model next to the simulator.

``python eval.py --patterns DIR [--size 64] [--gens 200]`` places each pattern in the middle of one
board size (64x64 by default for a size-free model, the model's own size otherwise), in its file's
rule, and reports the first generation at which the model's rollout differs from the simulator
(``exact``: never within ``--gens``). All patterns run in one batch, one rule per board.
"""

from __future__ import annotations

from pathlib import Path

import torch

from interfere.ca.patterns import centred
from interfere.ca.rle import Pattern, RLEError, read_rle
from interfere.evaluate import compare_rollouts
from interfere.model.life_model import LifeTransformer

DEFAULT_SIZE = 64  # a size-free model's board for --patterns
DEFAULT_GENS = 200


def read_folder(folder: str | Path) -> dict[str, Pattern]:
    """Every ``*.rle`` file of ``folder`` by file name; one unreadable file is an error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RLEError(f"--patterns: {folder} is not a folder of .rle files")
    files = sorted(folder.glob("*.rle"))
    if not files:
        raise RLEError(f"--patterns: no .rle files in {folder}")
    patterns = {f.stem: read_rle(f) for f in files}
    no_rule = [name for name, p in patterns.items() if p.rule is None]
    if no_rule:
        raise RLEError(f"--patterns: {', '.join(no_rule)} give no rule in their header ('rule = B3/S23')")
    return patterns


def pattern_rollouts(model: LifeTransformer, patterns: dict[str, Pattern], gens: int) -> list[dict]:
    """Per pattern: its rule, cells, and the first wrong generation on the model's current board size
    (None: exact for ``gens`` generations; patterns larger than the board are reported as such)."""
    h, w = model.layout.height, model.layout.width
    fits = {name: p for name, p in patterns.items() if p.height <= h and p.width <= w}
    rows = {name: {"pattern": name, "name": p.name, "rule": str(p.rule), "cells": f"{p.height}x{p.width}",
                   "board": f"{h}x{w}", "fits": name in fits, "first_wrong": None} for name, p in patterns.items()}
    if fits:
        starts = torch.stack([centred(p, h, w) for p in fits.values()])
        rules = torch.stack([p.rule.bits for p in fits.values()])
        comparison = compare_rollouts(model, rules.to(starts.device), starts, gens)
        for name, first in zip(fits, comparison.first_wrong()):
            rows[name]["first_wrong"] = first
    return list(rows.values())


def format_pattern_table(rows: list[dict], gens: int) -> str:
    width = max(len(r["pattern"]) for r in rows)
    lines = [f"{'pattern':<{width}}  {'rule':<15} {'cells':>7}  first wrong generation (of {gens})"]
    for r in rows:
        verdict = ("does not fit the board" if not r["fits"]
                   else "exact" if r["first_wrong"] is None else str(r["first_wrong"]))
        lines.append(f"{r['pattern']:<{width}}  {r['rule']:<15} {r['cells']:>7}  {verdict}")
    exact = sum(r["fits"] and r["first_wrong"] is None for r in rows)
    lines.append(f"{exact} of {len(rows)} patterns exact for {gens} generations on {rows[0]['board']} boards")
    return "\n".join(lines)
