"""How the model computes: importance, the minimal circuit, roles in input variables tested by interchange,
idealised heads, the lookup at neuron level, and the algorithm card.

    python explorations/circuit.py [--run-id ID | --ckpt PATH] [--samples 256]
                                                 (also: python -m interfere.explore.circuit)

1. **Importance** and the **minimal circuit** (:mod:`interfere.explore.components`): accuracy with each
   head and MLP mean-ablated alone, and the smallest set that keeps ``sufficient_acc`` with the rest
   mean-ablated.
2. **Roles** (:mod:`interfere.explore.interchange`): for every component at the board positions, the t+1
   targets and the physics tokens, the coarsest input variables (own, count, count9, case, pattern3x3,
   rule and their ``+``-joins; ``none``: mean-ablated) such that replacing its output by a donor's that
   agrees on them keeps ``role_acc`` with ``min_coverage`` donors. The last MLP at the targets finishes
   the lookup and stays computed. A role that fixes the answer at a target (``case+rule``) is used only
   where nothing coarser holds, and the card shows what the next-coarser candidate keeps. The output
   replaced by its *mean* given the same variables is reported next to it as a second, labelled number:
   it is not the test.
3. **The account**: every role replaced at once (only the lookup computed), and the board-position roles
   alone (the targets left computed); accuracy and donor coverage.
4. **Idealised heads**: a head whose board or target role is local gets a hand-written attention pattern
   (its own cell, the 8 neighbours, the 3x3 block, or the rule tokens: whichever is closest to its
   measured one) in place of its own, through ``hook_pattern``.
5. **The lookup at neuron level** (:mod:`interfere.explore.lookup`).
6. **Where variables appear**: least-squares linear probes at the targets after every sublayer, with a
   random-init control.

The ``algorithm`` block of summary.json is the machine-readable account; the card and the report section
are rendered from it. Thresholds: the ``circuit`` section of the thresholds file, passed in.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from interfere.ca.rules import BIT_NAMES, N_RULE_BITS
from interfere.data.stream import random_boards
from interfere.explore import lookup
from interfere.explore.analysis import Examples, Want, at_positions, linear_probes
from interfere.explore.common import Context, add_samples_arg, examples_of, parser, run_main
from interfere.explore.components import (
    Component,
    accuracy,
    all_components,
    importance,
    minimal_circuit,
    reference_outputs,
)
from interfere.explore.ideal import idealised_heads
from interfere.explore.interchange import (
    ANSWER_FIXING,
    CELL_ROLES,
    GROUPS,
    PHYSICS_ROLES,
    Interchange,
    Replacement,
    coverage,
)
from interfere.explore.logit_lens import residual_points
from interfere.explore.probes import board_split, random_twin
from interfere.model.life_model import LifeTransformer
from interfere.thresholds import load_thresholds
from interfere.viz.style import ACCENT, ACCENT_2, CONTROL_COLOR, INK, SEQ_CMAP, WRONG_COLOR, caption, save

NAME = "circuit"


@dataclass
class Params:
    samples: int = 256
    donors_per_rule: int = 8  # donor boards per rule of the examples (interchange needs same-rule donors)
    lookup_boards: int = 64  # boards for the neuron-level lookup (18 flipped forwards each)
    density: tuple[float, float] = (0.1, 0.9)  # the donor boards' live-cell density range (the data's)
    seed: int = 0
    thresholds: dict = field(default_factory=load_thresholds)  # its circuit section is applied


@dataclass
class Result:
    samples: int
    donors: int
    clean_acc: float
    importance: dict[str, float]
    circuit: list[str]
    circuit_acc: float
    circuit_search: str
    roles: dict  # "L0H0@board" -> {"uses", "acc", "coverage", "tried": {role: [acc, coverage]}, "mean_given": acc}
    account: dict  # all_at_once / board_roles: {"acc", "coverage"}
    idealised: dict
    lookup: dict
    probes: dict
    probes_random_init: dict
    first_decodable: dict
    algorithm: dict
    card: list[str]
    verdict: str
    verdict_reason: str
    thresholds: dict


def wants(model: LifeTransformer, params: Params) -> list[Want]:
    """The probes' residuals at the targets (the same cut the logit lens and H2's probes read)."""
    view = at_positions("targets", model.layout.targets[0])
    return [(hook, view) for _, hook in probe_points(model.cfg.n_layers)]


def donor_pool(model: LifeTransformer, ex: Examples, params: Params) -> Examples:
    """``donors_per_rule`` fresh boards for every rule of the examples (their own seed)."""
    rules = torch.unique(ex.rules, dim=0).repeat_interleave(params.donors_per_rule, 0)
    g = torch.Generator().manual_seed(params.seed + 303)
    boards = random_boards(len(rules), model.layout.height, model.layout.width, *params.density, g)
    return examples_of(model, rules, boards)


def measure(model: LifeTransformer, ex: Examples, params: Params) -> Result:
    th = params.thresholds["circuit"]
    donors = donor_pool(model, ex, params)
    comps = all_components(model)
    outputs = reference_outputs(model, donors.tokens, comps)
    means = {c: o.mean(0) for c, o in outputs.items()}
    screen, confirm = ex.head(max(16, len(ex) // 8)), ex.head(max(32, len(ex) // 2))
    single = importance(model, ex, means)
    circuit, circuit_acc, search = minimal_circuit(model, ex, means, th["sufficient_acc"], screen, single)
    swap = Interchange(model, donors, outputs, params.seed)
    roles = find_roles(model, swap, confirm, screen, th)
    account = {"all_at_once": account_test(model, swap, ex, roles, GROUPS),
               "board_roles": account_test(model, swap, ex, roles, ("board",))}
    ideal = idealised_heads(model, ex, roles, donors.head(len(screen)))
    found = lookup_set(model, ex.head(min(len(ex), params.lookup_boards)), params.seed, th)
    probes = variable_probes(model, ex, params.seed)
    control = variable_probes(random_twin(model, params.seed), examples_of(random_twin(model, params.seed),
                                                                           ex.rules, ex.boards), params.seed)
    algorithm = algorithm_block(model, roles, found, account)
    clean = accuracy(model, ex)
    verdict = card_verdict(account, found, th)
    decodable = first_decodable(probes, th)
    card = algorithm_card(algorithm, roles, account, ideal, found, decodable, clean)
    return Result(
        samples=len(ex), donors=len(donors), clean_acc=clean, importance={c.name: a for c, a in single.items()},
        circuit=[c.name for c in circuit], circuit_acc=circuit_acc, circuit_search=search, roles=roles,
        account=account, idealised=ideal, lookup=found, probes=probes, probes_random_init=control,
        first_decodable=decodable, algorithm=algorithm, card=card, verdict=verdict[0], verdict_reason=verdict[1],
        thresholds=th)


# --- roles ---------------------------------------------------------------------------------------
def slot(c: Component, group: str) -> str:
    return f"{c.name}@{group}"


def is_lookup(model: LifeTransformer, c: Component, group: str) -> bool:
    """The component that finishes the lookup: the last MLP at the targets (left computed)."""
    return c.head is None and c.layer == model.cfg.n_layers - 1 and group == "targets"


def test_role(model: LifeTransformer, swap: Interchange, c: Component, group: str, role: str,
              ex: Examples) -> tuple[float, float]:
    """(accuracy, coverage) with this one component at this group replaced under ``role``."""
    rep = {(c, group): swap.replacement(c, group, role, ex)}
    return accuracy(model, ex, swap.hooks(rep)), coverage(rep)


def find_roles(model: LifeTransformer, swap: Interchange, ex: Examples, screen: Examples, th: dict) -> dict:
    """Every component's coarsest role per group: candidates screened on ``screen`` (an eighth of the
    examples), the first that passes confirmed on ``ex`` (half of them); the account then tests all."""
    roles = {}
    for c in all_components(model):
        for group in GROUPS:
            if is_lookup(model, c, group):
                roles[slot(c, group)] = {"component": c.name, "group": group, "uses": "computed"}
                continue
            roles[slot(c, group)] = coarsest_role(model, swap, c, group, ex, screen, th)
    return roles


def coarsest_role(model: LifeTransformer, swap: Interchange, c: Component, group: str, ex: Examples,
                  screen: Examples, th: dict) -> dict:
    tried: dict[str, list[float]] = {}
    for role in PHYSICS_ROLES if group == "physics" else CELL_ROLES:
        tried[role] = list(test_role(model, swap, c, group, role, screen))
        if tried[role][0] >= th["role_acc"] and tried[role][1] >= th["min_coverage"]:
            tried[role] = list(test_role(model, swap, c, group, role, ex))
            if tried[role][0] >= th["role_acc"] and tried[role][1] >= th["min_coverage"]:
                mean = (accuracy(model, ex, swap.hooks({(c, group): swap.conditional_mean(c, group, role, ex)}))
                        if role != "none" else None)
                return {"component": c.name, "group": group, "uses": role, "acc": tried[role][0],
                        "coverage": tried[role][1], "tried": tried, "mean_given": mean}
    return {"component": c.name, "group": group, "uses": "unexplained", "tried": tried}


def account_test(model: LifeTransformer, swap: Interchange, ex: Examples, roles: dict,
                 groups: tuple[str, ...]) -> dict:
    """Accuracy and donor coverage with every role of these groups replaced at once (unexplained and the
    lookup computed)."""
    reps: dict[tuple[Component, str], Replacement] = {}
    for r in roles.values():
        if r["group"] in groups and r["uses"] not in ("computed", "unexplained"):
            c = next(c for c in all_components(model) if c.name == r["component"])
            reps[(c, r["group"])] = swap.replacement(c, r["group"], r["uses"], ex)
    unexplained = [k for k, r in roles.items() if r["group"] in groups and r["uses"] == "unexplained"]
    return {"acc": accuracy(model, ex, swap.hooks(reps)), "coverage": coverage(reps), "left_computed": unexplained}


# --- the lookup ----------------------------------------------------------------------------------
def lookup_set(model: LifeTransformer, ex: Examples, seed: int, th: dict) -> dict:
    """The smallest ranked set of last-MLP neurons that carries the governing bit (module lookup)."""
    flips = lookup.collect(model, ex, seed)
    ranked, k = lookup.smallest_set(model, flips, th["lookup_carry"], th["lookup_leak"])
    d_mlp = flips.clean.shape[-1]
    size = k or d_mlp
    neurons = ranked[:size]
    carry, leak = lookup.carry_and_leak(model, flips, neurons)
    all_carry, all_leak = lookup.carry_and_leak(model, flips, torch.arange(d_mlp))
    random_carry, random_leak = lookup.random_control(model, flips, size, seed)
    hooked = float((lookup_hooked_predictions(model, ex, flips, neurons) == 1 - flips.truth).float().mean())
    named = lookup.neuron_names(flips, ex.rules, neurons.tolist())
    return {"component": f"MLP{model.cfg.n_layers - 1}", "found": k is not None, "neurons": neurons.tolist(),
            "size": size, "d_mlp": d_mlp, "carry": carry, "leak": leak, "carry_hooked": hooked,
            "random_carry": random_carry, "random_leak": random_leak, "all_carry": all_carry, "all_leak": all_leak,
            "groups": lookup.group_names(named), "boards": len(ex)}


def lookup_hooked_predictions(model: LifeTransformer, ex: Examples, flips: lookup.Flips,
                              neurons: torch.Tensor) -> torch.Tensor:
    """The governing-flip patch through the hooked model itself (checks the direct computation)."""
    from interfere.explore import batched

    hooks = lookup.patched_hook(flips, neurons, model.layout.targets[0], model.cfg.n_layers - 1)
    logits = batched.target_logits(model, ex.tokens, hooks)[:, : model.layout.n_cells]
    return logits.argmax(-1)


# --- probes: where each variable becomes linearly decodable ----------------------------------------
def probe_points(n_layers: int) -> list[tuple[str, str]]:
    """(label, hook) after every sublayer: the embedding, then attention and MLP of each layer (the
    residual after a layer is read where the logit lens reads it, so one forward serves both)."""
    after = dict(residual_points(n_layers))
    points = [("embed", after["embed"])]
    for layer in range(n_layers):
        points += [(f"L{layer} attn", f"blocks.{layer}.hook_resid_mid"), (f"L{layer} MLP", after[f"after L{layer}"])]
    return points


def variable_probes(model: LifeTransformer, ex: Examples, seed: int) -> dict[str, list[float]]:
    """Held-out linear probe scores at the targets per point (least squares, split by board): AUC for the
    own state, each rule bit and the next state, R2 for the count."""
    train, test = board_split(len(ex.boards), seed)
    n = model.layout.n_cells
    labels = {"own": ex.boards.flatten(1), "count": ex.counts.flatten(1), "next": ex.next_boards.flatten(1),
              **{f"rule {b}": ex.rules[:, b : b + 1].expand(-1, n) for b in range(N_RULE_BITS)}}
    out: dict[str, list[float]] = {k: [] for k in labels}
    for hook, view in wants(model, None):
        scores = linear_probes(ex.act(hook, view), labels, torch.from_numpy(test))
        for key, value in scores.items():
            out[key].append(value)
    return {"points": [p for p, _ in probe_points(model.cfg.n_layers)], **out}


def first_decodable(probes: dict[str, list[float]], th: dict) -> dict[str, str | None]:
    """The first probe point where each variable is decodable (AUC or, for the count, R2 at threshold)."""
    rules = np.array([probes[f"rule {b}"] for b in range(N_RULE_BITS)], dtype=float)
    series = {"own state": probes["own"], "neighbour count": probes["count"],
              "the rule bits on average": np.nanmean(rules, 0), "every rule bit": np.nanmin(rules, 0),
              "governing bit value (= next state)": probes["next"]}
    out = {}
    for name, values in series.items():
        need = th["decodable_r2"] if name == "neighbour count" else th["decodable_auc"]
        out[name] = next((p for p, v in zip(probes["points"], values) if v >= need), None)
    return out


# --- the account, the card and the verdict ----------------------------------------------------------
def algorithm_block(model: LifeTransformer, roles: dict, found: dict, account: dict) -> dict:
    """The machine-readable account: every head and MLP at the board, target and physics positions
    ("all" where one role holds at all three), and the lookup's neurons."""
    components = []
    for c in all_components(model):
        uses = {g: roles[slot(c, g)]["uses"] for g in GROUPS}
        if len(set(uses.values())) == 1:
            components.append({"component": c.name, "positions": "all", "uses": uses["board"]})
        else:
            components += [{"component": c.name, "positions": g, "uses": u} for g, u in uses.items()]
    return {"components": components,
            "lookup": {"component": found["component"], "neurons": found["neurons"], "carry": found["carry"],
                       "leak": found["leak"], "random_carry": found["random_carry"]},
            "interchange": {k: {"acc": v["acc"], "coverage": v["coverage"]} for k, v in account.items()}}


