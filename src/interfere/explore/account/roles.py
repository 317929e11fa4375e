"""Roles: each readable slot's coarsest input variables, tested by interchange on two donor draws, next to its
answer-carrying control (:mod:`interfere.explore.account.interchange`), and the account with every role at once.

A candidate role is screened on a small batch and the first that keeps ``role_acc`` with ``min_coverage`` donors is
confirmed on a larger one; the last MLP at the targets is the read-out and stays computed. The search runs once per
donor draw (two pools of their own seeds): a role is *stable* when both draws find it. Slots whose output nothing
downstream reads are not searched at all (:func:`interfere.explore.account.slots.unread_slots`).
"""

from __future__ import annotations

import torch

from interfere.ca.rules import BIT_NAMES
from interfere.explore.account.interchange import (
    CELL_ROLES,
    PHYSICS_ROLES,
    Interchange,
    control_of,
    coverage,
)
from interfere.explore.account.kinds import NEEDED
from interfere.explore.account.routes import step_of
from interfere.explore.account.slots import Replacement, Slot
from interfere.explore.analysis import Examples
from interfere.explore.components import Component, accuracy
from interfere.model.life_model import LifeTransformer

COMPUTED, UNEXPLAINED = "computed", "unexplained"


def is_readout(model: LifeTransformer, slot: Slot) -> bool:
    """The last MLP at the targets: the read-out, left computed."""
    c = slot.component
    return c.head is None and c.layer == model.cfg.n_layers - 1 and slot.group == "targets"


Partners = list[tuple[Slot, list[int]]]  # slots computing the same cases as another (their indices), redundantly


def try_role(model: LifeTransformer, swap: Interchange, slot: Slot, role: str, ex: Examples,
             partners: Partners | None = None) -> tuple[float, float]:
    """(accuracy, coverage) with this one slot's output replaced under ``role``, and each redundant partner's output
    mean-ablated at the cells of the cases it shares (so that the slot is tested where it is the only route left)."""
    rep = {(slot.component, slot.group): swap.replacement(slot.component, slot.group, role, ex)}
    cover = coverage(rep)
    for partner, cases in partners or []:
        mean = swap.replacement(partner.component, partner.group, "none", ex)
        governed = torch.isin(ex.cases, torch.tensor(cases))
        rep[(partner.component, partner.group)] = Replacement(mean.values, governed)
    return accuracy(model, ex, swap.hooks(rep)), cover


def redundant_partners(routes: dict[str, dict], summary: dict[str, dict]) -> dict[str, Partners]:
    """Slot name -> its partners: for every case the map calls redundant or shared, each of its lookups and relays
    that the case does not need alone (restoring it alone leaves the flip: ``NEEDED``) gets the case's other lookups
    (a relay not those before it: they feed it)."""
    out: dict[str, dict[str, list[int]]] = {}
    for case, r in routes.items():
        lookups = r.get("lookups", [])
        if r.get("kind") not in ("redundant", "shared"):
            continue
        for name in lookups + [n for n, _ in r["relays"]]:
            if not summary[case]["slots"].get(name, {}).get("necessary", 1.0) < NEEDED:
                continue  # needed alone (or never asked): tested as it is
            for other in (o for o in lookups if o != name and (name in lookups or step_of(o) >= step_of(name))):
                out.setdefault(name, {}).setdefault(other, []).append(BIT_NAMES.index(case))
    return {name: [(Slot.from_name(o), cases) for o, cases in partners.items()] for name, partners in out.items()}


def coarsest_role(model: LifeTransformer, swap: Interchange, slot: Slot, ex: Examples, screen: Examples,
                  th: dict, partners: Partners | None = None) -> dict:
    """The first candidate (coarsest first) that keeps ``role_acc`` with ``min_coverage``, screened then confirmed."""
    holds = lambda acc, cov: acc >= th["role_acc"] and cov >= th["min_coverage"]  # noqa: E731
    tried: dict[str, list[float]] = {}
    for role in PHYSICS_ROLES if slot.group == "physics" else CELL_ROLES:
        tried[role] = list(try_role(model, swap, slot, role, screen, partners))
        if holds(*tried[role]):
            tried[role] = list(try_role(model, swap, slot, role, ex, partners))
            if holds(*tried[role]):
                return {"uses": role, "acc": tried[role][0], "coverage": tried[role][1], "tried": tried}
    return {"uses": UNEXPLAINED, "tried": tried}


def answer_control(model: LifeTransformer, control: Interchange, slot: Slot, role: str, ex: Examples,
                   th: dict, partners: Partners | None = None) -> dict | None:
    """The slot replaced by a donor that shares the answer (and the role's variables other than the rule) under
    another rule: whether it passes says the slot relays the answer (never counted as the test)."""
    variables = control_of(role) if slot.group != "physics" else None
    if variables is None or role in (COMPUTED, UNEXPLAINED):
        return None
    acc, cov = try_role(model, control, slot, variables, ex, partners)
    return {"variables": variables, "acc": acc, "coverage": cov,
            "passes": acc >= th["role_acc"] and cov >= th["min_coverage"]}


def find_roles(model: LifeTransformer, swaps: list[Interchange], control: Interchange, slots: list[Slot],
               ex: Examples, screen: Examples, th: dict, partners: dict[str, Partners] | None = None
               ) -> dict[str, dict]:
    """Every slot's role with each donor draw, its stability and its answer-carrying control; a slot with redundant
    partners (:func:`redundant_partners`) tested with them removed at the cases they share."""
    roles = {}
    for slot in slots:
        entry = {"component": slot.component.name, "group": slot.group}
        if is_readout(model, slot):
            roles[slot.name] = {**entry, "uses": COMPUTED}
            continue
        mine = (partners or {}).get(slot.name)
        draws = [coarsest_role(model, swap, slot, ex, screen, th, mine) for swap in swaps]
        first = draws[0]
        roles[slot.name] = {**entry, **first, "draws": [d["uses"] for d in draws],
                            "stable": len({d["uses"] for d in draws}) == 1,
                            "control": answer_control(model, control, slot, first["uses"], ex, th, mine)}
        if mine:
            roles[slot.name]["partners"] = {p.name: [BIT_NAMES[c] for c in cases] for p, cases in mine}
        if first["uses"] not in ("none", UNEXPLAINED):
            mean = swaps[0].conditional_mean(slot.component, slot.group, first["uses"], ex)
            roles[slot.name]["mean_given"] = accuracy(model, ex, swaps[0].hooks({(slot.component, slot.group): mean}))
    return roles


def account_test(model: LifeTransformer, swap: Interchange, ex: Examples, roles: dict,
                 groups: tuple[str, ...]) -> dict:
    """Accuracy and donor coverage with every role of these groups replaced at once (unexplained and the read-out
    computed)."""
    reps: dict[tuple[Component, str], Replacement] = {}
    for r in roles.values():
        if r["group"] in groups and r["uses"] not in (COMPUTED, UNEXPLAINED):
            c = next(c for c in swap.outputs if c.name == r["component"])
            reps[(c, r["group"])] = swap.replacement(c, r["group"], r["uses"], ex)
    unexplained = [k for k, r in roles.items() if r["group"] in groups and r["uses"] == UNEXPLAINED]
    return {"acc": accuracy(model, ex, swap.hooks(reps)), "coverage": coverage(reps), "left_computed": unexplained}
