"""Idealised heads: a hand-written attention pattern in place of a head's own, through ``hook_pattern``.

For a head whose role at the board or target positions is a function of the cell's neighbourhood (or of
the rule), the idealised version attends exactly where the role says: to the query cell's own cell at t,
evenly to its 8 neighbours, evenly to its 3x3 block, or evenly to the 18 rule tokens, whichever of these
written-down patterns is closest (total variation) to the head's measured mean pattern; its values are
still the model's. The accuracy it keeps says whether the head *is* that pattern, not a fitted version.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from interfere.ca.simulate import moore_neighbourhood
from interfere.data.layout import SequenceLayout
from interfere.explore import batched
from interfere.explore.analysis import Examples
from interfere.explore.components import Component, accuracy
from interfere.explore.interchange import positions
from interfere.model.life_model import LifeTransformer

IDEALS = ("own cell", "8 neighbours", "3x3 block", "rule tokens")
OWN = 4  # the cell itself among the 3x3 offsets (row-major)


def ideal_rows(layout: SequenceLayout, group: str, ideal: str) -> torch.Tensor:
    """``[cells, T]``: the hand-written attention rows of the group's queries (board cells or t+1 targets)."""
    n, t = layout.n_cells, layout.seq_len
    rows = torch.zeros(n, t)
    hood = layout.board.start + moore_neighbourhood(layout.height, layout.width)  # [cells, 9] key positions
    if ideal == "rule tokens":
        rows[:, layout.rule] = 1.0 / (layout.rule.stop - layout.rule.start)
    elif ideal == "own cell":
        rows[torch.arange(n), hood[:, OWN]] = 1.0
    else:
        keys = hood if ideal == "3x3 block" else torch.cat([hood[:, :OWN], hood[:, OWN + 1:]], dim=1)
        rows.scatter_add_(1, keys, torch.full(keys.shape, 1.0 / keys.shape[1]))
    return rows


def mean_rows(model: LifeTransformer, ex: Examples, slots: list[tuple[Component, str]]
              ) -> dict[tuple[Component, str], torch.Tensor]:
    """``[cells, T]`` per (head, group): its mean attention rows at the group's queries (one forward)."""
    def take(head: int, pos: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda p: p[:, head, pos].mean(0, keepdim=True)

    wants = [(f"blocks.{c.layer}.attn.hook_pattern", f"head{c.head}@{group}",
              take(c.head, positions(model.layout, group))) for c, group in slots]
    rows = batched.cached_views(model, ex.tokens, wants)
    return {slot: rows[(name, key)].mean(0) for slot, (name, key, _) in zip(slots, wants)}


def pattern_hooks(layout: SequenceLayout, chosen: dict[tuple[Component, str], str]) -> list:
    """Hooks giving each (head, group) its idealised rows."""
    by_layer: dict[int, list[tuple[int, torch.Tensor, torch.Tensor]]] = {}
    for (c, group), ideal in chosen.items():
        by_layer.setdefault(c.layer, []).append((c.head, positions(layout, group), ideal_rows(layout, group, ideal)))

    def make(items: list[tuple[int, torch.Tensor, torch.Tensor]]):
        def hook(pattern: torch.Tensor, hook) -> torch.Tensor:  # [batch, head, q, k]
            pattern = pattern.clone()
            for head, pos, rows in items:
                pattern[:, head, pos] = rows.to(pattern.device, pattern.dtype)
            return pattern
        return hook

    return [(f"blocks.{layer}.attn.hook_pattern", make(items)) for layer, items in by_layer.items()]


def idealised_heads(model: LifeTransformer, ex: Examples, roles: dict, reference: Examples) -> dict:
    """Every head with a role at the board or the targets (not none, unexplained or computed), idealised
    alone and all at once: the pattern chosen on ``reference`` boards, the accuracy kept on ``ex``."""
    slots = [(Component(*(int(x) for x in r["component"][1:].split("H"))), r["group"]) for r in roles.values()
             if r["component"].startswith("L") and r["group"] != "physics"
             and r["uses"] not in ("none", "unexplained", "computed")]
    measured_rows = mean_rows(model, reference, slots)
    chosen, out = {}, {"heads": {}}
    for c, group in slots:
        name, measured = c.name, measured_rows[(c, group)]
        distance = {i: 0.5 * float((measured - ideal_rows(model.layout, group, i)).abs().sum(-1).mean())
                    for i in IDEALS}
        best = min(distance, key=distance.get)
        chosen[(c, group)] = best
        out["heads"][f"{name}@{group}"] = {"pattern": best, "distance": distance[best],
                                           "acc": accuracy(model, ex, pattern_hooks(model.layout, {(c, group): best}))}
    if chosen:
        out["all_at_once"] = accuracy(model, ex, pattern_hooks(model.layout, chosen))
    return out