def role_line(r: dict) -> str:
    """One role with its numbers: interchange accuracy and coverage, the next-coarser candidate, the mean."""
    if r["uses"] == "unexplained":
        best = max(r["tried"].items(), key=lambda kv: kv[1][0])
        return (f"{r['component']} at {r['group']}: no input variables explain it (best: {best[0]}, "
                f"{100 * best[1][0]:.2f}% kept, coverage {100 * best[1][1]:.0f}%)")
    if r["uses"] == "none":
        return f"{r['component']} at {r['group']}: none (mean-ablated: {100 * r['acc']:.2f}% kept)"
    order = list(r["tried"])
    coarser = order[order.index(r["uses"]) - 1] if order.index(r["uses"]) > 0 else None
    line = (f"{r['component']} at {r['group']}: uses {r['uses']} (interchange {100 * r['acc']:.2f}% kept, "
            f"{100 * r['coverage']:.0f}% of cells with a donor")
    if coarser:
        line += f"; {coarser} keeps {100 * r['tried'][coarser][0]:.2f}%"
    if r.get("mean_given") is not None:
        line += f"; replaced by its mean given {r['uses']}, not the test: {100 * r['mean_given']:.2f}%"
    if r["uses"] in ANSWER_FIXING and r["group"] == "targets":
        line += "; this fixes the answer at a target and says little"
    return line + ")"


