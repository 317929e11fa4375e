"""The lookup map: for each of the 18 cases, where its governing rule bit travels from the rule token to the targets.

A cell's next state is the bit of the rule that governs its case (``S_count`` alive, ``B_count`` dead). Flipping one
bit ``b`` of the rule flips the answer of exactly the cells of case ``b`` (the *governed* cells) and of no other; a
model that learned the task follows (``follow``) without changing the rest (``leak``). Patching parts of the flipped
run into the clean one, and the reverse, says where the flip is carried, using inputs only and never the answer:

* **residual groups** (``carry`` by boundary): the residual entering block ``L`` at the rule tokens, the separators,
  the board or the targets taken from the flipped run; the share of governed cells whose prediction flips. The flip
  *enters* the first group other than the rule tokens that carries it (``layer``: the boundary where it does), or stays
  in the rule tokens until a block reads it from there (``enters: rule``);
* **components** (a slot: a head or an MLP at a group): *sufficiency*, the share of governed cells that flip when only
  the slot's output comes from the flipped run; *necessity*, the share whose flipped-run prediction returns to the clean
  one when only the slot's output is clean (0 without a forward for a slot that moves no prediction alone: whether the
  prediction then returns depends on the others only); *selectivity*, ``1 - d_other / d_gov`` with ``d_gov`` the mean
  change of the slot's output at a governed cell under its governing flip and ``d_other`` the mean change at the other
  cells under the same (for them non-governing) flip;
* **the route**: the *lookup* is the first slot, in the order of computation, that carries the case's flips
  (sufficiency >= ``route_carry``) and is selective (>= ``lookup_selectivity``): where "the rule" (every bit moves it)
  becomes "the answer" (only the governing bit does); the *relays* are the later slots that carry it, the *read-out*
  the last MLP at the targets, with its sufficiency and necessity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from interfere.ca.rules import BIT_NAMES, N_RULE_BITS, is_survival
from interfere.explore import batched
from interfere.explore.account.slots import RESID_GROUPS, Slot, all_slots, positions, put_hooks, unread_slots
from interfere.explore.analysis import Examples
from interfere.explore.components import Component
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer

UNMEASURED = "unmeasured"  # a case with no cell on the boards measured: its route is not claimed


@dataclass
class Run:
    """One forward's component outputs ``[N, T, ...]`` per component, the residual entering each block, predictions."""

    tokens: torch.Tensor
    outputs: dict[Component, torch.Tensor]
    resid: list[torch.Tensor]  # resid[L]: entering block L
    pred: torch.Tensor  # [N, cells]
    readout_input: torch.Tensor  # [N, T, d_model]: the residual the last MLP reads (after the last attention)


@torch.no_grad()
def forward(model: LifeTransformer, tokens: torch.Tensor, components: list[Component]) -> Run:
    last = act_name("resid_mid", model.cfg.n_layers - 1)
    names = sorted({c.hook for c in components} | {act_name("resid_pre", L) for L in range(model.cfg.n_layers)}
                   | {last})
    cache = batched.cached(model, tokens, names)
    logits = batched.target_logits(model, tokens)
    return Run(tokens, {c: c.get(cache[c.hook]) for c in components},
               [cache[act_name("resid_pre", L)] for L in range(model.cfg.n_layers)],
               model.layout.first_step(logits).argmax(-1), cache[last])


def flip_bit(rules: torch.Tensor, bit: int) -> torch.Tensor:
    flipped = rules.clone()
    flipped[:, bit] = ~flipped[:, bit]
    return flipped


def _predict(model: LifeTransformer, base: Run, hooks: object = None, start: int = 0,
             resid: torch.Tensor | None = None) -> torch.Tensor:
    """Predictions of ``base``'s tokens with hooks, starting at block ``start`` from ``resid`` (default: ``base``'s)."""
    begin = None if start == 0 and resid is None else (start, base.resid[start] if resid is None else resid)
    logits = batched.target_logits(model, base.tokens, hooks, begin)
    return model.layout.first_step(logits).argmax(-1)


def _repeat(run: Run, times: int) -> Run:
    """``run`` for ``times`` copies of its batch, one after the other (the clean run beside every flipped one)."""
    rep = lambda x: x.repeat(times, *[1] * (x.dim() - 1))  # noqa: E731
    return Run(rep(run.tokens), {c: rep(o) for c, o in run.outputs.items()}, [rep(r) for r in run.resid],
               rep(run.pred), rep(run.readout_input))


