"""Interchange (resampling) tests of what a component's output depends on, in input variables only.

A *role* claims that a component (a head, ``hook_z[:, :, h]``, or an MLP, ``hook_mlp_out``) at a group
of positions (the board cells at t, the t+1 targets, or the physics tokens) computes a function of some
input variables of the cell and nothing else: ``own`` (its state at t), ``count`` (its 8 neighbours),
``count9`` (the 3x3 block's live cells), ``case`` (own, count), ``pattern3x3`` (the 9 cells), ``rule``
(the 18 bits), or ``+``-joins of these. Never the next state nor a governing bit's value: a role that
names the answer would put the answer into the model.

The test (an interchange intervention, or resampling ablation as in causal scrubbing): the component's
output at each cell is replaced by its clean output at a *donor* cell, drawn at random from a pool of
other boards, that agrees with it on the named variables (a donor board with the same rule when they
include ``rule``; the same position for a physics token). If the claim holds, the replacement changes
nothing and accuracy stays. Cells without a donor keep their own output and count against *coverage*.
``none`` means the output is replaced by its mean over the pool at each position (mean ablation).

**The answer-carrying control.** A slot whose role includes ``rule`` and the cell's case (``case+rule``) fixes the
cell's next state: it would pass even if it only relayed the answer made elsewhere. Its control replaces the output by
a donor's that agrees on the role's other variables and on the *answer* (the next state) under another rule (a pool of
boards under rules the examples do not have); a role without ``rule`` is controlled by a donor that shares only the
answer. A slot that passes its control relays the answer; the lookup map says where it was made. The control is never
the test: the key of the role itself never names the next state (:data:`CELL_ROLES`).

Sources: Chan et al., "Causal scrubbing" (Alignment Forum, 2022); Geiger et al., "Causal abstractions of
neural networks" / interchange interventions (NeurIPS 2021). docs/design.md describes the account.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import torch

from interfere.ca.rules import N_COUNTS, rule_codes
from interfere.ca.simulate import moore_neighbourhood
from interfere.data.layout import SequenceLayout
from interfere.explore.account.slots import Replacement, Slot, positions, put_hooks
from interfere.explore.analysis import Examples
from interfere.explore.batched import Hook
from interfere.explore.components import Component

# Candidate roles of a board or target position, coarsest first: the first that holds is the role.
CELL_ROLES = ("none", "own", "count", "count9", "case", "pattern3x3", "rule", "own+rule", "count+rule",
              "count9+rule", "case+rule", "pattern3x3+rule")
PHYSICS_ROLES = ("none", "rule")
# A role that fixes the answer at a target (the case and the rule decide the next state): allowed only
# where nothing coarser holds, and marked on the card.
ANSWER_FIXING = ("case+rule", "pattern3x3+rule")
_SIZES = {"own": 2, "count": N_COUNTS, "count9": N_COUNTS + 1, "case": 2 * N_COUNTS, "pattern3x3": 512,
          "rule": 2**18, "next": 2}
ANSWER = "next"  # the answer-carrying control's extra variable: never part of a role


def control_of(role: str) -> str | None:
    """The answer-carrying control's variables for a cell role (module docstring), or None (``none``)."""
    if role == "none":
        return None
    rest = [v for v in role.split("+") if v != "rule"]
    return "+".join([*rest, ANSWER]) if "rule" in role.split("+") else ANSWER


def cell_variables(ex: Examples) -> dict[str, torch.Tensor]:
    """Every input variable per cell: ``[N, H*W]`` int64 (the rule's code broadcast over the cells)."""
    n, h, w = ex.boards.shape
    own, count = ex.boards.flatten(1), ex.counts.flatten(1)
    pattern = (ex.boards.flatten(1)[:, moore_neighbourhood(h, w)] * (2 ** torch.arange(9))).sum(-1)
    rule = rule_codes(ex.rules)[:, None].expand(-1, h * w)
    return {"own": own, "count": count, "count9": own + count, "case": own * N_COUNTS + count,
            "pattern3x3": pattern, "rule": rule, ANSWER: ex.next_boards.flatten(1)}


