"""What kind of computation looks each case up, beyond "one slot does": the lookup map's routes
(:mod:`~interfere.explore.account.routes`) completed with a ``kind`` and every component that looks the case up
(``lookups``), from patches of several slots at once (one bit's flipped batch at a time).

Every share here is balanced over the flip's two directions (the mean of the shares over the cells whose clean bit is
0 and over those whose clean bit is 1): a route of an OR carries the flips that turn the answer on and none of those
that turn it off, so an unbalanced share would be set by how many of the sampled rules have the bit on.

* ``single``: one slot carries the case's flips selectively and is needed (restoring it alone returns the flipped
  prediction to the clean one on at least ``NEEDED`` of the moved cells);
* ``redundant``: two selective slots, each of which carries the flips alone once the other is removed (mean-ablated):
  two routes, either alone enough (conditional co-ablation: a backup's effect shows once its primary is removed;
  McGrath et al. 2023, arXiv 2307.15771; arXiv 2607.01940). Patched alone from the flipped run a route of an OR
  carries only the flips that turn the answer on, about half: neither its sufficiency nor its necessity tells;
* ``shared``: no slot before the read-out carries the case alone, but the residual the read-out reads already moves
  selectively (the answer is made before it), and a set of slots patched together carries it: the smallest such sets
  (of two, then three), ``lookups`` their union, ``set_shares`` each one's best set's (balanced) share;
* ``unlocated``: nothing before the read-out carries it, alone or in a set, though the read-out's input moves;
* the read-out itself as the lookup (``single``) only when its input does not move selectively: it reads the rule,
  not an answer made before it (a method that named the read-out whenever nothing earlier carries would call every
  shared case "looked up by the last MLP").
"""

from __future__ import annotations

import dataclasses
import itertools

from interfere.ca.rules import BIT_NAMES
from interfere.explore.account.routes import (
    UNMEASURED,
    CaseFlips,
    Flips,
    Route,
    SlotEffect,
    flip_map,
    order_key,
    routes_of,
    step_of,
    summarise,
)
from interfere.explore.account.slots import Slot
from interfere.explore.analysis import Examples
from interfere.model.life_model import LifeTransformer

NEEDED = 0.75  # restoring a slot (or a set) returns at least this share of the moved cells: it is needed
ALONE = 0.9  # with its partner removed, a redundant route carries at least this share of the flips
MAX_SET = 3  # shared sets are searched up to this size


def lookup_map(model: LifeTransformer, ex: Examples, th: dict, slots: list[Slot] | None = None
               ) -> tuple[Flips, dict[str, CaseFlips], dict[str, Route]]:
    """The whole lookup map of ``ex``: the flips, their summary per case, and every case's route with its kind."""
    flips = flip_map(model, ex, slots)
    summary = summarise(flips)
    n_layers = model.cfg.n_layers
    return flips, summary, classify(flips, summary, routes_of(summary, n_layers, th), n_layers, th)


def classify(flips: Flips, summary: dict[str, CaseFlips], routes: dict[str, Route], n_layers: int, th: dict
             ) -> dict[str, Route]:
    """Every case's route with ``kind`` and ``lookups`` (module docstring); other fields as the map gave them, the
    ``lookup`` the first of ``lookups`` (None for a shared or unlocated case)."""
    return {case: _classified(case, flips, summary[case], r, n_layers, th) for case, r in routes.items()}


def _classified(case: str, flips: Flips, found: CaseFlips, r: Route, n_layers: int, th: dict) -> Route:
    if r.enters == UNMEASURED:
        return dataclasses.replace(r, kind=UNMEASURED, lookups=[])
    bit, readout = BIT_NAMES.index(case), f"MLP{n_layers - 1}@targets"
    slots, governed = found.slots, (flips.case == bit)
    test = _Tests(flips, bit, governed, th)
    selective = [n for n in sorted(slots, key=order_key) if n != readout and slots[n].selective(th)]
    carriers = [n for n in selective if test.balanced(flips.carry[n][bit]) >= th["route_carry"]]
    needed = test.balanced(flips.necessary[carriers[0]][bit], moved=True) if carriers else float("nan")
    if carriers and not needed < NEEDED:  # NaN (no moved cell) counts as needed
        return _route(r, "single", [carriers[0]], slots, readout, th)
    pair = test.redundant_pair(sorted(selective, key=lambda n: -slots[n].carry)[:CANDIDATES])
    if pair:
        relays = [n for n in sorted(slots, key=order_key) if step_of(n) > step_of(pair[0]) and n not in pair
                  and n != readout and slots[n].selective(th) and test.alone(n, pair[1])]
        return dataclasses.replace(_route(r, "redundant", list(pair), slots, readout, th),
                                   relays=[(n, round(slots[n].carry, 4)) for n in relays], enters=test.entries(pair))
    moves = found.readout_input_selectivity
    if carriers or moves == moves and moves >= th["lookup_selectivity"]:  # the answer is made before the read-out
        sets = test.carrying_sets(selective)
        if sets:
            shared = _route(r, "shared", sorted({n for s, _ in sets for n in s}, key=order_key), slots, readout, th,
                            lookup=False)
            best = {n: round(max(share for combo, share in sets if n in combo), 4) for n in shared.lookups}
            return dataclasses.replace(shared, set_shares=best)
        if carriers:
            return _route(r, "single", [carriers[0]], slots, readout, th)  # not needed alone, nothing else found
        return _route(r, "unlocated", [], slots, readout, th, lookup=False)
    if readout in slots and slots[readout].carry >= th["route_carry"] and slots[readout].selective(th):
        return _route(r, "single", [readout], slots, readout, th)
    return _route(r, "unlocated", [], slots, readout, th, lookup=False)