@dataclass
class Patcher:
    """The clean run (repeated once per bit) and the 18 flipped runs, kept to patch several slots at once later
    (:mod:`~interfere.explore.account.kinds`), one bit's batch at a time."""

    model: LifeTransformer
    clean: Run
    flipped: Run

    def predict(self, bit: int, base: str, patched: tuple[Slot, ...] = (), ablated: tuple[Slot, ...] = (),
                resid: tuple[int, str] | None = None) -> torch.Tensor:
        """``[N, cells]`` predictions of bit ``bit``'s ``base`` run (``clean`` or ``flipped``) with the ``patched``
        slots' outputs taken from the other run, the ``ablated`` ones replaced by their mean over the clean boards (per
        position) and, with ``resid`` (block, group), the residual entering that block at that group's positions
        taken from the other run."""
        n = len(self.clean.tokens) // N_RULE_BITS
        part = slice(bit * n, (bit + 1) * n)
        run, other = (self.clean, self.flipped) if base == "clean" else (self.flipped, self.clean)
        values: dict[Slot, torch.Tensor] = {s: other.outputs[s.component][part] for s in patched}
        for s in ablated:
            values[s] = self.clean.outputs[s.component][part].mean(0, keepdim=True).expand_as(values.get(
                s, run.outputs[s.component][part]))
        if not values and resid is None:
            return run.pred[part]
        start = min([s.component.layer for s in values] + ([resid[0]] if resid else []))
        slot_hooks = put_hooks(self.model, values)
        if resid is None:
            return _predict(self.model, _slice(run, part), slot_hooks, start=start)
        layer, group = resid
        pos, source = positions(self.model.layout, group), other.resid[layer][part]

        def hooks(chunk: slice) -> list:
            def swap(act: torch.Tensor, hook: object) -> torch.Tensor:
                act = act.clone()
                act[:, pos] = source[chunk][:, pos].to(act)
                return act
            return slot_hooks(chunk) + [(act_name("resid_pre", layer), swap)]
        return _predict(self.model, _slice(run, part), hooks, start=start)

    def pred(self, bit: int, base: str) -> torch.Tensor:
        n = len(self.clean.tokens) // N_RULE_BITS
        return (self.clean if base == "clean" else self.flipped).pred[bit * n:(bit + 1) * n]


def _slice(run: Run, part: slice) -> Run:
    return Run(run.tokens[part], {c: o[part] for c, o in run.outputs.items()}, [r[part] for r in run.resid],
               run.pred[part], run.readout_input[part])


@dataclass
class Flips:
    """Per-cell results of flipping each bit, ``[18, N, cells]`` (bit, board, cell), so that any subset of the boards
    can be summarised (:func:`summarise`)."""

    case: torch.Tensor  # [N, cells] each cell's case
    moved: torch.Tensor  # the flipped run's prediction differs from the clean one
    boundary: dict[int, dict[str, torch.Tensor]]  # boundary -> residual group -> moved when that group is patched
    carry: dict[str, torch.Tensor]  # slot -> moved when only its output comes from the flipped run
    necessary: dict[str, torch.Tensor]  # slot -> back to clean when only its output is clean in the flipped run
    change: dict[str, torch.Tensor]  # slot (board, targets) -> norm of its output's change at the cell
    readout_input: torch.Tensor  # norm of the change of the residual the read-out MLP reads, at each target
    rules: torch.Tensor | None = None  # [N, 18] the clean rules: a flip's direction is the clean bit's value
    patcher: Patcher | None = None


def _bits(x: torch.Tensor) -> torch.Tensor:
    """``[18 * N, ...]`` (bit-major) -> ``[18, N, ...]``."""
    return x.unflatten(0, (N_RULE_BITS, -1))


