"""Idealised heads: a head's attention replaced, through ``hook_pattern``, by a template written from the inputs only.

A template gives every (query cell, key) pair a weight from what the query's case is (its state and live-neighbour
count) and what *kind* of key it is: one of the 18 rule tokens and its value, a separator, a board cell by its offset
in the 3x3 block and its state (or a far board cell by its state), or the target itself. The governing rule token's
weight never depends on its value: that value is the answer, and a template must not be handed it. Its constants are
measured once, on reference boards that are not the ones it is scored on; nothing is taken from the example a
template replaces, and the head's values stay the model's. Templates (:data:`TEMPLATES`):

* ``own cell``: all attention on the query's own board cell (a copy head);
* ``rule tokens``: even over the 18 rule tokens;
* ``live/dead stencil``: the 3x3 block, each key weighted by whether it is the cell itself or a neighbour and live or
  dead (4 measured constants: a counting head that weighs live neighbours more is still a counting head);
* ``governing token``: for the cases the lookup map says this head looks up, all attention on the one governing
  rule token (case-gated); for the other cases, its case-conditional weights;
* ``case-conditional``: the mean attention per visible key of each kind given the query's case (18 x 62 constants).

Each head gets the simplest named template within ``TIE`` of the nearest to what it does (mean total variation per
query on the reference boards), the governing token where the map names it a lookup; the accuracy kept says whether
the head *is* that template. A head whose attention follows the answer (:func:`answer_dependence`: the rows given the
case and a dead next state against those given the case and a live one) cannot be matched by any template that is not
handed the answer; the card names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from interfere.ca.rules import BIT_NAMES, N_RULE_BITS
from interfere.explore import batched
from interfere.explore.account.slots import Slot, positions
from interfere.explore.analysis import Examples
from interfere.explore.components import accuracy
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer

TEMPLATES = ("own cell", "rule tokens", "live/dead stencil", "governing token", "case-conditional")
NAMED = TEMPLATES[:3]  # the ones a head is matched to by distance (the governing token comes from the map)
N_SEPARATORS = 5  # BOS, SEP and up to three target separators
MIN_CELLS = 20  # cells of each answer before a case's answer dependence is measured (fewer: too noisy)
TIE = 0.01  # templates this close in distance count as equally near: the simpler one is taken
RULE_KIND = 0  # + 2 * bit + value
SEP_KIND = RULE_KIND + 2 * N_RULE_BITS
STENCIL_KIND = SEP_KIND + N_SEPARATORS  # + 2 * offset (0..8, row-major, 4 = own) + state
FAR_KIND = STENCIL_KIND + 18  # + state
SELF_KIND = FAR_KIND + 2
N_KINDS = SELF_KIND + 1
OWN_OFFSET = 4


def key_kinds(model: LifeTransformer, ex: Examples, group: str) -> torch.Tensor:
    """``[N, cells, T]`` int64: the kind of every key for every query cell of the group (module docstring)."""
    layout = model.layout
    n, cells = len(ex), layout.n_cells
    kinds = torch.full((layout.seq_len,), SELF_KIND, dtype=torch.long)  # targets: only the query's own is visible
    seps = positions(layout, "separators")
    kinds[seps] = SEP_KIND + torch.arange(len(seps))
    out = kinds.expand(n, cells, -1).clone()
    out[:, :, layout.rule] = (RULE_KIND + 2 * torch.arange(N_RULE_BITS) + ex.rules.long())[:, None, :]
    near, offset = layout.offsets_3x3()
    state = ex.boards.flatten(1)[:, None, :].expand(n, cells, cells)
    out[:, :, layout.board] = torch.where(near, STENCIL_KIND + 2 * offset + state, FAR_KIND + state)
    return out


def query_cases(ex: Examples) -> torch.Tensor:
    """``[N, cells]``: each cell's case (= the index of its governing rule bit)."""
    return ex.cases