def role_key(role: str, ex: Examples, group: str, layout: SequenceLayout) -> torch.Tensor:
    """``[N, len(group)]`` int64: equal keys mean equal named variables (for physics: the same token)."""
    if group == "physics":
        n_phys = len(layout.physics_index)
        slot = torch.arange(n_phys)[None].expand(len(ex), -1)
        return rule_codes(ex.rules)[:, None] * n_phys + slot if role == "rule" else slot
    variables = cell_variables(ex)
    key = torch.zeros(len(ex), layout.n_cells, dtype=torch.long)
    for name in role.split("+"):
        key = key * _SIZES[name] + variables[name]
    return key


def draw_donors(query: torch.Tensor, pool: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query key a random pool index with the same key: (index ``[Q]``, covered ``[Q]`` bool)."""
    order = torch.argsort(pool)
    ranked = pool[order]
    lo = torch.searchsorted(ranked, query, side="left")
    hi = torch.searchsorted(ranked, query, side="right")
    count = hi - lo
    pick = lo + (torch.rand(len(query), generator=g) * count.clamp_min(1)).long()
    return order[pick.clamp_max(len(pool) - 1)], count > 0


class Interchange:
    """Donor outputs of every component on a pool of boards, and the replacements roles ask for."""

    def __init__(self, model: torch.nn.Module, donors: Examples, outputs: dict[Component, torch.Tensor],
                 seed: int) -> None:
        self.model, self.donors, self.outputs, self.seed = model, donors, outputs, seed
        self.layout: SequenceLayout = model.layout

    def replacement(self, c: Component, group: str, role: str, ex: Examples) -> Replacement:
        pos = positions(self.layout, group)
        ref = self.outputs[c][:, pos]  # [M, len(group), ...]
        if role == "none":
            mean = ref.mean(0, keepdim=True).expand(len(ex), *ref.shape[1:])
            return Replacement(mean, torch.ones(len(ex), len(pos), dtype=torch.bool))
        g = torch.Generator().manual_seed(self.seed + zlib.crc32(f"{c.name} {group} {role}".encode()))
        query = role_key(role, ex, group, self.layout)
        index, covered = draw_donors(query.flatten(), role_key(role, self.donors, group, self.layout).flatten(), g)
        values = ref.flatten(0, 1)[index].unflatten(0, query.shape)
        return Replacement(values, covered.view(query.shape))

    def conditional_mean(self, c: Component, group: str, role: str, ex: Examples) -> Replacement:
        """The output replaced by its mean over the donors that agree on the variables (a second number
        next to the interchange test, never the test: a mean can carry what no single donor does)."""
        pos = positions(self.layout, group)
        ref = self.outputs[c][:, pos].flatten(0, 1)
        pool = role_key(role, self.donors, group, self.layout).flatten()
        query = role_key(role, ex, group, self.layout)
        keys, inverse = torch.unique(pool, return_inverse=True)
        sums = torch.zeros(len(keys), *ref.shape[1:], device=ref.device).index_add_(0, inverse.to(ref.device), ref)
        means = sums / torch.bincount(inverse, minlength=len(keys)).to(ref.device).view(-1, *[1] * (ref.dim() - 1))
        at = torch.searchsorted(keys, query.flatten()).clamp_max(len(keys) - 1)
        covered = keys[at] == query.flatten()
        return Replacement(means[at].unflatten(0, query.shape), covered.view(query.shape))

    def hooks(self, replacements: dict[tuple[Component, str], Replacement]) -> Callable[[slice], list[Hook]]:
        """Hooks (per chunk ``part`` of the examples) that apply every replacement at once."""
        return put_hooks(self.model, {Slot(c, group): rep for (c, group), rep in replacements.items()})


def coverage(replacements: dict[tuple[Component, str], Replacement]) -> float:
    """The share of (component, position) slots that got a replacement (1.0 with none to make)."""
    total = sum(rep.covered.numel() for rep in replacements.values())
    return float(sum(int(rep.covered.sum()) for rep in replacements.values()) / total) if total else 1.0