def algorithm_card(algorithm: dict, roles: dict, account: dict, ideal: dict, found: dict, decodable: dict,
                   clean: float) -> list[str]:
    """Plain lines rendered from the account, each with the number that tests it."""
    lines = [role_line(r) for r in roles.values() if r["uses"] not in ("computed",)
             and not (r["uses"] == "none" and r["acc"] >= 0.9995)]
    quiet = [f"{r['component']}@{r['group']}" for r in roles.values() if r["uses"] == "none" and r["acc"] >= 0.9995]
    if quiet:
        lines.append(f"Not needed (mean-ablated, >= 99.95% kept): {', '.join(quiet)}.")
    a, b = account["all_at_once"], account["board_roles"]
    lines.append(f"All roles at once, only {found['component']} at the targets computed: {100 * a['acc']:.2f}% "
                 f"held-out cell accuracy (clean {100 * clean:.2f}%), {100 * a['coverage']:.1f}% donor coverage.")
    lines.append(f"Board-position roles alone (targets computed): {100 * b['acc']:.2f}%, "
                 f"{100 * b['coverage']:.1f}% coverage.")
    for head, i in ideal.get("heads", {}).items():
        lines.append(f"{head} idealised as '{i['pattern']}' attention (hand-written): {100 * i['acc']:.2f}% kept.")
    if ideal.get("heads"):
        lines.append(f"Every idealised head at once: {100 * ideal['all_at_once']:.2f}%.")
    groups = "; ".join(f"{len(g['neurons'])} {g['state']} with {g['counts']} neighbours (read "
                       + ", ".join(g["reads"]) + ")" for g in found["groups"][:6])
    lines.append(f"The lookup: {found['size']} of {found['d_mlp']} {found['component']} neurons carry "
                 f"{100 * found['carry']:.1f}% of governing-bit flips (through the hooked model "
                 f"{100 * found['carry_hooked']:.1f}%) and leak {100 * found['leak']:.2f}% of non-governing ones; "
                 f"random sets of that size carry {100 * found['random_carry']:.1f}%, all neurons "
                 f"{100 * found['all_carry']:.1f}%" + (f". By response: {groups}." if groups else "."))
    where = "; ".join(f"{k} from {v}" if v else f"{k} never" for k, v in decodable.items())
    lines.append(f"Linearly decodable at the targets: {where}.")
    return lines