def head_rows(model: LifeTransformer, ex: Examples, slots: list[Slot]) -> dict[Slot, torch.Tensor]:
    """``[N, cells, T]`` per head slot: its attention rows at the group's queries (one forward for all)."""
    def take(head: int, queries: torch.Tensor):
        return lambda p: p[:, head, queries]

    wants = [(act_name("pattern", s.component.layer), s.name,
              take(s.component.head, positions(model.layout, s.group))) for s in slots]
    rows = batched.cached_views(model, ex.tokens, wants)
    return {s: rows[(name, key)] for s, (name, key, _) in zip(slots, wants)}


class Weights(NamedTuple):
    """A head's measured attention per key of each kind: given the query's case, and over every query."""

    by_case: torch.Tensor  # [18, N_KINDS]
    pooled: torch.Tensor  # [N_KINDS]
    seen: torch.Tensor  # [18] bool: the case had queries on the reference boards


def measured_weights(rows: torch.Tensor, kinds: torch.Tensor, case: torch.Tensor, allowed: torch.Tensor) -> Weights:
    """:func:`conditional_weights`, the same pooled over the cases, and which cases were seen."""
    index = kinds.flatten()
    total = torch.zeros(N_KINDS).index_add_(0, index, rows.flatten().float())
    count = torch.zeros(N_KINDS).index_add_(0, index, visible(allowed, rows))
    seen = torch.bincount(case.flatten(), minlength=N_RULE_BITS) > 0
    return Weights(conditional_weights(rows, kinds, case, allowed), total / count.clamp_min(1), seen)


