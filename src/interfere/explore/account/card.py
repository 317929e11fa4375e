"""The account rendered: the machine-readable ``algorithm`` block, the card's lines (each with the number that tests
it) and the verdict, from the stages' results alone (no model, no forward)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from interfere.ca.rules import BIT_NAMES, N_COUNTS
from interfere.explore.account.idealised import Idealised
from interfere.explore.account.interchange import ANSWER_FIXING
from interfere.explore.account.neurons import Readout
from interfere.explore.account.roles import COMPUTED, UNEXPLAINED, Account, Role
from interfere.explore.account.routes import UNMEASURED, Halves, Route


def case_span(cases: list[str]) -> str:
    """``["S2", "S3", "S4", "B0"]`` -> ``"S2-S4, B0"`` (runs of consecutive counts within a state)."""
    index = sorted(BIT_NAMES.index(c) for c in cases)
    runs: list[list[int]] = []
    for i in index:
        if runs and i == runs[-1][-1] + 1 and (i < N_COUNTS) == (runs[-1][-1] < N_COUNTS):
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(BIT_NAMES[r[0]] if len(r) == 1 else f"{BIT_NAMES[r[0]]}-{BIT_NAMES[r[-1]]}" for r in runs)


@dataclass
class RouteGroup:
    """Cases that take the same route: ``route`` is the first case's (the shares differ from case to case)."""

    route: Route
    cases: list[str]

    @property
    def relays(self) -> list[str]:
        return [name for name, _ in self.route.relays]


def route_groups(routes: dict[str, Route]) -> list[RouteGroup]:
    """Cases that take the same route (kind, where the bit enters, the lookups, the relays), in case order."""
    groups: dict[tuple, RouteGroup] = {}
    for case, r in routes.items():
        key = (r.kind, r.enters, r.layer, r.lookup, tuple(r.lookups), tuple(name for name, _ in r.relays))
        groups.setdefault(key, RouteGroup(r, [])).cases.append(case)
    return list(groups.values())


def algorithm_block(roles: dict[str, Role], unread: list[str], routes: dict[str, Route], idealised: Idealised,
                    neurons: Readout, account: Account) -> dict:
    """The machine-readable account: every readable slot's role with its answer-carrying control, the slots left
    out by construction, the lookup map's routes, the idealised heads, the read-out's neurons, the account's test."""
    components = []
    for r in roles.values():
        entry = {"component": r.component, "positions": r.group, "uses": r.uses}
        if r.control:
            entry["control"] = r.control.acc
            entry["relays_answer"] = r.control.passes
        if r.stable is not None:
            entry["stable"] = r.stable
        components.append(entry)
    return {
        "components": components, "unread": unread,
        "routes": {case: {k: getattr(r, k) for k in ("kind", "enters", "layer", "lookup", "lookups", "relays",
                                                     "readout")} for case, r in routes.items()},
        "idealised": {"all_heads": idealised.all_named,
                      "all_heads_case_conditional": idealised.all_case_conditional,
                      **{name: {"template": h.template, "acc": h.acc} for name, h in idealised.heads.items()}},
        "readout_neurons": {k: getattr(neurons, k) for k in ("component", "neurons", "carry", "leak", "random_carry")},
        "interchange": {f.name: {"acc": getattr(account, f.name).acc, "coverage": getattr(account, f.name).coverage}
                        for f in dataclasses.fields(account)},
    }


def map_lines(routes: dict[str, Route]) -> list[str]:
    """The lookup map, a line per group of cases that take the same route."""
    lines = []
    for g in route_groups(routes):
        r0, shares = g.route, [routes[c] for c in g.cases]
        if r0.enters == UNMEASURED:
            lines.append(f"{case_span(g.cases)}: unmeasured (no cell of the case on the map's boards)")
            continue
        where = (f"enters the {r0.enters} by layer {r0.layer}" if r0.enters != "rule"
                 else f"stays in the rule tokens up to layer {r0.layer}")
        line = f"{case_span(g.cases)}: the flip of the governing bit {where}; " + _looked_up(r0, shares)
        if g.relays:
            line += "; relayed by " + ", ".join(
                f"{name} ({_span(dict(r.relays)[name] for r in shares)})" for name in g.relays)
        readout = [r.readout[0][1] for r in shares if r.readout]
        if readout:
            line += (f"; the last MLP, {r0.readout[0][0]}, carries {_span(readout)} of the flips and is "
                     f"needed for {_span(r.readout_necessary for r in shares)}")
        lines.append(line)
    return lines


