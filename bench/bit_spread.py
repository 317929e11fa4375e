"""Where each case's governing bit is before a layer, by how many positions hold it: a full-vector patch of the
residual entering the layer, from the same board under another rule (a minimal pair: only the rule differs), at
the cell's own board position, its 3x3 block, every board position, its target, or the board and the target.

    python bench/bit_spread.py --ckpt ref:demo [CKPT ...] [--layers 1] [--boards 48] [--seed 0]

Per case and position group: the share of changed cells (the two rules' bits of the case differ) whose prediction
takes the source rule's bit; the boards are drawn at the checkpoint's data densities, the rules from its held-out
rules. With several checkpoints (seeds), also one line per checkpoint: for each case the fewest positions that hold
its bit (at least the abstraction's claim threshold of its changed cells follow): ``o`` its own board position, ``t``
its target, ``3`` its 3x3 block, ``b`` the whole board, ``bt`` board and target; where none holds it, ``~`` and the
group that moves most of its cells when that is at least half (the bit is spread, or partly made), ``-`` otherwise
(not yet made, or made only from the rule tokens, before that block).

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
from interfere.data.stream import DataConfig, heldout_rules, random_boards
from interfere.explore.analysis import Examples
from interfere.explore.common import examples_of
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint, weights_hash
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer
from interfere.thresholds import load_thresholds

GROUPS = ("own", "target", "3x3", "board", "board+target")  # by how many positions they patch
CODES = {"own": "o", "target": "t", "3x3": "3", "board": "b", "board+target": "bt"}
PARTLY = 0.5  # below the claim threshold but at least this share: held partly ("~" before the best group's code)


def positions(model: LifeTransformer, cell: int, group: str) -> torch.Tensor:
    """The sequence positions of ``group`` for one cell."""
    layout = model.layout
    board, target = layout.group_positions("board"), layout.group_positions("targets")[cell:cell + 1]
    near, _ = layout.offsets_3x3()
    return {"own": board[cell:cell + 1], "3x3": board[near[cell]], "board": board, "target": target,
            "board+target": torch.cat([board, target])}[group]


@torch.no_grad()
def spread(model: LifeTransformer, base: Examples, source: Examples, layer: int) -> dict[str, torch.Tensor]:
    """``{group: [N, cells] bool}``: the prediction at each cell's target took the source's next state when the
    group's residual entering ``layer`` came from the source, and had not without the patch (a model that predicts
    at chance, the random-init one, is not credited with the half of the cells it gets by luck)."""
    hook = act_name("resid_pre", layer)
    here, there = (model.run_with_cache(ex.tokens, names_filter=[hook])[1][hook] for ex in (base, source))
    want = source.next_boards.flatten(1)
    unpatched = model.layout.first_step(model.target_logits(model(here, start_at_layer=layer))).argmax(-1)
    last: tuple[tuple[int, ...], torch.Tensor] | None = None  # the whole board's patch is every cell's: run it once
    out = {}
    for group in GROUPS:
        hit = torch.zeros_like(want, dtype=torch.bool)
        for cell in range(model.layout.n_cells):
            pos = positions(model, cell, group)
            if last is None or last[0] != tuple(pos.tolist()):
                resid = here.clone()
                resid[:, pos] = there[:, pos]
                logits = model.target_logits(model(resid, start_at_layer=layer))
                last = tuple(pos.tolist()), model.layout.first_step(logits).argmax(-1)
            hit[:, cell] = (last[1][:, cell] == want[:, cell]) & (unpatched[:, cell] != want[:, cell])
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
    """One model's markdown table: per case its changed cells and each group's share."""
    rows = ["| case | changed cells | " + " | ".join(GROUPS) + " |", "|---|---|" + "---|" * len(GROUPS)]
    for case, (n, by_group) in by_case.items():
        rows.append(f"| {case} | {n} | " + " | ".join(f"{v:.3f}" for v in by_group.values()) + " |")
    return rows


def code(by_group: dict[str, float], holds: float) -> str:
    """The fewest positions that hold the bit, else the group that moves the most when that is at least half
    (module docstring)."""
    held = next((CODES[g] for g in GROUPS if by_group[g] >= holds), None)
    if held is not None:
        return held
    best = max(GROUPS, key=lambda g: by_group[g])
    return f"~{CODES[best]}" if by_group[best] >= PARTLY else "-"


def pairs_of(model: LifeTransformer, data: DataConfig, n: int, seed: int) -> tuple[Examples, Examples]:
    """``n`` boards at the data's densities, each under two different held-out rules of the model's data."""
    g = torch.Generator().manual_seed(seed)
    rules = heldout_rules(data.n_heldout, data.heldout_seed)
    first = torch.randint(0, len(rules), (n,), generator=g)
    second = (first + torch.randint(1, len(rules), (n,), generator=g)) % len(rules)
    boards = random_boards(n, model.layout.height, model.layout.width, data.density_min, data.density_max, g)
    return examples_of(model, rules[first], boards), examples_of(model, rules[second], boards)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, nargs="+", help="checkpoint paths or reference names (ref:demo)")
    p.add_argument("--layers", type=int, nargs="+", default=[1], help="the residual entering these blocks")
    p.add_argument("--boards", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    configure_cpu(args.threads)
    holds = load_thresholds()["abstraction"]["claim_iia"]
    lines: dict[int, list[str]] = {layer: [] for layer in args.layers}
    for name in args.ckpt:
        model, data, weights = _load(name)
        base, source = pairs_of(model, data, args.boards, args.seed)
        for layer in args.layers:
            t0 = time.perf_counter()
            by_case = shares(spread(model, base, source, layer), base, source)
            print(f"\n{name} (weights {weights}), the residual entering block {layer}, {args.boards} boards of "
                  f"held-out rules, seed {args.seed}: share of changed cells that take the source rule's bit "
                  f"({time.perf_counter() - t0:.1f} s; {cpu_description()}, {args.threads} threads)\n")
            print("\n".join(table(by_case)))
            lines[layer].append(f"| {name} ({weights}) | " + " | ".join(
                code(by_case[c][1], holds) if c in by_case else "" for c in BIT_NAMES) + " |")
    if len(args.ckpt) > 1:
        for layer, rows in lines.items():
            print(f"\nThe fewest positions that hold each case's bit entering block {layer} (>= {holds} of its "
                  f"changed cells; o own, t its target, 3 its 3x3 block, b the board, bt board and target; ~x: none "
                  f"holds it, x moves the most, >= {PARTLY}; - none moves {PARTLY}):\n")
            print("| model | " + " | ".join(BIT_NAMES) + " |\n|---|" + "---|" * len(BIT_NAMES))
            print("\n".join(rows))


def _load(name: str) -> tuple[LifeTransformer, DataConfig, str]:
    ckpt = load_checkpoint(ckpt=name)
    return model_from_checkpoint(ckpt).eval(), DataConfig(**ckpt["config"]["data"]), weights_hash(ckpt["path"])


if __name__ == "__main__":
    main()
