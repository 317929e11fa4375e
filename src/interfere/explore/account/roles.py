"""Roles: each readable slot's coarsest input variables, tested by interchange on two donor draws, next to its
answer-carrying control (:mod:`interfere.explore.account.interchange`), and the account with every role at once.

A candidate role is screened on a small batch and the first that keeps ``role_acc`` with ``min_coverage`` donors is
confirmed on a larger one; the last MLP at the targets is the read-out and stays computed. The search runs once per
donor draw (two pools of their own seeds): a role is *stable* when both draws find it. Slots whose output nothing
downstream reads are not searched at all (:func:`interfere.explore.account.slots.unread_slots`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
from interfere.explore.account.routes import CaseFlips, Route, step_of
from interfere.explore.account.slots import Replacement, Slot
from interfere.explore.analysis import Examples
from interfere.explore.components import Component, accuracy
from interfere.model.life_model import LifeTransformer

COMPUTED, UNEXPLAINED = "computed", "unexplained"


@dataclass
class Control:
    """A role's answer-carrying control: the slot replaced by a donor that shares ``variables`` (the answer among
    them) under another rule; passing says the slot relays the answer."""

    variables: str
    acc: float
    coverage: float
    passes: bool


@dataclass
class Role:
    """A slot's role: the coarsest input variables (``uses``) that keep its accuracy by interchange, with the
    accuracy and donor coverage (``tried``: every candidate up to it, screened or confirmed), what each donor draw
    found, the answer-carrying control, the redundant partners removed while testing it, and the accuracy with the
    output replaced by its mean given the role's variables."""

    component: str
    group: str
    uses: str
    acc: float | None = None
    coverage: float | None = None
    tried: dict[str, list[float]] = field(default_factory=dict)
    draws: list[str] = field(default_factory=list)
    stable: bool | None = None  # None: the read-out, not searched
    control: Control | None = None
    partners: dict[str, list[str]] = field(default_factory=dict)  # partner slot -> the cases it was removed at
    mean_given: float | None = None

    @property
    def slot(self) -> str:
        return Slot(Component.from_name(self.component), self.group).name


@dataclass
class AccountTest:
    """Every role of some groups replaced at once: held-out accuracy, donor coverage, the slots left computed."""

    acc: float
    coverage: float
    left_computed: list[str]


@dataclass
class Account:
    """The account's tests: every role at once, the board roles alone, every role with the second donor draw."""

    all_at_once: AccountTest
    board_roles: AccountTest
    second_draw: AccountTest


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


def redundant_partners(routes: dict[str, Route], summary: dict[str, CaseFlips]) -> dict[str, Partners]:
    """Slot name -> its partners: for every case the map calls redundant or shared, each of its lookups and relays
    that the case does not need alone (restoring it alone leaves the flip: ``NEEDED``) gets the case's other lookups
    (a relay not those before it: they feed it)."""
    out: dict[str, dict[str, list[int]]] = {}
    for case, r in routes.items():
        if r.kind not in ("redundant", "shared"):
            continue
        lookups = r.lookups
        for name in lookups + [n for n, _ in r.relays]:
            effect = summary[case].slots.get(name)
            if effect is None or not effect.necessary < NEEDED:
                continue  # needed alone (or never asked): tested as it is
            for other in (o for o in lookups if o != name and (name in lookups or step_of(o) >= step_of(name))):
                out.setdefault(name, {}).setdefault(other, []).append(BIT_NAMES.index(case))
    return {name: [(Slot.from_name(o), cases) for o, cases in partners.items()] for name, partners in out.items()}


def coarsest_role(model: LifeTransformer, swap: Interchange, slot: Slot, ex: Examples, screen: Examples,
                  th: dict, partners: Partners | None = None) -> Role:
    """The first candidate (coarsest first) that keeps ``role_acc`` with ``min_coverage``, screened then confirmed."""
    holds = lambda acc, cov: acc >= th["role_acc"] and cov >= th["min_coverage"]  # noqa: E731
    tried: dict[str, list[float]] = {}
    for role in PHYSICS_ROLES if slot.group == "physics" else CELL_ROLES:
        tried[role] = list(try_role(model, swap, slot, role, screen, partners))
        if holds(*tried[role]):
            tried[role] = list(try_role(model, swap, slot, role, ex, partners))
            if holds(*tried[role]):
                return Role(slot.component.name, slot.group, role, tried[role][0], tried[role][1], tried)
    return Role(slot.component.name, slot.group, UNEXPLAINED, tried=tried)


def answer_control(model: LifeTransformer, control: Interchange, slot: Slot, role: str, ex: Examples,
                   th: dict, partners: Partners | None = None) -> Control | None:
    """The slot replaced by a donor that shares the answer (and the role's variables other than the rule) under
    another rule: whether it passes says the slot relays the answer (never counted as the test)."""
    variables = control_of(role) if slot.group != "physics" else None
    if variables is None or role in (COMPUTED, UNEXPLAINED):
        return None
    acc, cov = try_role(model, control, slot, variables, ex, partners)
    return Control(variables, acc, cov, acc >= th["role_acc"] and cov >= th["min_coverage"])


def find_roles(model: LifeTransformer, swaps: list[Interchange], control: Interchange, slots: list[Slot],
               ex: Examples, screen: Examples, th: dict, partners: dict[str, Partners] | None = None
               ) -> dict[str, Role]:
    """Every slot's role with each donor draw, its stability and its answer-carrying control; a slot with redundant
    partners (:func:`redundant_partners`) tested with them removed at the cases they share."""
    roles = {}
    for slot in slots:
        if is_readout(model, slot):
            roles[slot.name] = Role(slot.component.name, slot.group, COMPUTED)
            continue
        mine = (partners or {}).get(slot.name)
        draws = [coarsest_role(model, swap, slot, ex, screen, th, mine) for swap in swaps]
        role = draws[0]
        role.draws, role.stable = [d.uses for d in draws], len({d.uses for d in draws}) == 1
        role.control = answer_control(model, control, slot, role.uses, ex, th, mine)
        role.partners = {p.name: [BIT_NAMES[c] for c in cases] for p, cases in mine or []}
        if role.uses not in ("none", UNEXPLAINED):
            mean = swaps[0].conditional_mean(slot.component, slot.group, role.uses, ex)
            role.mean_given = accuracy(model, ex, swaps[0].hooks({(slot.component, slot.group): mean}))
        roles[slot.name] = role
    return roles


def account_test(model: LifeTransformer, swap: Interchange, ex: Examples, roles: dict[str, Role],
                 groups: tuple[str, ...]) -> AccountTest:
    """Accuracy and donor coverage with every role of these groups replaced at once (unexplained and the read-out
    computed)."""
    reps: dict[tuple[Component, str], Replacement] = {}
    for r in roles.values():
        if r.group in groups and r.uses not in (COMPUTED, UNEXPLAINED):
            c = next(c for c in swap.outputs if c.name == r.component)
            reps[(c, r.group)] = swap.replacement(c, r.group, r.uses, ex)
    unexplained = [k for k, r in roles.items() if r.group in groups and r.uses == UNEXPLAINED]
    return AccountTest(accuracy(model, ex, swap.hooks(reps)), coverage(reps), unexplained)