def visible(allowed: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``allowed`` ``[cells, T]`` for every row of ``rows`` ``[N, cells, T]``, flat: a mean weight per kind of key
    counts only the keys a query may attend to. (Counting every key diluted a kind that is mostly hidden: the
    targets' own position is one of H*W target positions, the others masked, so a head that puts 98% there was
    measured at 98%/64 and its template moved the weight to the board.)"""
    return allowed.to(torch.float).expand_as(rows).flatten()


def conditional_weights(rows: torch.Tensor, kinds: torch.Tensor, case: torch.Tensor, allowed: torch.Tensor
                        ) -> torch.Tensor:
    """``[18, N_KINDS]``: mean attention per visible key of each kind, given the query's case; the governing token's
    two values pooled (module docstring)."""
    flat_case = case[..., None].expand_as(kinds)
    index = (flat_case * N_KINDS + kinds).flatten()
    total = torch.zeros(N_RULE_BITS * N_KINDS).index_add_(0, index, rows.flatten().float()).view(N_RULE_BITS, -1)
    count = torch.zeros(N_RULE_BITS * N_KINDS).index_add_(0, index, visible(allowed, rows)).view(N_RULE_BITS, -1)
    for j in range(N_RULE_BITS):
        for bit in range(N_RULE_BITS):  # the governing token's values pooled; an unseen value takes the other's
            both = slice(RULE_KIND + 2 * bit, RULE_KIND + 2 * bit + 2)
            if bit == j or not bool((count[j, both] > 0).all()):
                total[j, both], count[j, both] = total[j, both].sum(), count[j, both].sum()
    return total / count.clamp_min(1)


def template_rows(name: str, weights: Weights, kinds: torch.Tensor, case: torch.Tensor,
                  allowed: torch.Tensor, gated: list[int] | None = None) -> torch.Tensor:
    """``[N, cells, T]`` rows of a template (module docstring), normalised over the keys the query may see; NaN
    (the query's own attention left in place) where a measured template knows nothing of the query's case."""
    own = STENCIL_KIND + 2 * OWN_OFFSET
    if name == "case-conditional" or name == "governing token":
        table = weights.by_case.clone()
    else:
        table = torch.zeros_like(weights.by_case)
        if name == "own cell":
            table[:, own:own + 2] = 1.0
        elif name == "rule tokens":
            table[:, RULE_KIND:SEP_KIND] = 1.0
        elif name == "live/dead stencil":  # four constants: own or neighbour, dead or live, over every query
            stencil = weights.pooled[STENCIL_KIND:FAR_KIND].view(9, 2)
            nb = torch.cat([stencil[:OWN_OFFSET], stencil[OWN_OFFSET + 1:]]).mean(0)
            table[:, STENCIL_KIND:FAR_KIND] = nb.repeat(9)
            table[:, own:own + 2] = stencil[OWN_OFFSET]
    if name == "governing token":
        for case_index in gated or []:
            table[case_index] = 0.0
            table[case_index, RULE_KIND + 2 * case_index:RULE_KIND + 2 * case_index + 2] = 1.0  # either value
    rows = table[case[..., None].expand_as(kinds), kinds] * allowed
    total = rows.sum(-1, keepdim=True)
    unknown = (total <= 0) | (~weights.seen[case][..., None] if name in ("case-conditional", "governing token")
                              else torch.zeros_like(total, dtype=torch.bool))
    return (rows / total.clamp_min(1e-12)).masked_fill(unknown, float("nan"))


def pattern_hooks(model: LifeTransformer, rows: dict[Slot, torch.Tensor]) -> object:
    """Hooks (per chunk) giving each head slot its template rows ``[N, cells, T]``."""
    def for_part(part: slice) -> list:
        by_layer: dict[int, list[tuple[Slot, torch.Tensor]]] = {}
        for slot, r in rows.items():
            by_layer.setdefault(slot.component.layer, []).append((slot, r[part]))

        def make(items: list[tuple[Slot, torch.Tensor]]):
            def hook(pattern: torch.Tensor, hook) -> torch.Tensor:  # [batch, head, q, k]
                pattern = pattern.clone()
                for slot, r in items:  # a NaN row leaves that query's own attention in place
                    pos = positions(model.layout, slot.group)
                    own = pattern[:, slot.component.head, pos]
                    r = r.to(pattern)
                    pattern[:, slot.component.head, pos] = torch.where(torch.isnan(r), own, r)
                return pattern
            return hook
        return [(act_name("pattern", layer), make(items)) for layer, items in by_layer.items()]
    return for_part


def allowed_keys(model: LifeTransformer, layer: int, head: int, group: str) -> torch.Tensor:
    """``[cells, T]``: the keys the group's queries may attend to (the mask; a window model's window)."""
    layout = model.layout
    mask = model.score_mask(layer, layout.seq_len, layout.seq_len)
    mask = mask if mask.dtype == torch.bool else torch.isfinite(mask[head])
    return mask[positions(layout, group)].cpu().float()


@dataclass
class IdealHead:
    """One head idealised alone: its nearest template (by mean total variation from its own rows), the cases whose
    governing token it is gated to, the accuracy kept with it and with case-conditional rows, and how far its
    attention follows the answer per case."""

    template: str
    distance: float
    gated_cases: list[int]
    acc: float
    case_conditional_distance: float
    case_conditional_acc: float
    answer_dependence: dict[str, float]


@dataclass
class Idealised:
    """Every head idealised alone and all at once (named templates, case-conditional ones, and those with the
    answer-following queries left computed); ``None`` where the model has no head at the board or targets."""

    heads: dict[str, IdealHead] = field(default_factory=dict)
    all_named: float | None = None
    all_case_conditional: float | None = None
    answer_following: dict[str, list[str]] = field(default_factory=dict)  # head -> cases its attention follows
    all_case_conditional_but_answer_following: float | None = None


def idealise(model: LifeTransformer, ex: Examples, reference: Examples, slots: list[Slot],
             lookups: dict[str, list[int]], answer_tv: float) -> Idealised:
    """Every head slot at the board or the targets idealised alone and all at once (module docstring): the constants
    and the choice of named template from ``reference``, the accuracy kept on ``ex``. ``lookups``: slot name -> the
    cases the map says it looks up. All at once is also measured with the queries whose case's attention follows the
    answer (total variation >= ``answer_tv``) left computed."""
    slots = [s for s in slots if s.component.head is not None and s.group in ("board", "targets")]
    measured = head_rows(model, reference, slots)
    ref_case, case = query_cases(reference), query_cases(ex)
    chosen, out = {}, Idealised()
    named_rows, conditional_rows = {}, {}
    for s in slots:
        allowed = allowed_keys(model, s.component.layer, s.component.head, s.group)
        ref_kinds = key_kinds(model, reference, s.group)
        weights = measured_weights(measured[s], ref_kinds, ref_case, allowed)
        gated = lookups.get(s.name)
        candidates = ["governing token"] if gated else list(NAMED)
        distance = {t: _distance(template_rows(t, weights, ref_kinds, ref_case, allowed, gated), measured[s])
                    for t in [*candidates, "case-conditional"]}
        nearest = min(distance[t] for t in candidates)
        chosen[s] = next(t for t in candidates if distance[t] <= nearest + TIE)
        kinds = key_kinds(model, ex, s.group)
        named_rows[s] = template_rows(chosen[s], weights, kinds, case, allowed, gated)
        conditional_rows[s] = template_rows("case-conditional", weights, kinds, case, allowed)
        out.heads[s.name] = IdealHead(
            template=chosen[s], distance=distance[chosen[s]], gated_cases=gated or [],
            acc=accuracy(model, ex, pattern_hooks(model, {s: named_rows[s]})),
            case_conditional_distance=distance["case-conditional"],
            case_conditional_acc=accuracy(model, ex, pattern_hooks(model, {s: conditional_rows[s]})),
            answer_dependence=answer_dependence(measured[s], ref_case, reference.next_boards.flatten(1)))
    if slots:
        out.all_named = accuracy(model, ex, pattern_hooks(model, named_rows))
        out.all_case_conditional = accuracy(model, ex, pattern_hooks(model, conditional_rows))
        follows = {s: [BIT_NAMES.index(c) for c, tv in out.heads[s.name].answer_dependence.items()
                       if tv >= answer_tv] for s in slots}
        out.answer_following = {s.name: [BIT_NAMES[j] for j in js] for s, js in follows.items() if js}
        out.all_case_conditional_but_answer_following = accuracy(model, ex, pattern_hooks(model, {
            s: _leave_computed(conditional_rows[s], case, follows[s]) for s in slots}))
    return out


def _leave_computed(rows: torch.Tensor, case: torch.Tensor, cases: list[int]) -> torch.Tensor:
    """``rows`` with the queries of ``cases`` set to NaN (their own attention stays)."""
    if not cases:
        return rows
    return rows.masked_fill(torch.isin(case, torch.tensor(cases))[..., None], float("nan"))


def answer_dependence(rows: torch.Tensor, case: torch.Tensor, answer: torch.Tensor) -> dict[str, float]:
    """Per case with ``MIN_CELLS`` cells of each answer: the total variation between the head's mean rows at the
    cells whose next state is dead and at those whose next state is live (0: its attention does not follow the
    answer)."""
    out = {}
    for j in range(N_RULE_BITS):
        dead, live = (case == j) & (answer == 0), (case == j) & (answer == 1)
        if min(int(dead.sum()), int(live.sum())) >= MIN_CELLS:
            out[BIT_NAMES[j]] = round(float(0.5 * (rows[dead].mean(0) - rows[live].mean(0)).abs().sum()), 4)
    return out


def _distance(template: torch.Tensor, measured: torch.Tensor) -> float:
    """Mean total variation between a template's rows and the head's own, per query (queries it leaves computed
    aside)."""
    return float(torch.nanmean(0.5 * (template - measured).abs().sum(-1)))
