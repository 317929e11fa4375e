"""The H1-H4 verdicts: pure functions from measured numbers and thresholds to a verdict and its reasons.

Each hypothesis reaches each of its three verdicts by its own logic. ``supported``: every support
condition holds; ``not supported``: its own refuting condition holds (:data:`REFUTATIONS` states
it in words, and the report prints it); ``inconclusive``: neither. Thresholds and effect floors
come from ``cfg/report/thresholds.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
HYPOTHESES = {
    "H1": "Locality via attention: a head (or a layer's heads together) aggregates the 3x3 neighbourhood of the "
          "board at t into each target.",
    "H2": "Linear world variables: neighbour count and next state are linearly decodable from the residual.",
    "H3": "Physics tokens usage: the model reads the rule tokens and its predictions depend on them causally.",
    "H4": "Layer roles: early layers gather local evidence, later layers classify: probes improve across layers, "
          "and the local attention is in the early layers.",
}
REFUTATIONS = {
    "H1": "no head puts more of its board attention on the 8 neighbours than refute_ratio x the uniform share",
    "H2": "the trained model's probes beat the best random-init control by less than refute_margin (R2 and AUC)",
    "H3": "the model is no better than the best rule-blind predictor (gain below the rule_use_gain floor), "
          "or removing the rule-reading path loses less than refute_rule_use of its advantage",
    "H4": "the probes do not improve across layers (the next state's AUC is no better in the late half than in "
          "the early half), the final residual does not classify it, or the late layers are more local than the "
          "early ones"
}

# H1 head roles, from the per-head shares of board attention
AGGREGATES, PARTIAL, SELF_LOOKUP, NON_LOCAL = "aggregates", "partial", "self-lookup", "non-local"


@dataclass
class HeadRole:
    layer: int
    head: int
    role: str
    own: float
    neighbours: float
    evenness: float
    board: float

    @property
    def name(self) -> str:
        return f"L{self.layer}H{self.head}"


def head_roles(h1: dict, th: dict) -> list[HeadRole]:
    """Every head's locality role. A head *aggregates* when most of its board attention is on the 8
    neighbours and spread over them; a *self-lookup* head reads mainly its own cell; a *partial*
    head is local (3x3 share well above uniform) without either; the rest are *non-local*."""
    roles = []
    for (layer, head), own in np.ndenumerate(np.nan_to_num(np.array(h1["own_share"], dtype=float))):
        neighbours = float(np.nan_to_num(h1["neighbour_share"][layer][head]))
        evenness = float(np.nan_to_num(h1["neighbour_evenness"][layer][head]))
        board = float(h1["board_share"][layer][head])
        stencil = own + neighbours
        if (neighbours >= th["aggregate_neighbour_share"] and evenness >= th["aggregate_evenness"]
                and board >= th["aggregate_board_share"]):
            role = AGGREGATES
        elif own >= th["self_lookup_own_share"]:
            role = SELF_LOOKUP
        elif stencil >= th["partial_stencil_ratio"] * h1["uniform_baseline"]:
            role = PARTIAL
        else:
            role = NON_LOCAL
        roles.append(HeadRole(int(layer), int(head), role, float(own), neighbours, evenness, board))
    return roles


def joint_aggregators(h1: dict, th: dict, roles: list[HeadRole]) -> list[tuple[list[HeadRole], float]]:
    """Per layer without a single aggregating head: its local heads (8-neighbour and board shares above
    the aggregation thresholds) when together they cover the 8 neighbours evenly, with the combined
    evenness. A model may tile the neighbourhood with several heads, each reading a few neighbours."""
    groups = []
    profile = np.array(h1["stencil_profile"], dtype=float)  # [layer, head, 9]
    for layer in sorted({r.layer for r in roles}):
        here = [r for r in roles if r.layer == layer]
        if any(r.role == AGGREGATES for r in here):
            continue
        local = [r for r in here if r.neighbours >= th["aggregate_neighbour_share"]
                 and r.board >= th["aggregate_board_share"]]
        if len(local) < 2:
            continue
        combined = np.delete(profile[layer, [r.head for r in local]].sum(0), 4)  # the 8 neighbours
        evenness = float(combined.min() / max(combined.mean(), 1e-12))
        if evenness >= th["aggregate_evenness"]:
            groups.append((local, evenness))
    return groups


def _describe(role: HeadRole) -> str:
    return (f"{role.name}: 8-neighbour share {role.neighbours:.2f}, evenness {role.evenness:.2f}, "
            f"own cell {role.own:.2f}, board share {role.board:.2f}")


def aggregating_layers(h1: dict, th: dict) -> dict[int, str]:
    """Layer -> the head, or the group of heads, that aggregates the neighbourhood there."""
    roles = head_roles(h1, th)
    found = {}
    for r in sorted((r for r in roles if r.role == AGGREGATES), key=lambda r: -r.neighbours * r.evenness):
        found.setdefault(r.layer, r.name)
    for group, _ in joint_aggregators(h1, th, roles):
        found[group[0].layer] = "+".join(r.name for r in group)
    return found


def verdict_h1(h1: dict, th: dict) -> tuple[str, str]:
    roles = head_roles(h1, th)
    aggregators = sorted((r for r in roles if r.role == AGGREGATES), key=lambda r: -r.neighbours * r.evenness)
    groups = joint_aggregators(h1, th, roles)
    grouped = {r.name for heads, _ in groups for r in heads}
    others = {kind: [r for r in roles if r.role == kind and r.name not in grouped] for kind in (SELF_LOOKUP, PARTIAL)}
    lead = aggregators[0] if aggregators else max(roles, key=lambda r: r.neighbours)
    if aggregators:
        why = f"aggregating head {_describe(lead)}"
    elif groups:
        heads, evenness = groups[0]
        why = (f"heads {'+'.join(r.name for r in heads)} aggregate jointly: together evenness {evenness:.2f} over "
               f"the 8 neighbours, each alone 8-neighbour share {min(r.neighbours for r in heads):.2f}-"
               f"{max(r.neighbours for r in heads):.2f}, evenness {min(r.evenness for r in heads):.2f}-"
               f"{max(r.evenness for r in heads):.2f}")
    else:
        why = f"no aggregating head; most neighbour attention {_describe(lead)}"
    why += f" (uniform 8-neighbour share {h1['neighbour_uniform_baseline']:.3f})"
    for kind, found in others.items():
        if found:
            why += f"; {kind}: " + ", ".join(f"{r.name} (own {r.own:.2f}, evenness {r.evenness:.2f})" for r in found)
    if aggregators or groups:
        return SUPPORTED, why
    if lead.neighbours < th["refute_ratio"] * h1["neighbour_uniform_baseline"]:
        return NOT_SUPPORTED, why
    return INCONCLUSIVE, why


def _control_spread(runs: list[list[dict]], key: str) -> tuple[float, float, float]:
    """(mean, min, max) over the controls of each control's best value over layers."""
    best = [max(r[key] for r in layers) for layers in runs]
    return float(np.mean(best)), min(best), max(best)


