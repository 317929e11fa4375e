"""Where each variable of the high-level model lives: the search over sites, case groups and ranks, with its controls.

For a variable and a site (:mod:`~interfere.explore.alignment.sites`):

1. **Screen.** The full-vector interchange and the closed-form subspace of rank 16, on held-out pairs of all cases
   (for the bit also on pairs of one case); a site where neither moves any case's cells towards the counterfactual
   (``screen_iia``) is not searched further.
2. **Case groups.** DAS of rank 16 on all cases; candidate groups are the cases whose cells follow it
   (:func:`case_group`) and, for the bit, those whose cells follow sources of their own case; each is claimed on
   pairs whose two cells are both of the group (a variable may live at one site for some cases and elsewhere for
   others), the largest that holds is kept.
3. **Rank.** A fit of rank 16 on the group (32 where 16 falls short: an 18-case one-hot needs 17 dimensions), then the
   smallest rank in :data:`RANKS` whose leading directions within it reach ``claim_iia`` on the group's held-out
   changed pairs.
4. **Controls**: the claimed subspace on a second draw of held-out pairs (it must hold there too: claims at the
   threshold came and went with the draw, e.g. the demo model's bit at the board at 0.989-1.000); on the same pairs and
   rank, the full-vector interchange (a subspace may not beat it by more than
   ``full_margin``, on the pairs or, where the full vector also carries another rule, on pairs that share the rule:
   the illusion of Makelov et al. 2024, arXiv 2311.17030); the *control* causal model (the same search on labels
   that are a random bit of (rule, case), :class:`~interfere.explore.alignment.causal.HighLevel`, must stay within
   ``control_margin`` of its base rate, on pairs of many fresh rules so that chance agreement stays small); the
   randomly initialised model (its IIA reported). The control is scored on all its pairs, changed or not: on changed
   pairs alone its label is always the opposite of the base's answer, which a subspace that mixes the answer with the
   case can partly produce (seen on the hand-made ``attention`` model's ``resid_mid.1@targets``: 0.69 against a base
   rate of 0.51).

A site *holds* the variable for its group when the IIA reaches ``claim_iia`` and both controls pass; otherwise the
entry says which test failed. Thresholds: the ``abstraction`` section of the thresholds file. Each search draws from a
seed of its own (:meth:`Data.draws_for`): an entry is the same whichever other sites and variables are searched.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import torch

from interfere.ca.rules import BIT_NAMES, N_RULE_BITS
from interfere.explore.alignment import das
from interfere.explore.alignment.causal import HighLevel, base_rate
from interfere.explore.alignment.das import Batch, Pairs
from interfere.explore.alignment.sites import Site

RANKS = (1, 2, 4, 8, 16, 32)  # 32: an 18-case one-hot needs 17 dimensions
SAME_CASE_MORE = 4  # pairs of one case are drawn this many times as often (a rare case has few cells of its own)


@dataclass(frozen=True)
class Budget:
    """How much each fit and measurement costs: pairs (sequence pairs; a target site counts every cell of each) and
    optimiser steps."""

    test_pairs: tuple[int, int] = (64, 512)  # (target site, board or rule site)
    train_pairs: tuple[int, int] = (256, 1024)
    per_step: tuple[int, int] = (16, 64)
    steps: tuple[int, int] = (100, 50)
    lr: float = 1e-2

    def of(self, site: Site, what: str) -> int:
        return getattr(self, what)[0 if site.where == "targets" else 1]


@dataclass
class Data:
    """Training and held-out batches of one model (and of its random-init twin), the real and the control causal
    models, and the generator every draw takes (reseeded per search from ``seed``)."""

    train: Batch
    test: Batch
    control_test: Batch  # the control model's pairs: many fresh rules, so chance agreement with it stays small
    random_train: Batch | None  # the random-init twin's (None: not measured)
    random_test: Batch | None
    real: HighLevel
    control: HighLevel
    seed: int
    budget: Budget = field(default_factory=Budget)
    g: torch.Generator = field(default_factory=torch.Generator)

    def draws_for(self, name: str) -> None:
        """Reseed the draws (pairs, training steps) for one search, named ``name`` (its variable and site): what a
        search draws does not depend on which searches ran before it, so a site searched alone (``--sites``) gets
        the very pairs it gets in the whole grid."""
        self.g.manual_seed(self.seed << 32 | zlib.crc32(name.encode()))


@dataclass
class Measured:
    """One fit measured on held-out pairs: its IIA, per base case, and each pair cell's hit (for the case group)."""

    basis: torch.Tensor | None
    iia: float
    per_case: dict[str, float]
    pairs: Pairs
    hit: torch.Tensor


def pairs_of(data: Data, batch: Batch, variable: str, site: Site, hl: HighLevel, split: str,
             cases: torch.Tensor | None = None, same_rule: bool = False, same_case: bool = False) -> Pairs:
    n = data.budget.of(site, "test_pairs" if split == "test" else "train_pairs") * (SAME_CASE_MORE if same_case else 1)
    return das.draw_pairs(batch, variable, site, hl, n, same_rule, data.g, cases, same_case)


