"""A found account scored against a hand-made model's ground truth (:mod:`interfere.model.handmade`): the same schema
on both sides, so every disagreement is named (a case's route, a slot's role) rather than summarised away."""

from __future__ import annotations

import dataclasses

from interfere.explore.account.routes import Route


def route_key(route: Route | dict) -> tuple:
    """What a route claims: its kind, where the flip enters, the lookup, every component that looks it up and the
    relays (shares aside), of a found :class:`Route` or of one as JSON (a ground truth's, or a saved map's)."""
    route = dataclasses.asdict(route) if isinstance(route, Route) else route
    relays = [r[0] if isinstance(r, list | tuple) else r for r in route["relays"]]
    lookups = route.get("lookups", [route["lookup"]] if route["lookup"] else [])
    return route.get("kind", "single"), route["enters"], route["lookup"], tuple(sorted(lookups)), tuple(relays)


def components_key(route: Route | dict) -> tuple:
    """:func:`route_key` without where the flip enters: the components a route names. A model trained to an
    algorithm (SIIT) is trained at its nodes, not on the edges into them, so its ground truth fixes these only."""
    kind, _, lookup, lookups, relays = route_key(route)
    return kind, lookup, lookups, relays


FORCED = ("unread", "computed")  # roles no measurement decides: left out by construction, or the read-out kept


def score(truth: dict, found: dict) -> dict:
    """``truth``: a checkpoint's ``ground_truth``; ``found``: the circuit analysis' result as numbers (its
    ``routes``, ``roles`` and ``unread``). Per case and per slot: built against found, and the mismatches. Slots
    whose role is fixed by construction (``unread``, the ``computed`` read-out) are counted apart (``forced``):
    they would match whatever the weights. A model trained to a known algorithm (SIIT) states no roles: none are
    scored."""
    routes = {case: {"built": list(route_key(r)), "found": list(route_key(found["routes"][case]))}
              for case, r in truth["routes"].items()}
    roles, forced = {}, []
    for c in truth.get("components", []):
        name = f"{c['component']}@{c['positions']}"
        got = "unread" if name in found["unread"] else found["roles"].get(name, {}).get("uses")
        if c["uses"] in FORCED and got == c["uses"]:
            forced.append(name)
        else:
            roles[name] = {"built": c["uses"], "found": got}
    route_miss = [c for c, r in routes.items() if r["built"] != r["found"]]
    component_miss = [c for c, r in truth["routes"].items() if components_key(r) != components_key(found["routes"][c])]
    role_miss = [n for n, r in roles.items() if r["built"] != r["found"]]
    return {"routes": {"matched": len(routes) - len(route_miss), "of": len(routes), "mismatches": route_miss,
                       "components_matched": len(routes) - len(component_miss)},
            "roles": {"matched": len(roles) - len(role_miss), "of": len(roles), "mismatches": role_miss,
                      "forced": forced},
            "per_case": routes, "per_slot": roles}




def route_nodes(routes: dict[str, dict]) -> set[str]:
    """The slots on any case's route: its lookups and relays (the read-out aside: every case ends there)."""
    out: set[str] = set()
    for r in routes.values():
        out |= set(r.get("lookups", [r["lookup"]] if r.get("lookup") else []))
        out |= {x[0] if isinstance(x, list | tuple) else x for x in r["relays"]}
    return out


def node_aurocs(truth: dict, found: dict) -> dict[str, dict]:
    """Node-level scores against the built circuit (InterpBench's measure, Gupta et al. 2024): each method ranks the
    slots it measured, and the AUROC says how well that ranking separates the built nodes from the rest, next to the
    true and false positive rates of what the method claims. The map: a slot's score is its largest sufficiency for
    any case's flips where it is selective, alone, or what the best set it belongs to carries of a shared case (a
    head of three of which any two are enough carries nothing alone; the set's share is balanced over the flip's two
    directions, as the kinds are decided), its claim the lookups and relays it names; the built nodes are the
    routes' lookups and relays. The roles: a slot's score is the accuracy lost when it is mean-ablated (with its
    redundant partners removed where it has them), its claim a role other than none; the built nodes are the slots
    whose built role is not none. Slots fixed by construction (unread, the read-out) are left out. For a model
    trained to a known algorithm (SIIT) only the slots whose part the training fixed are scored: its nodes (built)
    and the components trained not to matter (not built); the rest (the count and own heads) were left free."""
    from interfere.explore.analysis import fast_auc

    forced = set(found["unread"]) | {n for n, r in found["roles"].items() if r["uses"] in FORCED}
    known = None if "components" in truth else set(truth["nodes"]) | set(truth["outside"])
    slots = sorted(n for n in next(iter(found["map"].values()))["slots"]
                   if n not in forced and (known is None or n in known))
    built_route, claimed_route = route_nodes(truth["routes"]), route_nodes(found["routes"])
    th = found["thresholds"]

    def selective(effect: dict) -> bool:  # a slot at the rule tokens or separators (no selectivity) counts
        s = effect.get("selectivity")
        return s is None or s == s and s >= th["lookup_selectivity"]

    def map_score(n: str) -> float:
        alone = [c["slots"][n]["carry"] for c in found["map"].values() if c["cells"] and selective(c["slots"][n])]
        in_sets = [shares[n] for r in found["routes"].values() if n in (shares := r.get("set_shares", {}))]
        return max(alone + in_sets, default=0.0)

    built_role = {f"{c['component']}@{c['positions']}" for c in truth["components"]
                  if c["uses"] not in ("none", *FORCED)} if "components" in truth else set(truth["nodes"])
    role_score = {n: 1.0 - (r["tried"].get("none", [1.0])[0] if "tried" in r else 1.0)
                  for n, r in found["roles"].items()}
    claimed_role = {n for n, r in found["roles"].items() if r["uses"] not in ("none", *FORCED)}
    return {"map": _rates(slots, built_route, claimed_route, {n: map_score(n) for n in slots}, fast_auc),
            "roles": _rates(slots, built_role, claimed_role, role_score, fast_auc)}


def _rates(slots: list[str], built: set[str], claimed: set[str], scores: dict[str, float], auc) -> dict:
    labels = [n in built for n in slots]
    positives, negatives = max(1, sum(labels)), max(1, len(slots) - sum(labels))
    return {"auroc": auc(labels, [scores.get(n, 0.0) for n in slots]),
            "tpr": sum(n in claimed for n in slots if n in built) / positives,
            "fpr": sum(n in claimed for n in slots if n not in built) / negatives,
            "built": sorted(built & set(slots)), "claimed": sorted(claimed & set(slots))}