CANDIDATES = 5  # the selective slots that carry most are tried in pairs for redundancy


class _Tests:
    """Patches of one bit's flipped batch (:class:`~interfere.explore.account.routes.Patcher`), as shares of the
    case's governed cells."""

    def __init__(self, flips: Flips, bit: int, governed, th: dict) -> None:
        self.patcher, self.bit, self.governed, self.th = flips.patcher, bit, governed, th
        self.clean, self.flipped = self.patcher.pred(bit, "clean"), self.patcher.pred(bit, "flipped")
        self.on = flips.rules[:, bit][:, None].expand_as(governed)  # the clean bit, per cell
        self.moved = flips.moved[bit]

    def balanced(self, mask, moved: bool = False) -> float:
        """The share of the governed (or, with ``moved``, the moved governed) cells in ``mask``, averaged over the
        flip's two directions (the one present where only one is)."""
        where = self.governed & (self.moved if moved else True)
        shares = [float(mask[where & (self.on == v)].float().mean()) for v in (False, True)
                  if bool((where & (self.on == v)).any())]
        return sum(shares) / len(shares) if shares else float("nan")

    def share(self, mask) -> float:
        return self.balanced(mask)

    def alone(self, name: str, removed: str) -> bool:
        """``name`` carries the flips alone once ``removed`` is mean-ablated: the clean run so ablated keeps its
        answer, and with ``name`` from the flipped run it gives the flipped answer."""
        a, b = Slot.from_name(name), Slot.from_name(removed)
        kept = self.patcher.predict(self.bit, "clean", ablated=(b,)) == self.clean
        follows = self.patcher.predict(self.bit, "clean", patched=(a,), ablated=(b,)) == self.flipped
        return self.share(kept & follows) >= ALONE

    def entries(self, pair: tuple[str, str]) -> str:
        """Where a redundant case's flip enters, by each route (``board+rule``): a lookup at the board computes it
        there; a head at the targets reads it from the rule tokens when, with the other route removed, the rule tokens
        entering its block carry the flips; anything else from the targets."""
        out = set()
        for name, other in (pair, pair[::-1]):
            slot = Slot.from_name(name)
            if slot.group == "board":
                out.add("board")
                continue
            ablated = (Slot.from_name(other),)
            kept = self.patcher.predict(self.bit, "clean", ablated=ablated) == self.clean
            moved = self.patcher.predict(self.bit, "clean", ablated=ablated, resid=(slot.component.layer, "rule"))
            from_rule = slot.component.head is not None and slot.component.layer > 0
            out.add("rule" if from_rule and self.share(kept & (moved == self.flipped)) >= self.th["route_carry"]
                    else "targets")
        return "+".join(sorted(out))

    def redundant_pair(self, candidates: list[str]) -> tuple[str, str] | None:
        """The earliest pair (in the order of computation) of which each carries the flips alone once the other is
        removed."""
        pairs = sorted(itertools.combinations(sorted(candidates, key=order_key), 2),
                       key=lambda p: (order_key(p[0]), order_key(p[1])))
        return next(((a, b) for a, b in pairs if self.alone(a, b) and self.alone(b, a)), None)

    def carrying_sets(self, selective: list[str]) -> list[tuple[tuple[str, ...], float]]:
        """The smallest sets of selective slots of one layer that carry the case together, each with its share."""
        by_layer: dict[int, list[str]] = {}
        for name in selective:
            by_layer.setdefault(step_of(name)[0], []).append(name)
        for size in range(2, MAX_SET + 1):
            shares = [(combo, self.share(self.patcher.predict(self.bit, "clean", tuple(map(Slot.from_name, combo)))
                                         != self.clean))
                      for names in by_layer.values() for combo in itertools.combinations(names, size)]
            found = [(combo, share) for combo, share in shares if share >= self.th["route_carry"]]
            if found:
                return found
        return []


def _route(r: Route, kind: str, lookups: list[str], slots: dict[str, SlotEffect], readout: str, th: dict,
           lookup: bool = True) -> Route:
    """The map's route with its kind: the lookup is the first of ``lookups`` (none for shared and unlocated cases),
    the relays the slots after the first lookup that carry the case, neither lookups nor the read-out."""
    first = lookups[0] if lookups and lookup else None
    after = min((step_of(n) for n in lookups), default=None)
    relays = [n for n in sorted(slots, key=order_key) if after is not None and step_of(n) > after
              and slots[n].carry >= th["route_carry"] and n not in lookups and n != readout]
    return dataclasses.replace(r, kind=kind, lookup=first, lookups=lookups,
                               lookup_share=slots[first].carry if first else None,
                               relays=[(n, round(slots[n].carry, 4)) for n in relays])