def verdict_h2(h2: dict, th: dict) -> tuple[str, str]:
    res = h2["results"]["target"]
    r2 = max(r["count_r2"] for r in res["trained"])
    auc = max(r["next_auc"] for r in res["trained"])
    r2_mean, r2_lo, r2_hi = _control_spread(res["random_init"], "count_r2")
    auc_mean, auc_lo, auc_hi = _control_spread(res["random_init"], "next_auc")
    r2_shuf = max(r["count_r2"] for r in res["shuffled_labels"])
    n = len(res["random_init"])
    why = (f"count R2 best {r2:.3f} (random init {r2_mean:.3f}, range {r2_lo:.3f}-{r2_hi:.3f} over {n} inits; "
           f"shuffled {r2_shuf:.3f}); next-state AUC best {auc:.4f} (random init {auc_mean:.3f}, "
           f"range {auc_lo:.3f}-{auc_hi:.3f})")
    if (r2 >= th["support_count_r2"] and auc >= th["support_next_auc"] and r2 - r2_hi >= th["support_margin"]
            and auc - auc_hi >= th["support_margin"] and r2_shuf <= th["max_shuffled_r2"]):
        return SUPPORTED, why
    if r2 - r2_hi < th["refute_margin"] and auc - auc_hi < th["refute_margin"]:
        return NOT_SUPPORTED, why
    return INCONCLUSIVE, why