@torch.no_grad()
def flip_map(model: LifeTransformer, ex: Examples, slots: list[Slot] | None = None) -> Flips:
    """Flip every bit on every example (the 18 flipped batches as one) and patch every readable slot and residual
    group both ways (module docstring)."""
    dead = set(unread_slots(model))
    slots = [s for s in (slots or all_slots(model)) if s not in dead]
    components = sorted({s.component for s in slots})
    flipped = forward(model, torch.cat([model.encode_prompt(flip_bit(ex.rules, b), ex.boards)
                                        for b in range(N_RULE_BITS)]), components)
    clean = _repeat(forward(model, ex.tokens, components), N_RULE_BITS)
    targets = positions(model.layout, "targets")
    readout_input = _bits((flipped.readout_input - clean.readout_input)[:, targets].norm(dim=-1))
    boundary: dict[int, dict[str, torch.Tensor]] = {}
    for L in range(1, model.cfg.n_layers):
        for group in RESID_GROUPS:
            resid, pos = clean.resid[L].clone(), positions(model.layout, group)
            resid[:, pos] = flipped.resid[L][:, pos]
            boundary.setdefault(L, {})[group] = _bits(_predict(model, clean, start=L, resid=resid) != clean.pred)
    carry, necessary, change = {}, {}, {}
    moved = flipped.pred != clean.pred
    for slot in slots:
        c, layer = slot.component, slot.component.layer
        suff = _predict(model, clean, put_hooks(model, {slot: flipped.outputs[c]}), start=layer) != clean.pred
        carry[slot.name] = _bits(suff)
        if suff.any():
            need = _predict(model, flipped, put_hooks(model, {slot: clean.outputs[c]}), start=layer) == clean.pred
        else:  # a slot whose patch alone moves no prediction: its restoring brings back only what the others change
            need = ~moved
        necessary[slot.name] = _bits(need)
        if slot.group in ("board", "targets"):
            pos = positions(model.layout, slot.group)
            change[slot.name] = _bits((flipped.outputs[c][:, pos] - clean.outputs[c][:, pos]).flatten(2).norm(dim=-1))
    return Flips(ex.cases, _bits(flipped.pred != clean.pred),
                 boundary, carry, necessary, change, readout_input, ex.rules, Patcher(model, clean, flipped))


def selectivity(change: torch.Tensor, case: torch.Tensor, bit: int) -> float:
    """``1 - d_other / d_gov`` for the flip of ``bit`` from the output's change ``[N, cells]`` under it: ``d_gov`` the
    mean change at the cells of case ``bit``, ``d_other`` at the cells of the same state with another count (a head
    that reads every birth bit into a dead cell moves as much at every dead cell under a birth bit's flip: it reads
    the rule by state, it does not look the case up)."""
    same_state = is_survival(case) == is_survival(torch.tensor(bit))
    gov, other = change[case == bit], change[same_state & (case != bit)]
    if len(gov) == 0 or float(gov.mean()) < 1e-6:
        return float("nan")
    return 1 - float(other.mean()) / float(gov.mean()) if len(other) else 1.0


@dataclass
class SlotEffect:
    """One slot on one case's flips: sufficiency (``carry``), necessity (asked only where the flip moved the
    prediction) and, for a slot at the board or the targets, selectivity (module docstring)."""

    carry: float
    necessary: float
    selectivity: float | None = None  # None: a slot at the rule tokens or separators, where no cell is compared

    def selective(self, th: dict) -> bool:
        """Selective enough to be a lookup (NaN, no change at the governed cells, is not)."""
        s = self.selectivity
        return s is not None and s == s and s >= th["lookup_selectivity"]


@dataclass
class CaseFlips:
    """One case's flips summarised over a set of boards: its cells, how the model follows and leaks the flip, the
    read-out input's selectivity, the residual groups' carries per boundary and every slot's effect."""

    cells: int
    follow: float
    readout_input_selectivity: float
    leak: float
    boundary: dict[int, dict[str, float]]  # boundary -> residual group -> carry
    slots: dict[str, SlotEffect]


def summarise(flips: Flips, boards: torch.Tensor | slice = slice(None)) -> dict[str, CaseFlips]:
    """Per case, its flips over the chosen boards (:class:`CaseFlips`)."""
    case = flips.case[boards]
    out = {}
    for b, name in enumerate(BIT_NAMES):
        governed = case == b
        moved = governed & flips.moved[b][boards]
        slots = {s: SlotEffect(_share(flips.carry[s][b][boards], governed),
                               _share(flips.necessary[s][b][boards], moved)) for s in flips.carry}
        for s, change in flips.change.items():
            slots[s].selectivity = selectivity(change[b][boards], case, b)
        out[name] = CaseFlips(cells=int(governed.sum()), follow=_share(flips.moved[b][boards], governed),
                              readout_input_selectivity=selectivity(flips.readout_input[b][boards], case, b),
                              leak=float(flips.moved[b][boards][~governed].float().mean()),
                              boundary={L: {g: _share(m[b][boards], governed) for g, m in groups.items()}
                                        for L, groups in flips.boundary.items()},
                              slots=slots)
    return out


def _share(mask: torch.Tensor, where: torch.Tensor) -> float:
    """The share of ``where``'s cells in ``mask`` (NaN where there is none)."""
    return float(mask[where].float().mean()) if where.any() else float("nan")


def order_key(name: str) -> tuple:
    """Slots in the order of computation (:attr:`Component.step`; parallel slots by head, then by name, only to list
    them in a fixed order)."""
    return step_of(name), Slot.from_name(name).component.head or 0, name


def step_of(name: str) -> tuple[int, bool]:
    """When a slot computes (:attr:`Component.step`)."""
    return Slot.from_name(name).component.step