def card_verdict(account: dict, found: dict, th: dict) -> tuple[str, str]:
    """``supported`` when the account holds at once and on the board alone (accuracy and coverage) and the
    lookup set carries the governing bit without leaking; ``not supported`` below ``refute_acc``."""
    a, b = account["all_at_once"], account["board_roles"]
    holds = lambda t: t["acc"] >= th["account_acc"] and t["coverage"] >= th["min_coverage"]  # noqa: E731
    lookup_ok = found["found"] and found["carry"] >= th["lookup_carry"] and found["leak"] <= th["lookup_leak"]
    why = (f"all roles at once keep {100 * a['acc']:.2f}% ({100 * a['coverage']:.0f}% coverage), board roles "
           f"alone {100 * b['acc']:.2f}%; the lookup's {found['size']} neurons carry {100 * found['carry']:.1f}% "
           f"and leak {100 * found['leak']:.2f}%" + (f"; left computed: {', '.join(a['left_computed'])}"
                                                      if a["left_computed"] else ""))
    if a["acc"] < th["refute_acc"]:
        return "not supported", why
    if holds(a) and holds(b) and lookup_ok and not a["left_computed"]:
        return "supported", why
    return "inconclusive", why


# --- figures -----------------------------------------------------------------------------------------
def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    return [importance_figure(result, out, provenance), probes_figure(result, out, provenance)]