def _at_least(value: float | None, threshold: float) -> bool:
    return value is not None and not math.isnan(value) and value >= threshold


def verdict_h3(h3: dict, th: dict) -> tuple[str, str]:
    path, flip, patch = h3["rule_path"], h3["flip_mean"], h3["patching"]
    gain, use = path["clean_acc"] - path["rule_blind_best"], path["rule_use"]
    mass = float(np.max(h3["rule_attention_mass"]))
    ratio = mass / h3["rule_attention_uniform"]
    if patch.get("skipped"):
        patched = "skipped at this board size"
    elif patch["no_effect"]:
        patched = f"no effect (flip effect {patch['effect_logit']:.3f} logits)"
    else:
        patched = (f"best head L{patch['best_head']['layer']}H{patch['best_head']['head']} restores "
                   f"{patch['best_head']['share']:.2f} of a {patch['effect_logit']:.1f}-logit flip effect")
    why = (f"held-out accuracy {path['clean_acc']:.3f} vs best rule-blind {path['rule_blind_best']:.3f} "
           f"(gain {gain:+.3f}); rule values ablated: {path['ablated_acc']:.3f}, "
           f"rule use {'no effect' if use is None else f'{use:.2f}'}; max rule-token attention {mass:.2f} = "
           f"{ratio:.1f}x uniform; flip consistency precision {flip['precision']:.3f}, recall {flip['recall']:.3f}; "
           f"patching: {patched}")
    if (gain >= th["support_gain"] and _at_least(use, th["support_rule_use"])
            and ratio >= th["support_rule_attention_ratio"] and _at_least(flip["precision"], th["support_flip"])
            and _at_least(flip["recall"], th["support_flip"])):
        return SUPPORTED, why
    if use is None or use < th["refute_rule_use"]:
        return NOT_SUPPORTED, why
    return INCONCLUSIVE, why


def layer_profile(h1: dict, h2: dict, lens: dict) -> dict[str, list[float]]:
    """Per layer: its locality (the largest share of a head's whole attention on the query's 8 neighbours), the
    largest share on the query's own cell, the heads' mean share off the board (rule tokens, separators, targets),
    and after it the next state's probe AUC and the neighbour count's R2 at the targets and the logit lens' accuracy.
    (The governing rule bit is the next state by definition, and the case is the own state and the count: their
    probes are these.)"""
    board = np.array(h1["board_share"], dtype=float)
    locality = (np.nan_to_num(np.array(h1["neighbour_share"], dtype=float)) * board).max(1)
    own = (np.nan_to_num(np.array(h1["own_share"], dtype=float)) * board).max(1)
    trained = h2["results"]["target"]["trained"][1:]  # after each layer (the first point is the embedding)
    return {"locality": locality.tolist(), "own": own.tolist(), "off_board": (1 - board).mean(1).tolist(),
            "next_auc": [float(r["next_auc"]) for r in trained],
            "count_r2": [float(r["count_r2"]) for r in trained], "lens_acc": [float(a) for a in lens["acc"][1:]]}