@dataclass
class Route:
    """One case's route (module docstring): where the flip enters and by which layer, its lookup with the share of
    flips it carries, the relays and the read-out with theirs; :mod:`~interfere.explore.account.kinds` adds the
    ``kind``, every component that looks it up (``lookups``) and, for a shared case, what the sets they form carry
    (``set_shares``). A case without cells on the boards is ``unmeasured`` (no claim). Its fields are the map's JSON
    schema, and a hand-made model's ground truth's."""

    enters: str
    layer: int | None
    lookup: str | None
    lookup_share: float | None
    relays: list[tuple[str, float]]  # (slot, carry)
    readout: list[tuple[str, float]]  # [(the last MLP at the targets, its carry)], or none
    readout_necessary: float | None
    boundary: dict[int, dict[str, float]]
    follow: float
    cells: int
    kind: str = "single"
    lookups: list[str] = field(default_factory=list)
    set_shares: dict[str, float] = field(default_factory=dict)  # shared: lookup -> its best carrying set's share

    def where(self) -> tuple[str, str | None]:
        """Where the flip enters and the lookup: what the split-half check compares."""
        return self.enters, self.lookup


def route_of(case: CaseFlips, n_layers: int, th: dict) -> Route:
    """One case's route from its flips (module docstring), with a ``single`` lookup where it has one."""
    if case.cells == 0:
        return Route(UNMEASURED, None, None, None, [], [], None, case.boundary, case.follow, 0, kind=UNMEASURED)
    carries = {L: {g: v for g, v in groups.items() if v >= th["route_carry"]} for L, groups in case.boundary.items()}
    enters, layer = "rule", n_layers - 1
    for L in sorted(carries):
        found = [g for g in sorted(carries[L], key=lambda g: -carries[L][g]) if g != "rule"]
        if found:
            enters, layer = found[0], L
            break
        if "rule" in carries[L]:
            layer = L
    slots = case.slots
    carrying = sorted((n for n, e in slots.items() if e.carry >= th["route_carry"]), key=order_key)
    readout = f"MLP{n_layers - 1}@targets"  # the last MLP at the targets: it may also be the lookup
    lookup = next((n for n in carrying if slots[n].selective(th)), None)
    relays = [n for n in carrying if lookup and step_of(n) > step_of(lookup) and n != readout]
    return Route(enters, layer, lookup, slots[lookup].carry if lookup else None,
                 [(n, round(slots[n].carry, 4)) for n in relays],
                 [(readout, round(slots[readout].carry, 4))] if readout in slots else [],
                 slots[readout].necessary if readout in slots else None, case.boundary, case.follow, case.cells,
                 lookups=[lookup] if lookup else [])


def routes_of(summary: dict[str, CaseFlips], n_layers: int, th: dict) -> dict[str, Route]:
    """Every case's route from a :func:`summarise` of the flips."""
    return {case: route_of(summary[case], n_layers, th) for case in BIT_NAMES}


def lookups_by_slot(routes: dict[str, Route]) -> dict[str, list[int]]:
    """Slot name -> the cases (bit indices) the map says it looks up."""
    out: dict[str, list[int]] = {}
    for case, r in routes.items():
        if r.lookup:
            out.setdefault(r.lookup, []).append(BIT_NAMES.index(case))
    return out


@dataclass
class Halves:
    """The map on each half of its boards (two independent draws): how many boards each, the cases whose entry or
    lookup differ, and each half's (entry, lookup) per case."""

    boards: list[int]
    differ: list[str]
    first: dict[str, list]
    second: dict[str, list]


def halves_agree(flips: Flips, n_layers: int, th: dict) -> Halves:
    """The routes on the first and on the second half of the boards: per case, whether both give the same entry and
    lookup (cases unmeasured on a half are not compared)."""
    n = len(flips.case)
    first, second = (routes_of(summarise(flips, slice(a, b)), n_layers, th) for a, b in ((0, n // 2), (n // 2, n)))
    differ = [c for c in BIT_NAMES if UNMEASURED not in (first[c].enters, second[c].enters)
              and first[c].where() != second[c].where()]
    return Halves([n // 2, n - n // 2], differ, {c: list(r.where()) for c, r in first.items()},
                  {c: list(r.where()) for c, r in second.items()})


def carry_table(summary: dict[str, CaseFlips]) -> tuple[list[str], list[str], np.ndarray]:
    """(cases, slots in order of computation, ``[case, slot]`` sufficiency): the map's figure."""
    slots = sorted(next(iter(summary.values())).slots, key=order_key)
    return list(BIT_NAMES), slots, np.array([[summary[c].slots[s].carry for s in slots] for c in BIT_NAMES])