def importance_figure(r: Result, out: Path, provenance: Callable[..., str]) -> Path:
    """Layer x component heatmap of accuracy under mean ablation, circuit outlined, target roles written in."""
    names = list(r.importance)
    n_layers = 1 + max(int(n[3:]) if n.startswith("MLP") else int(n[1:].split("H")[0]) for n in names)
    cols = [n for n in names if n.startswith("L0")] + ["MLP"]
    grid = np.array([[r.importance[c.replace("L0", f"L{l}") if c != "MLP" else f"MLP{l}"] for c in cols]
                     for l in range(n_layers)])
    fig, ax = plt.subplots(figsize=(2.2 + 1.45 * len(cols), 1.6 + 0.9 * n_layers), layout="constrained")
    im = ax.imshow(grid, cmap=SEQ_CMAP, vmin=0.5, vmax=1.0, aspect="auto")
    for l in range(n_layers):
        for j, col in enumerate(cols):
            name = f"MLP{l}" if col == "MLP" else col.replace("L0", f"L{l}")
            dark = grid[l, j] < 0.8
            ax.text(j, l - 0.12, f"{100 * grid[l, j]:.1f}%", ha="center", va="center", fontsize=8,
                    color="white" if dark else INK)
            ax.text(j, l + 0.22, r.roles[f"{name}@targets"]["uses"], ha="center", va="center", fontsize=6.5,
                    color="white" if dark else INK)
            if name in r.circuit:
                ax.add_patch(Rectangle((j - 0.48, l - 0.48), 0.96, 0.96, fill=False, edgecolor=ACCENT_2, lw=2.2))
    ax.set_xticks(range(len(cols)), [c.replace("L0", "") for c in cols])
    ax.set_yticks(range(n_layers), [f"L{l}" for l in range(n_layers)])
    ax.set_title(f"accuracy with one component mean-ablated (clean {100 * r.clean_acc:.2f}%)\n"
                 f"outlined: the minimal circuit ({len(r.circuit)}); text: each one's role at the targets")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02).set_label("held-out t+1 cell accuracy")
    caption(fig, provenance(samples=r.samples))
    return save(fig, out / "circuit_importance.png")


