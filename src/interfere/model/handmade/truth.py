"""What a hand-made model computes, stated in the schemas the methods report in, so that each method is scored
against it: the account's ``algorithm`` block (:func:`ground_truth`: every slot's role, every case's route) and the
causal abstraction's map (:func:`variable_sites`: where each variable of the high-level model lives, per case)."""

from __future__ import annotations

from dataclasses import asdict

from interfere.model.handmade.variants import LOOKUP_ROUTES, N_HEADS, Heads, get_variant, used_routes

UNREAD = "unread"  # a slot whose output nothing downstream reads (layer 1 away from the targets): no finding
ANSWER_SITES = ("mlp_out.1@targets", "resid_post.1@targets")  # the read-out writes the answer: every case, trivially
KINDS = ("single", "redundant", "shared")


def ground_truth(variant: str, heads: Heads | None = None) -> dict:
    """What the variant computes, in the schema of the account's ``algorithm`` block: ``components`` (every head and
    MLP at the board, the targets and the physics tokens, with the coarsest input variables its output is read for:
    ``none`` where nothing reads it, ``unread`` where nothing could, ``computed`` for the read-out), ``routes`` (per
    case: its ``kind``, where the governing bit enters, the component that looks it up first, every component that
    does (``lookups``), the relays and the read-out) and ``variables`` (:func:`variable_sites`)."""
    spec, heads = get_variant(variant), heads or Heads()
    return {"variant": variant, "description": spec.description, "heads": asdict(heads),
            "components": _component_truth(heads, used_routes(spec)),
            "routes": {case: route_truth(routes, heads) for case, routes in spec.routes.items()},
            "variables": variable_sites(variant, heads)}


def _lookup(route: str, heads: Heads) -> list[str]:
    return {"board": ["MLP0@board"], "targets": ["MLP0@targets"], "follow": ["MLP0@targets"],
            "last": ["MLP1@targets"]}.get(route) or [f"L1H{h}@targets" for h in heads.layer1(route)]


def route_truth(routes: tuple[str, ...], heads: Heads) -> dict:
    """One case's route: ``single`` (one component looks it up), ``redundant`` (two routes, each alone enough; the
    flip enters by both, ``board+rule``) or ``shared`` (heads at half weight, none enough alone)."""
    lookups = [name for r in routes for name in _lookup(r, heads)]
    kind = "redundant" if len(routes) > 1 else "shared" if routes[0] in ("shared2", "shared3") else "single"
    entry = {r: {"last": "targets", "follow": "targets"}.get(r, "rule" if r in LOOKUP_ROUTES else r) for r in routes}
    enters = "+".join(sorted(entry.values()))  # a redundant case enters by both its routes' groups
    relays = [f"L1H{heads.copy}@targets"] if "board" in routes else [f"L1H{heads.follow}@targets"] \
        if "follow" in routes else []
    return {"kind": kind, "enters": enters, "layer": 1, "lookup": None if kind == "shared" else lookups[0],
            "lookups": lookups, "relays": relays, "readout": ["MLP1@targets"]}


def _component_truth(heads: Heads, used: set[str]) -> list[dict]:
    at_board, rules_at_targets = "board" in used, bool(used & {"targets", "follow", "last"})
    at_targets = rules_at_targets or bool(used & set(LOOKUP_ROUTES))
    layer0 = {heads.count: "count9", heads.own: "own", heads.rules: "rule"}
    layer1 = {h for r in used for h in heads.layer1(r)}
    uses: dict[tuple[str, str], str] = {}
    for h in range(N_HEADS):
        role = layer0.get(h, "none")
        uses[(f"L0H{h}", "board")] = role if at_board else "none"
        uses[(f"L0H{h}", "targets")] = role if at_targets and (role != "rule" or rules_at_targets) else "none"
        uses[(f"L0H{h}", "physics")] = "none"
        uses[(f"L1H{h}", "targets")] = "case+rule" if h in layer1 else "none"
        uses[(f"L1H{h}", "board")] = uses[(f"L1H{h}", "physics")] = UNREAD
    uses[("MLP0", "board")] = "case+rule" if at_board else "none"
    uses[("MLP0", "targets")] = ("case+rule" if used & {"targets", "follow"} else "case" if used & set(LOOKUP_ROUTES)
                                 else "none")
    uses[("MLP0", "physics")] = "none"
    uses[("MLP1", "targets")] = "computed"
    uses[("MLP1", "board")] = uses[("MLP1", "physics")] = UNREAD
    return [{"component": c, "positions": g, "uses": u} for (c, g), u in sorted(uses.items())]


def route_sites(route: str, heads: Heads) -> dict[str, list[str]]:
    """Where each variable lives for a case of this route: the sites (:mod:`interfere.explore.alignment.sites`) at
    which interchanging it (on pairs of two cases of the route) moves the output as the high-level model says.

    Layer 0 writes ``count9`` (the count head) and ``own`` (the own head) at the route's cells: ``count`` (pairs with
    one own state) lives in the count head's output alone, ``own`` and ``case`` only where both heads' outputs are
    summed. MLP0 turns them into the one-hot case at the targets (lookup routes) or the governing bit (board, targets
    and follow routes); a lookup head turns the case into the bit by reading the governing rule token (whose value the
    token's residual carries until then), the copy head brings the bit from the board, the follow head writes it
    again; the read-out writes the answer. Heads at half weight hold it only summed (``attn_out.1``).
    """
    at = "board" if route == "board" else "targets"
    both = [f"attn_out.0@{at}", f"resid_mid.0@{at}"]
    sites = {"count": [f"L0H{heads.count}@{at}", *both], "own": list(both), "case": list(both), "bit": []}
    if route in LOOKUP_ROUTES:
        for v in ("count", "own", "case"):
            sites[v] += ["mlp_out.0@targets", "resid_pre.1@targets"]
        single = [f"L1H{heads.lookup}@targets"] if route == "rule" else []
        sites["bit"] = ["resid_mid.0@rule", "resid_pre.1@rule", *single, "attn_out.1@targets", "resid_mid.1@targets"]
    elif route == "board":
        sites["bit"] = ["mlp_out.0@board", "resid_pre.1@board", f"L1H{heads.copy}@targets", "attn_out.1@targets",
                        "resid_mid.1@targets"]
    elif route == "targets":
        sites["bit"] = ["mlp_out.0@targets", "resid_pre.1@targets", "resid_mid.1@targets"]
    elif route == "follow":
        sites["bit"] = ["mlp_out.0@targets", "resid_pre.1@targets", f"L1H{heads.follow}@targets",
                        "attn_out.1@targets", "resid_mid.1@targets"]
    else:  # last: MLP1 reads count9, own and the rule bits itself
        for v in ("count", "own", "case"):
            sites[v] += ["resid_pre.1@targets", "resid_mid.1@targets"]
    sites["bit"] += list(ANSWER_SITES)
    return sites


def variable_sites(variant: str, heads: Heads | None = None) -> dict[str, dict[str, list[str]]]:
    """Variable -> site -> the cases for which the site holds it; every other readable site holds it for no case.
    A case computed by two routes is held only where both routes' work passes (their sites in common): either
    route alone enough, an interchange on one of them leaves the other's answer in place."""
    heads, out = heads or Heads(), {}
    for case, routes in get_variant(variant).routes.items():
        per_route = [route_sites(r, heads) for r in routes]
        for variable in per_route[0]:
            common = [s for s in per_route[0][variable] if all(s in other[variable] for other in per_route[1:])]
            for site in common:
                out.setdefault(variable, {}).setdefault(site, []).append(case)
    return out
