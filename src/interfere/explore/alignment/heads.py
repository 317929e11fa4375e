"""Every head idealised at once, its template fed with the aligned variables: the algorithm that runs.

The account's idealised heads (:mod:`interfere.explore.account.idealised`) are written from the inputs only: no
template can express a head whose query follows the answer an earlier component computed (the governing bit), so
with every head idealised the model loses what those heads do. Here each head's attention is its *case-conditional*
template (mean attention per kind of key given the query's case, measured on reference boards), except at the cases
where its attention follows the answer: there the template is conditioned on the query's case *and its governing bit*
(:func:`case_bit_weights`), provided the causal abstraction holds the bit of that case at a site computed before the
head (:func:`bit_available`).
The bit a template is handed is the high-level model's, which the map says the network holds there; a case whose bit
the map did not locate before the head keeps the input-only template and is listed.
"""

from __future__ import annotations

import torch

from interfere.ca.rules import BIT_NAMES, N_RULE_BITS
from interfere.explore.account.idealised import (
    N_KINDS,
    allowed_keys,
    answer_dependence,
    head_rows,
    key_kinds,
    measured_weights,
    pattern_hooks,
    query_cases,
    template_rows,
    visible,
)
from interfere.explore.account.slots import Slot, all_slots, unread_slots
from interfere.explore.alignment.sites import KINDS, Site
from interfere.explore.analysis import Examples
from interfere.explore.components import accuracy
from interfere.model.life_model import LifeTransformer


def head_slots(model: LifeTransformer) -> list[Slot]:
    """Every readable head at the board and the targets."""
    unread = set(unread_slots(model))
    return [s for s in all_slots(model) if s.component.head is not None and s.group in ("board", "targets")
            and s not in unread]


def bit_available(entries: list[dict], layer: int) -> set[int]:
    """The cases whose governing bit the map holds (IIA and both controls passed) at a site computed before a layer's
    attention: at the cell's own positions, or at its governing rule token, which a head reads as a key (every case
    for layer 0: the governing token's value is an input)."""
    if layer == 0:
        return set(range(N_RULE_BITS))
    out = set()
    for e in entries:
        site = Site.from_name(e["site"])
        before = site.layer < layer or (site.layer == layer and site.step == KINDS.index("resid_pre"))
        if before and e.get("failed") is None and "rank" in e:
            out |= {BIT_NAMES.index(c) for c in e["cases"]}
    return out


def case_bit_weights(rows: torch.Tensor, kinds: torch.Tensor, case: torch.Tensor, bit: torch.Tensor,
                     allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``([36, N_KINDS], [36] bool)``: mean attention per visible key of each kind given the query's case and
    governing bit, and which (case, bit) had queries."""
    index = (case * 2 + bit)[..., None].expand_as(kinds)
    flat = (index * N_KINDS + kinds).flatten()
    total = torch.zeros(2 * N_RULE_BITS * N_KINDS).index_add_(0, flat, rows.flatten().float())
    count = torch.zeros(2 * N_RULE_BITS * N_KINDS).index_add_(0, flat, visible(allowed, rows))
    seen = torch.bincount((case * 2 + bit).flatten(), minlength=2 * N_RULE_BITS) > 0
    return (total / count.clamp_min(1)).view(2 * N_RULE_BITS, N_KINDS), seen


def aligned_rows(table: torch.Tensor, seen: torch.Tensor, kinds: torch.Tensor, case: torch.Tensor, bit: torch.Tensor,
                 allowed: torch.Tensor, fallback: torch.Tensor, cases: list[int]) -> torch.Tensor:
    """``fallback`` rows with the queries of ``cases`` replaced by the (case, bit) template where it was seen."""
    index = case * 2 + bit
    rows = table[index[..., None].expand_as(kinds), kinds] * allowed
    rows = rows / rows.sum(-1, keepdim=True).clamp_min(1e-12)
    use = torch.isin(case, torch.tensor(cases, dtype=torch.long)) & seen[index]
    return torch.where(use[..., None], rows, fallback)


def all_heads_aligned(model: LifeTransformer, ex: Examples, reference: Examples, bit_entries: list[dict],
                      answer_tv: float) -> dict:
    """Accuracy on ``ex`` with every head at the board and the targets idealised at once (module docstring), next to
    the input-only case-conditional templates; per head, the cases where its attention follows the answer, those it
    was given the aligned bit for, and those it could not be."""
    slots = head_slots(model)
    measured = head_rows(model, reference, slots)
    ref_case, case = query_cases(reference), query_cases(ex)
    ref_bit, bit = reference.next_boards.flatten(1), ex.next_boards.flatten(1)
    plain, aligned, heads = {}, {}, {}
    for s in slots:
        allowed = allowed_keys(model, s.component.layer, s.component.head, s.group)
        ref_kinds, kinds = key_kinds(model, reference, s.group), key_kinds(model, ex, s.group)
        weights = measured_weights(measured[s], ref_kinds, ref_case, allowed)
        plain[s] = template_rows("case-conditional", weights, kinds, case, allowed)
        follows = [BIT_NAMES.index(c) for c, tv in answer_dependence(measured[s], ref_case, ref_bit).items()
                   if tv >= answer_tv]
        usable = sorted(set(follows) & bit_available(bit_entries, s.component.layer))
        aligned[s] = plain[s]
        if usable:
            table, seen = case_bit_weights(measured[s], ref_kinds, ref_case, ref_bit, allowed)
            aligned[s] = aligned_rows(table, seen, kinds, case, bit, allowed, plain[s], usable)
        if follows:
            heads[s.name] = {"follows": [BIT_NAMES[j] for j in follows], "given_bit": [BIT_NAMES[j] for j in usable],
                             "bit_not_located_before": [BIT_NAMES[j] for j in follows if j not in usable]}
    return {"all_heads_aligned": accuracy(model, ex, pattern_hooks(model, aligned)),
            "all_heads_case_conditional": accuracy(model, ex, pattern_hooks(model, plain)),
            "answer_following": heads}