def verdict_h4(h1: dict, h2: dict, lens: dict, h1_th: dict, th: dict) -> tuple[str, str]:
    """The early half of the layers gathers local evidence (an aggregating head there, and more of its attention on
    the neighbours than the late half's), and the probes improve across layers (the next state's AUC best in the
    late half by a margin, and the final residual classifies it)."""
    p = layer_profile(h1, h2, lens)
    n = len(p["locality"])
    half = (n + 1) // 2
    early, late = slice(0, half), slice(half, n)
    if n < 2:
        why = f"one layer: no early and late half to compare; final lens {p['lens_acc'][-1]:.3f}"
        return (NOT_SUPPORTED if p["lens_acc"][-1] < th["refute_final_lens"] else INCONCLUSIVE), why
    aggregating = [layer for layer in aggregating_layers(h1, h1_th) if layer < half]
    loc_gain = float(np.mean(p["locality"][early]) - np.mean(p["locality"][late]))
    probe_gain = float(np.nanmax(p["next_auc"][late]) - np.nanmax(p["next_auc"][early]))
    final = p["lens_acc"][-1]
    why = (f"aggregation in layers 0-{half - 1}: {', '.join(f'L{x}' for x in aggregating) or 'none'}; locality by "
           f"layer {', '.join(f'{v:.2f}' for v in p['locality'])} (early minus late {loc_gain:+.2f}); next-state "
           f"AUC after each layer {', '.join(f'{v:.3f}' for v in p['next_auc'])} (late best minus early best "
           f"{probe_gain:+.3f}); count R2 by layer {', '.join(f'{v:.2f}' for v in p['count_r2'])}; final lens "
           f"{final:.4f}")
    if probe_gain < th["refute_probe_gain"] or final < th["refute_final_lens"] or loc_gain < -th["locality_margin"]:
        return NOT_SUPPORTED, why
    if (aggregating and loc_gain >= th["locality_margin"] and probe_gain >= th["support_probe_gain"]
            and final >= th["late_lens_acc"]):
        return SUPPORTED, why
    return INCONCLUSIVE, why


class Verdict(NamedTuple):
    """One hypothesis' verdict over the data seeds, its numbers per seed, and notes (e.g. that the seeds differ)."""

    verdict: str
    per_seed: list[str]
    notes: list[str]

    @property
    def reasons(self) -> list[str]:
        """The lines a page prints: each seed's numbers, then the notes."""
        return [f"seed {i}: {why}" for i, why in enumerate(self.per_seed)] + self.notes


def combine(per_seed: list[tuple[str, str]]) -> Verdict:
    """One verdict over seeds: the common one, or inconclusive when they disagree."""
    verdicts = {v for v, _ in per_seed}
    whys = [why for _, why in per_seed]
    if len(verdicts) == 1:
        return Verdict(verdicts.pop(), whys, [])
    return Verdict(INCONCLUSIVE, whys, ["verdicts differ between seeds: inconclusive"])


def all_verdicts(runs: list[dict], th: dict) -> dict[str, Verdict]:
    """H1-H4 over the analyses of every data seed (each run: the ``h1``, ``h2``, ``h3``, ``lens`` numbers)."""
    return {
        "H1": combine([verdict_h1(r["h1"], th["h1"]) for r in runs]),
        "H2": combine([verdict_h2(r["h2"], th["h2"]) for r in runs]),
        "H3": combine([verdict_h3(r["h3"], th["h3"]) for r in runs]),
        "H4": combine([verdict_h4(r["h1"], r["h2"], r["lens"], th["h1"], th["h4"]) for r in runs]),
    }


def headline(h: str, run: dict) -> str:
    """The one number per hypothesis shown in a control column."""
    if h == "H1":
        share = np.nan_to_num(np.array(run["h1"]["neighbour_share"], dtype=float))
        return f"best 8-neighbour share {share.max():.2f} (uniform {run['h1']['neighbour_uniform_baseline']:.2f})"
    if h == "H2":
        res = run["h2"]["results"]["target"]
        return (f"count R2 {max(r['count_r2'] for r in res['trained']):.2f}, "
                f"next AUC {max(r['next_auc'] for r in res['trained']):.3f}")
    if h == "H3":
        path = run["h3"]["rule_path"]
        use = "no effect" if path["rule_use"] is None else f"{path['rule_use']:.2f}"
        return f"gain over rule-blind {path['clean_acc'] - path['rule_blind_best']:+.3f}, rule use {use}"
    p = layer_profile(run["h1"], run["h2"], run["lens"])
    return (f"locality by layer {'/'.join(f'{v:.2f}' for v in p['locality'])}, next AUC by layer "
            f"{'/'.join(f'{v:.2f}' for v in p['next_auc'])}")
