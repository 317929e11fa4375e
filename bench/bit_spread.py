"""Where each case's governing bit is before a layer, by how many positions hold it: a full-vector patch of the
residual entering the layer, from the same board under another rule (a minimal pair: only the rule differs), at
the cell's own board position, its 3x3 block, every board position, its target, or the board and the target.

    python bench/bit_spread.py --ckpt ref:demo [CKPT ...] [--layers 1] [--boards 48] [--seed 0]

Per case and position group: the share of changed cells (the two rules' bits of the case differ) whose prediction
takes the source rule's bit. With several checkpoints (seeds), also one line per checkpoint: for each case the
fewest positions that hold its bit (at least ``HOLDS`` of its changed cells follow): ``o`` its own board position,
``3`` its 3x3 block, ``b`` the whole board, ``t`` its target, ``bt`` board and target together, ``-`` none of them
(the bit is not yet made, or made only from the rule tokens, before that block).

The abstraction's sites are one position of a cell and its pairs take the source from another board; this asks what
those cannot: whether a bit is spread over several positions, and what a site of one position holds when nothing but
the rule differs. It asks less, too: the source is the same cell, of the same case, so a position that carries the
rule bits the answer is selected from passes as well as one that carries the looked-up bit (the abstraction's pairs
take sources of other cases, which tell the two apart).
"""

from __future__ import annotations

import argparse
import time

import torch

from interfere.ca.rules import BIT_NAMES
from interfere.cpu import configure_cpu, cpu_description
from interfere.data.stream import heldout_rules, random_boards
from interfere.explore.analysis import Examples
from interfere.explore.common import examples_of
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint, weights_hash
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer

GROUPS = ("own", "3x3", "board", "target", "board+target")
CODES = {"own": "o", "3x3": "3", "board": "b", "target": "t", "board+target": "bt"}
HOLDS = 0.99  # the abstraction's claim threshold (cfg/report/thresholds.yaml, abstraction.iia)


def positions(model: LifeTransformer, cell: int, group: str) -> torch.Tensor:
    """The sequence positions of ``group`` for one cell."""
    layout = model.layout
    board = torch.arange(layout.board.start, layout.board.stop)
    target = torch.tensor([layout.targets[0].start + cell])
    near, _ = layout.offsets_3x3()
    return {"own": board[cell:cell + 1], "3x3": board[near[cell]], "board": board, "target": target,
            "board+target": torch.cat([board, target])}[group]


@torch.no_grad()
def spread(model: LifeTransformer, base: Examples, source: Examples, layer: int) -> dict[str, torch.Tensor]:
    """``{group: [N, cells] bool}``: the prediction at each cell's target took the source's next state when the
    group's residual entering ``layer`` came from the source."""
    hook = act_name("resid_pre", layer)
    here, there = (model.run_with_cache(ex.tokens, names_filter=[hook])[1][hook] for ex in (base, source))
    want = source.next_boards.flatten(1)
    out = {}
    for group in GROUPS:
        hit = torch.zeros_like(want, dtype=torch.bool)
        for cell in range(model.layout.n_cells):
            pos = positions(model, cell, group)
            resid = here.clone()
            resid[:, pos] = there[:, pos]
            logits = model.target_logits(model(resid, start_at_layer=layer))
            hit[:, cell] = model.layout.first_step(logits).argmax(-1)[:, cell] == want[:, cell]
        out[group] = hit
    return out


def shares(hits: dict[str, torch.Tensor], base: Examples, source: Examples) -> dict[str, tuple[int, dict]]:
    """Per case: its changed cells, and per group the share of them that took the source's bit."""
    changed = source.next_boards.flatten(1) != base.next_boards.flatten(1)
    out = {}
    for j, case in enumerate(BIT_NAMES):
        where = (base.cases == j) & changed
        if where.any():
            out[case] = int(where.sum()), {g: float(h[where].float().mean()) for g, h in hits.items()}
    return out


def table(by_case: dict[str, tuple[int, dict]]) -> list[str]:
    rows = ["| case | changed cells | " + " | ".join(GROUPS) + " |", "|---|---|" + "---|" * len(GROUPS)]
    for case, (n, by_group) in by_case.items():
        rows.append(f"| {case} | {n} | " + " | ".join(f"{v:.3f}" for v in by_group.values()) + " |")
    return rows


def code(by_group: dict[str, float]) -> str:
    """The fewest positions that hold the bit (module docstring)."""
    return next((CODES[g] for g in GROUPS if by_group[g] >= HOLDS), "-")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, nargs="+", help="checkpoint paths or reference names (ref:demo)")
    p.add_argument("--layers", type=int, nargs="+", default=[1], help="the residual entering these blocks")
    p.add_argument("--boards", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    configure_cpu(args.threads)
    lines = {layer: [] for layer in args.layers}
    for name in args.ckpt:
        model, weights = _load(name)
        g = torch.Generator().manual_seed(args.seed)
        rules = heldout_rules(64, 1234)
        pick = torch.randint(0, len(rules), (2, args.boards), generator=g)
        boards = random_boards(args.boards, model.layout.height, model.layout.width, 0.1, 0.9, g)
        base, source = examples_of(model, rules[pick[0]], boards), examples_of(model, rules[pick[1]], boards)
        for layer in args.layers:
            t0 = time.perf_counter()
            by_case = shares(spread(model, base, source, layer), base, source)
            print(f"\n{name} (weights {weights}), the residual entering block {layer}, {args.boards} boards of "
                  f"held-out rules, seed {args.seed}: share of changed cells that take the source rule's bit "
                  f"({time.perf_counter() - t0:.1f} s; {cpu_description()}, {args.threads} threads)\n")
            print("\n".join(table(by_case)))
            lines[layer].append(f"| {name} ({weights}) | " + " | ".join(
                code(by_case[c][1]) if c in by_case else "" for c in BIT_NAMES) + " |")
    if len(args.ckpt) > 1:
        for layer, rows in lines.items():
            print(f"\nThe fewest positions that hold each case's bit entering block {layer} (>= {HOLDS} of its changed "
                  "cells; o own, 3 its 3x3 block, b the board, t its target, bt both, - none):\n")
            print("| model | " + " | ".join(BIT_NAMES) + " |\n|---|" + "---|" * len(BIT_NAMES))
            print("\n".join(rows))


def _load(name: str) -> tuple[LifeTransformer, str]:
    ckpt = load_checkpoint(ckpt=name)
    return model_from_checkpoint(ckpt).eval(), weights_hash(ckpt["path"])


if __name__ == "__main__":
    main()
