"""Roles: each readable slot's coarsest input variables, tested by interchange on two donor draws, next to its
answer-carrying control (:mod:`interfere.explore.account.interchange`), and the account with every role at once.

A candidate role is screened on a small batch and the first that keeps ``role_acc`` with ``min_coverage`` donors is
confirmed on a larger one; the last MLP at the targets is the read-out and stays computed. The search runs once per
donor draw (two pools of their own seeds): a role is *stable* when both draws find it. Slots whose output nothing
downstream reads are not searched at all (:func:`interfere.explore.account.slots.unread_slots`).
"""

from __future__ import annotations

from interfere.explore.account.interchange import (
    CELL_ROLES,
    PHYSICS_ROLES,
    Interchange,
    Replacement,
    control_of,
    coverage,
)
from interfere.explore.account.slots import Slot
from interfere.explore.analysis import Examples
from interfere.explore.components import Component, accuracy
from interfere.model.life_model import LifeTransformer

COMPUTED, UNEXPLAINED = "computed", "unexplained"


def is_readout(model: LifeTransformer, slot: Slot) -> bool:
    """The last MLP at the targets: the read-out, left computed."""
    c = slot.component
    return c.head is None and c.layer == model.cfg.n_layers - 1 and slot.group == "targets"


def try_role(model: LifeTransformer, swap: Interchange, slot: Slot, role: str, ex: Examples) -> tuple[float, float]:
    """(accuracy, coverage) with this one slot's output replaced under ``role``."""
    rep = {(slot.component, slot.group): swap.replacement(slot.component, slot.group, role, ex)}
    return accuracy(model, ex, swap.hooks(rep)), coverage(rep)


def coarsest_role(model: LifeTransformer, swap: Interchange, slot: Slot, ex: Examples, screen: Examples,
                  th: dict) -> dict:
    """The first candidate (coarsest first) that keeps ``role_acc`` with ``min_coverage``, screened then confirmed."""
    holds = lambda acc, cov: acc >= th["role_acc"] and cov >= th["min_coverage"]  # noqa: E731
    tried: dict[str, list[float]] = {}
    for role in PHYSICS_ROLES if slot.group == "physics" else CELL_ROLES:
        tried[role] = list(try_role(model, swap, slot, role, screen))
        if holds(*tried[role]):
            tried[role] = list(try_role(model, swap, slot, role, ex))
            if holds(*tried[role]):
                return {"uses": role, "acc": tried[role][0], "coverage": tried[role][1], "tried": tried}
    return {"uses": UNEXPLAINED, "tried": tried}


def answer_control(model: LifeTransformer, control: Interchange, slot: Slot, role: str, ex: Examples,
                   th: dict) -> dict | None:
    """The slot replaced by a donor that shares the answer (and the role's variables other than the rule) under
    another rule: whether it passes says the slot relays the answer (never counted as the test)."""
    variables = control_of(role) if slot.group != "physics" else None
    if variables is None or role in (COMPUTED, UNEXPLAINED):
        return None
    acc, cov = try_role(model, control, slot, variables, ex)
    return {"variables": variables, "acc": acc, "coverage": cov,
            "passes": acc >= th["role_acc"] and cov >= th["min_coverage"]}


def find_roles(model: LifeTransformer, swaps: list[Interchange], control: Interchange, slots: list[Slot],
               ex: Examples, screen: Examples, th: dict) -> dict[str, dict]:
    """Every slot's role with each donor draw, its stability and its answer-carrying control."""
    roles = {}
    for slot in slots:
        entry = {"component": slot.component.name, "group": slot.group}
        if is_readout(model, slot):
            roles[slot.name] = {**entry, "uses": COMPUTED}
            continue
        draws = [coarsest_role(model, swap, slot, ex, screen, th) for swap in swaps]
        first = draws[0]
        roles[slot.name] = {**entry, **first, "draws": [d["uses"] for d in draws],
                            "stable": len({d["uses"] for d in draws}) == 1,
                            "control": answer_control(model, control, slot, first["uses"], ex, th)}
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