def measured(batch: Batch, site: Site, pairs: Pairs, basis: torch.Tensor | None) -> Measured:
    hit = das.iia(batch, site, pairs, basis)
    where = pairs.mask & pairs.changed
    per_case = {BIT_NAMES[c]: float(hit[where & (pairs.base_case == c)].float().mean())
                for c in range(N_RULE_BITS) if bool((where & (pairs.base_case == c)).sum() >= 8)}
    return Measured(basis, das.accuracy_on_changed(hit, pairs), per_case, pairs, hit)


def case_group(fit: Measured, threshold: float, min_cells: int = 8) -> list[str]:
    """The cases whose cells follow the interchange. A case's cells cannot follow sources whose site does not hold
    the variable, so each case's IIA is taken over the sources still in the group, and the case with the lowest IIA
    (or too few changed cells to tell) leaves, one at a time, until every case left reaches ``threshold``."""
    where = fit.pairs.mask & fit.pairs.changed
    base, source = fit.pairs.base_case[where], fit.pairs.source_case[where]
    hit = fit.hit[where].float()
    group = torch.ones(N_RULE_BITS, dtype=torch.bool)
    while group.any():
        score = torch.full((N_RULE_BITS,), float("inf"))
        for c in torch.nonzero(group).flatten().tolist():
            mine = group[source] & (base == c)
            score[c] = float(hit[mine].mean()) if int(mine.sum()) >= min_cells else -1.0
        worst = int(score.argmin())
        if score[worst] >= threshold:
            break
        group[worst] = False
    return [BIT_NAMES[c] for c in torch.nonzero(group).flatten().tolist()]


def best_fit(data: Data, train: Batch, test: Batch, variable: str, site: Site, hl: HighLevel, k: int,
             cases: torch.Tensor | None, th: dict) -> Measured:
    """DAS at rank ``k``: the closed-form start measured, then trained from it; a restart from the pairs' principal
    differences only when the first lands close below the claim (a random start finds nothing on crisp weights)."""
    k = min(k, site.dim(train.model))
    test_pairs = pairs_of(data, test, variable, site, hl, "test", cases)
    start = das.mean_directions(train, site, variable, k, cases)
    best = measured(test, site, test_pairs, start)
    if best.iia >= th["claim_iia"]:
        return best
    train_pairs = pairs_of(data, train, variable, site, hl, "train", cases)
    starts = [start, das.difference_directions(train, site, train_pairs, k)]
    b = data.budget
    for init in starts:
        basis = das.fit(train, site, train_pairs, init, b.of(site, "steps"), b.lr, b.of(site, "per_step"), data.g)
        got = measured(test, site, test_pairs, basis)
        best = got if got.iia > best.iia else best
        if best.iia >= th["claim_iia"] or best.iia < th["restart_iia"]:
            break
    return best


def smallest_rank(data: Data, variable: str, site: Site, fitted: Measured, cases: torch.Tensor | None, th: dict
                  ) -> tuple[int, Measured]:
    """The smallest rank in :data:`RANKS` whose leading directions within a fitted subspace still hold the claim on
    its held-out pairs, measured without further training: the subspace's directions ordered by how much the
    variable's conditional means differ along them (between-value scatter, not raw variance: a site's rule bits vary
    more than any cell variable and would come first)."""
    rows, _ = das.class_means(data.train, site, variable, cases)
    ordered = fitted.basis @ das.top_directions(rows @ fitted.basis, fitted.basis.shape[1])
    for k in (k for k in RANKS if k < fitted.basis.shape[1]):
        got = measured(data.test, site, fitted.pairs, ordered[:, :k].contiguous())
        if got.iia >= th["claim_iia"]:
            return k, got
    return fitted.basis.shape[1], fitted


def case_mask(cases: list[str] | None) -> torch.Tensor | None:
    if cases is None:
        return None
    return torch.tensor([name in cases for name in BIT_NAMES])


def search_site(data: Data, variable: str, site: Site, th: dict) -> dict:
    """One variable at one site (module docstring): its entry in the map."""
    data.draws_for(f"{variable}@{site.name}")
    test, top = data.test, 16  # the screen and the case groups: fits of this rank (a claim may climb to 32)
    everyone = pairs_of(data, test, variable, site, data.real, "test")
    full_all = measured(test, site, everyone, None)
    start = das.mean_directions(data.train, site, variable, min(top, site.dim(test.model)))
    closed = measured(test, site, everyone, start)
    seen = [full_all.iia, closed.iia, *full_all.per_case.values(), *closed.per_case.values()]
    same = None
    if variable == "bit":  # sources of the base's own case: no dilution by sources whose site lacks the bit
        same = measured(test, site, pairs_of(data, test, variable, site, data.real, "test", same_case=True), start)
        seen += list(same.per_case.values())
    entry = {"site": site.name, "iia_all_cases": None, "iia_full_all_cases": full_all.iia}
    if max(seen) < th["screen_iia"]:
        return {**entry, "iia_all_cases": closed.iia, "per_case_all": closed.per_case, "cases": [],
                "failed": "screened out (no case follows)"}
    wide = best_fit(data, data.train, test, variable, site, data.real, top, None, th)
    entry.update(iia_all_cases=wide.iia, per_case_all=wide.per_case)
    least = 2 if variable == "bit" and site.where != "rule" else 1  # one case's bit is its rule bit: no claim
    groups = sorted((g for g in candidate_groups(wide, same, th) if len(g) >= least), key=len, reverse=True)
    claims = []
    for group in groups:  # the largest first; a smaller one only if it fails
        claims.append(claim(data, variable, site, group, th))
        if claims[-1]["failed"] is None:
            break
    if not claims:
        return {**entry, "cases": [], "failed": "no case group follows"}
    best = claims[-1] if claims[-1]["failed"] is None else max(claims, key=lambda c: c["iia"])
    return {**entry, **best, "groups_tried": [c["cases"] for c in claims]}