def _looked_up(r: Route, shares: list[Route]) -> str:
    """How the group's cases are looked up, by kind (:mod:`~interfere.explore.account.kinds`)."""
    if r.kind == "redundant":
        return (f"computed twice, by {' and by '.join(r.lookups)}, either alone enough (restoring one leaves the "
                "flip; restoring both removes it)")
    if r.kind == "shared":
        return (f"looked up by {', '.join(r.lookups)} together: no one of them carries the flips alone, sets of "
                "them do")
    if r.kind == "unlocated":
        return ("not located: nothing before the read-out carries it alone or in a set, though the read-out's input "
                "moves")
    if not r.lookup:
        return "no single slot carries it selectively (not located)"
    return f"looked up by {r.lookup} (carries {_span(x.lookup_share for x in shares)} of the flips)"


def _span(values) -> str:
    values = [v for v in values if v is not None and v == v]  # NaN: a case without governed cells
    if not values:
        return "n/a"
    lo, hi = min(values), max(values)
    return f"{100 * lo:.0f}%" if round(100 * lo) == round(100 * hi) else f"{100 * lo:.0f}-{100 * hi:.0f}%"


def _made_where(slot: str, routes: dict[str, Route]) -> str:
    """Where the answer a slot relays is made, from the map: the lookups of the cases the slot carries."""
    own = [c for c, r in routes.items() if r.lookup == slot]
    relayed: dict[str | None, list[str]] = {}
    for case, r in routes.items():
        if slot in (name for name, _ in r.relays):
            relayed.setdefault(r.lookup, []).append(case)
    parts = [f"{case_span(cases)} from {lookup}" for lookup, cases in relayed.items()]
    if own:
        parts.append(f"it looks up {case_span(own)} itself")
    return f" ({'; '.join(parts)})" if parts else " (the map finds it carrying no case's flip alone)"


def role_line(r: Role, routes: dict[str, Route]) -> str:
    """One role with its numbers: interchange, the next-coarser candidate, the second draw, the answer control."""
    if r.uses == UNEXPLAINED:
        best = max(r.tried.items(), key=lambda kv: kv[1][0])
        return (f"{r.component} at {r.group}: no input variables explain it (best: {best[0]}, "
                f"{100 * best[1][0]:.2f}% kept, coverage {100 * best[1][1]:.0f}%)")
    if r.uses == "none":
        return f"{r.component} at {r.group}: none (mean-ablated: {100 * r.acc:.2f}% kept)" + _partners_note(r)
    order = list(r.tried)
    coarser = order[order.index(r.uses) - 1] if order.index(r.uses) > 0 else None
    line = (f"{r.component} at {r.group}: uses {r.uses} (interchange {100 * r.acc:.2f}% kept, "
            f"{100 * r.coverage:.1f}% of cells with a donor")
    if coarser:
        line += f"; {coarser} keeps {100 * r.tried[coarser][0]:.2f}%"
    if r.stable is False:
        line += f"; the second donor draw finds {r.draws[1]}"
    line += ")"
    control = r.control
    if control:
        line += (f"; answer-carrying control ({control.variables.replace('next', 'next state')}, another rule) "
                 f"keeps {100 * control.acc:.2f}%")
        if control.passes:
            line += ": it relays the answer" + _made_where(r.slot, routes)
    if r.uses in ANSWER_FIXING and r.group == "targets" and not (control and control.passes):
        line += "; the role fixes the answer at a target"
    return line + _partners_note(r)


def _partners_note(r: Role) -> str:
    """A slot tested with its redundant partners removed (:func:`.roles.redundant_partners`)."""
    if not r.partners:
        return ""
    return "; tested with " + ", ".join(f"{p} removed at {case_span(c)}" for p, c in r.partners.items()) + \
        " (they compute those cases too: alone, neither is needed)"


def card_verdict(account: Account, routes: dict[str, Route], neurons: Readout, th: dict, halves: Halves | None = None
                 ) -> tuple[str, str]:
    """``supported`` when every role at once and the board roles alone keep ``account_acc`` (with coverage), nothing
    is unexplained, the map locates the lookups of every case (one slot, two redundant ones or a shared set) and the
    map's two halves of the boards agree; ``not supported`` below ``refute_acc``."""
    a, b = account.all_at_once, account.board_roles
    holds = lambda t: t.acc >= th["account_acc"] and t.coverage >= th["min_coverage"]  # noqa: E731
    located = [c for c, r in routes.items() if r.lookups]
    differ = halves.differ if halves else []
    unmeasured = [c for c, r in routes.items() if r.enters == UNMEASURED]
    why = (f"all roles at once keep {100 * a.acc:.2f}% ({100 * a.coverage:.1f}% coverage), board roles alone "
           f"{100 * b.acc:.2f}%; the map locates the lookup of {len(located)} of {len(routes)} cases"
           + (f" ({len(unmeasured)} unmeasured)" if unmeasured else "") + "; "
           f"the read-out's {neurons.size} neurons carry {100 * neurons.carry:.1f}%"
           + (f"; left computed: {', '.join(a.left_computed)}" if a.left_computed else "")
           + (f"; the map's two halves of the boards differ at {case_span(differ)}" if differ else ""))
    if a.acc < th["refute_acc"]:
        return "not supported", why
    if holds(a) and holds(b) and not a.left_computed and len(located) == len(routes) and not differ:
        return "supported", why
    return "inconclusive", why