def probes_figure(r: Result, out: Path, provenance: Callable[..., str]) -> Path:
    """Where each variable becomes linearly decodable at the targets, trained vs random init."""
    probes, control = r.probes, r.probes_random_init
    x = range(len(probes["points"]))
    nan = lambda v: np.array([np.nan if e is None else e for e in v], dtype=float)  # noqa: E731
    rules = np.array([nan(probes[f"rule {b}"]) for b in range(N_RULE_BITS)])
    rules_ctrl = np.array([nan(control[f"rule {b}"]) for b in range(N_RULE_BITS)])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
    for key, color, label in (("own", ACCENT, "own state (AUC)"), ("next", WRONG_COLOR, "governing bit = next (AUC)"),
                              ("count", ACCENT_2, "neighbour count (R²)")):
        axes[0].plot(x, nan(probes[key]), "-o", color=color, label=label, ms=4)
        axes[0].plot(x, nan(control[key]), ":", color=color, lw=1)
    axes[0].plot([], [], ":", color=CONTROL_COLOR, label="dotted: random init")
    axes[0].set_title("cell variables at the targets")
    axes[1].fill_between(x, np.nanmin(rules, 0), np.nanmax(rules, 0), color=ACCENT, alpha=0.25, lw=0)
    axes[1].plot(x, np.nanmean(rules, 0), "-o", color=ACCENT, ms=4, label="18 rule bits: mean, range (AUC)")
    axes[1].plot(x, np.nanmean(rules_ctrl, 0), ":", color=CONTROL_COLOR, label="random init: mean")
    axes[1].set_title(f"rule bits at the targets ({', '.join(BIT_NAMES[:2])}, ... {BIT_NAMES[-1]})")
    for ax in axes:
        ax.set_xticks(list(x), probes["points"], rotation=20)
        ax.set_ylim(-0.05, 1.02)
        ax.set_xlabel("residual stream after")
        ax.set_ylabel("held-out probe score")
        ax.legend(frameon=False, fontsize=7, loc="lower right")
    fig.suptitle("Where each variable becomes linearly decodable")
    caption(fig, provenance(samples=r.samples))
    return save(fig, out / "circuit_probes.png")


def build_parser() -> argparse.ArgumentParser:
    p = parser("How the model computes: importance, minimal circuit, roles tested by interchange, the lookup "
               "at neuron level, and an algorithm card.")
    add_samples_arg(p, 256, 8, "boards for every accuracy")
    return p


def params_from_args(args: argparse.Namespace, ctx: Context, thresholds: dict) -> Params:
    return Params(samples=args.samples, density=(ctx.data.density_min, ctx.data.density_max), seed=ctx.seed,
                  thresholds=thresholds)


def main(argv: list[str] | None = None) -> dict:
    numbers = run_main(__spec__.name, argv)
    print(f"verdict: {numbers['verdict']} ({numbers['verdict_reason']})")
    print("\n".join(["algorithm card:"] + [f"  {i + 1}. {line}" for i, line in enumerate(numbers["card"])]))
    return numbers


if __name__ == "__main__":
    main()