def candidate_groups(wide: Measured, same: Measured | None, th: dict) -> list[list[str]]:
    """Every case when the all-case fit holds; else the case groups found from it (:func:`case_group`) and, for the
    bit, the cases whose cells follow sources of their own case (their own fit's directions, no dilution)."""
    if wide.iia >= th["claim_iia"]:
        return [list(BIT_NAMES)]
    groups = [case_group(wide, th["group_iia"])]
    if same is not None:
        groups.append([c for c in BIT_NAMES if same.per_case.get(c, 0.0) >= th["group_iia"]])
    return [g for i, g in enumerate(groups) if g and g not in groups[:i]]


def claim(data: Data, variable: str, site: Site, group: list[str], th: dict) -> dict:
    """The group's IIA at the smallest rank that holds it (:func:`smallest_rank`), and the controls at that rank."""
    cases = None if len(group) == N_RULE_BITS else case_mask(group)
    dim = site.dim(data.train.model)
    got = best_fit(data, data.train, data.test, variable, site, data.real, min(16, dim), cases, th)
    rank = got.basis.shape[1]
    if got.iia >= th["claim_iia"]:
        rank, got = smallest_rank(data, variable, site, got, cases, th)
    elif dim > rank and variable != "bit":  # a one-hot of the 18 cases needs 17 dimensions; a bit never
        wider = best_fit(data, data.train, data.test, variable, site, data.real, min(max(RANKS), dim), cases, th)
        rank, got = (wider.basis.shape[1], wider) if wider.iia > got.iia else (rank, got)
    pairs = got.pairs  # the full vector on the very pairs the subspace was measured on
    full = measured(data.test, site, pairs, None)
    out = {"cases": group, "rank": rank, "basis": got.basis, "iia": got.iia, "per_case": got.per_case,
           "iia_full": full.iia,
           "iia_same_rule": None, "iia_full_same_rule": None,
           "base_rate": base_rate(pairs.label[pairs.mask & pairs.changed])}
    if got.iia < th["claim_iia"]:
        return {**out, "failed": f"IIA {got.iia:.3f} < {th['claim_iia']} at ranks up to {rank}"}
    again = pairs_of(data, data.test, variable, site, data.real, "test", cases)  # a claim at the threshold by luck
    out["iia_second_draw"] = measured(data.test, site, again, got.basis).iia
    if got.iia > full.iia + th["full_margin"]:  # the full vector also carries another rule? pairs that share it
        same = pairs_of(data, data.test, variable, site, data.real, "test", cases, same_rule=True)
        out.update(iia_same_rule=measured(data.test, site, same, got.basis).iia,
                   iia_full_same_rule=measured(data.test, site, same, None).iia)
    control = best_fit(data, data.train, data.control_test, variable, site, data.control, rank, cases, th)
    counted = control.pairs.mask
    out.update(iia_control=float(control.hit[counted].float().mean()),
               control_base_rate=base_rate(control.pairs.label[counted]), iia_random=None)
    if data.random_train is not None:
        out["iia_random"] = best_fit(data, data.random_train, data.random_test, variable, site, data.real, rank,
                                     cases, th).iia
    return {**out, "failed": failed_control(out, th)}


def failed_control(entry: dict, th: dict) -> str | None:
    """Which control a claim fails (None: it holds)."""
    margin, same, full_same = th["full_margin"], entry["iia_same_rule"], entry["iia_full_same_rule"]
    same_measured = same is not None and same == same  # None: not needed; NaN: no pair of one rule changed
    if entry.get("iia_second_draw", 1.0) < th["claim_iia"]:
        return f"IIA {entry['iia_second_draw']:.3f} < {th['claim_iia']} on a second draw of held-out pairs"
    if entry["iia"] > entry["iia_full"] + margin and (not same_measured or same > full_same + margin):
        return "the subspace beats the full vector (a dormant pathway?)"
    if entry["iia_control"] > entry["control_base_rate"] + th["control_margin"]:
        return "the control causal model is also reached"
    return None