def card_lines(roles: dict[str, Role], unread: list[str], routes: dict[str, Route], account: Account,
               ideal: Idealised, readout: Readout, decodable: dict, clean: float, halves: Halves | None = None
               ) -> list[str]:
    """Plain lines rendered from the account, each with the number that tests it."""
    lines = map_lines(routes)
    if halves and halves.differ:
        lines.append(f"The map on each half of its boards (two draws) differs at {case_span(halves.differ)}: "
                     + "; ".join(f"{c} {'/'.join(map(str, halves.first[c]))} vs "
                                 f"{'/'.join(map(str, halves.second[c]))}" for c in halves.differ)
                     + ". Those routes are not settled; the verdict cannot be supported.")
    quiet = [r.slot for r in roles.values() if r.uses == "none" and r.acc >= 0.9995]
    lines += [role_line(r, routes) for r in roles.values() if r.uses != COMPUTED and r.slot not in quiet]
    if quiet:
        lines.append(f"Not needed (mean-ablated, >= 99.95% kept): {', '.join(quiet)}.")
    if unread:
        lines.append(f"Left out by construction (no path reaches a target, whatever the weights): {', '.join(unread)}.")
    a, b, second = account.all_at_once, account.board_roles, account.second_draw
    lines.append(f"All roles at once, only {readout.component} at the targets computed: {100 * a.acc:.2f}% "
                 f"held-out cell accuracy (clean {100 * clean:.2f}%), {100 * a.coverage:.2f}% donor coverage; "
                 f"with the second donor draw {100 * second.acc:.2f}% ({100 * second.coverage:.2f}%).")
    lines.append(f"Board-position roles alone (targets computed): {100 * b.acc:.2f}%, "
                 f"{100 * b.coverage:.2f}% coverage.")
    lines += idealised_lines(ideal)
    groups = "; ".join(f"{len(g.neurons)} {g.state} with {g.counts} neighbours (follow " + ", ".join(g.reads) + ")"
                       for g in readout.groups[:6])
    lines.append(f"The read-out: {readout.size} of {readout.d_mlp} {readout.component} neurons carry "
                 f"{100 * readout.carry:.1f}% of governing-bit flips (through the hooked model "
                 f"{100 * readout.carry_hooked:.1f}%) and leak {100 * readout.leak:.2f}% of non-governing ones; "
                 f"random sets of that size carry {100 * readout.random_carry:.1f}%, all neurons "
                 f"{100 * readout.all_carry:.1f}%" + (f". By response: {groups}." if groups else "."))
    where = "; ".join(f"{k} from {v}" if v else f"{k} never" for k, v in decodable.items())
    lines.append(f"Linearly decodable at the targets: {where}.")
    return lines


def idealised_lines(ideal: Idealised) -> list[str]:
    """Each idealised head (its template, alone) and every head at once."""
    lines = []
    for name, h in ideal.heads.items():
        gated = f" for {case_span([BIT_NAMES[j] for j in h.gated_cases])}" if h.gated_cases else ""
        lines.append(f"{name} idealised as '{h.template}'{gated} (inputs only): {100 * h.acc:.2f}% kept; "
                     f"case-conditional: {100 * h.case_conditional_acc:.2f}%.")
    if ideal.heads:
        follows = "; ".join(f"{k} at {case_span(v)}" for k, v in ideal.answer_following.items())
        lines.append(f"Every head idealised at once: {100 * ideal.all_named:.2f}% (named templates), "
                     f"{100 * ideal.all_case_conditional:.2f}% (case-conditional)"
                     + (f"; attention that follows the answer (no template without it matches): {follows}; with those "
                        f"queries left computed {100 * ideal.all_case_conditional_but_answer_following:.2f}%"
                        if follows else "") + ".")
    return lines
