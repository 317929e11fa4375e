"""A found account scored against a hand-made model's ground truth (:mod:`interfere.model.handmade`): the same schema
on both sides, so every disagreement is named (a case's route, a slot's role) rather than summarised away."""

from __future__ import annotations


def route_key(route: dict) -> tuple:
    """What a route claims: where the flip enters, the lookup and the relays (shares aside)."""
    relays = [r[0] if isinstance(r, list | tuple) else r for r in route["relays"]]
    return route["enters"], route["lookup"], tuple(relays)


FORCED = ("unread", "computed")  # roles no measurement decides: left out by construction, or the read-out kept


def score(truth: dict, found: dict) -> dict:
    """``truth``: a checkpoint's ``ground_truth``; ``found``: the circuit analysis' result as numbers (its
    ``routes``, ``roles`` and ``unread``). Per case and per slot: built against found, and the mismatches. Slots
    whose role is fixed by construction (``unread``, the ``computed`` read-out) are counted apart (``forced``):
    they would match whatever the weights."""
    routes = {case: {"built": list(route_key(r)), "found": list(route_key(found["routes"][case]))}
              for case, r in truth["routes"].items()}
    roles, forced = {}, []
    for c in truth["components"]:
        name = f"{c['component']}@{c['positions']}"
        got = "unread" if name in found["unread"] else found["roles"].get(name, {}).get("uses")
        if c["uses"] in FORCED and got == c["uses"]:
            forced.append(name)
        else:
            roles[name] = {"built": c["uses"], "found": got}
    route_miss = [c for c, r in routes.items() if r["built"] != r["found"]]
    role_miss = [n for n, r in roles.items() if r["built"] != r["found"]]
    return {"routes": {"matched": len(routes) - len(route_miss), "of": len(routes), "mismatches": route_miss},
            "roles": {"matched": len(roles) - len(role_miss), "of": len(roles), "mismatches": role_miss,
                      "forced": forced},
            "per_case": routes, "per_slot": roles}


