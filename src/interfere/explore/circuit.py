"""How the model computes: component importance, the minimal circuit, tested roles, an algorithm card.

    python explorations/circuit.py [--run-id ID | --ckpt PATH] [--samples 256]
                                                 (also: python -m interfere.explore.circuit)

1. **Importance**: held-out accuracy with each head and MLP mean-ablated alone
   (:mod:`interfere.explore.components`).
2. **Minimal circuit**: the smallest set of components that keeps accuracy >= ``sufficient_acc``
   with every other component mean-ablated (exhaustive up to 12 components, else greedy).
3. **Roles**: for every component, the simplest cell variable V from :data:`VARIABLES` such that
   replacing its output (at the board and target positions) by its mean given V keeps accuracy
   >= ``sufficient_acc``: the claim "this component carries V and nothing else" survived a causal
   test. A component for which no variable suffices is "unexplained" and left intact.
4. **Where variables appear**: linear probes at the target positions after every attention and MLP
   sublayer (held-out boards), for the own state, the neighbour count, each rule bit and the
   governing bit's value (= the next state), with a random-init control.
5. **The algorithm card**: one line per role with its number, and one number for the whole account:
   accuracy with every role replaced at once (components outside the circuit mean-ablated).

Thresholds are in ``cfg/report/thresholds.yaml`` (``circuit``), fixed before the first run.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score, roc_auc_score

from interfere.ca.rules import BIT_NAMES, N_COUNTS, N_RULE_BITS
from interfere.ca.simulate import moore_neighbourhood
from interfere.explore import batched
from interfere.explore.common import Context, Examples, add_samples_arg, parser, run_main
from interfere.explore.components import (
    CellVariable,
    Component,
    accuracy,
    all_components,
    conditional_replacement,
    fixed_pattern_hooks,
    importance,
    minimal_circuit,
    reference_outputs,
    reference_patterns,
)
from interfere.explore.probes import board_split, random_twin
from interfere.model.life_model import LifeTransformer
from interfere.thresholds import load_thresholds
from interfere.viz.style import ACCENT, ACCENT_2, CONTROL_COLOR, INK, SEQ_CMAP, WRONG_COLOR, caption, save

NAME = "circuit"
MAX_PROBE_CELLS = 6_000


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)


def _block_cells(ex: Examples) -> torch.Tensor:
    """``[batch, H*W, 9]``: each cell's 3x3 block (row-major offsets, the cell itself in the middle)."""
    n, h, w = ex.boards.shape
    hood = moore_neighbourhood(h, w)  # [H*W, 9]
    return _flat(ex.boards)[:, hood].float()


def _bits(ex: Examples) -> torch.Tensor:
    return ex.rules[:, None, :].expand(-1, ex.boards[0].numel(), -1).float()


# Candidate roles, simplest first: the first one that keeps the accuracy is the component's role.
# The last two contain the answer (the next state), so they explain least: they say the component
# matters only through the governing bit's value.
VARIABLES: list[CellVariable] = [
    CellVariable("constant", "is not needed beyond its average output",
                 lambda ex: torch.zeros_like(_flat(ex.boards))),
    CellVariable("own", "reads the cell's own state", lambda ex: _flat(ex.boards)),
    CellVariable("count", "counts the 8 neighbours", lambda ex: _flat(ex.counts)),
    CellVariable("n9", "counts the live cells of the 3x3 block (the cell included)",
                 lambda ex: _flat(ex.counts + ex.boards)),
    CellVariable("case", "encodes the (own state, neighbour count) case",
                 lambda ex: _flat(ex.boards) * N_COUNTS + _flat(ex.counts)),
    CellVariable("cells", "reads the 9 cells of the 3x3 block with fixed weights (linear)", _block_cells, linear=True),
    CellVariable("rule", "copies the 18 rule bits (linear in them)", _bits, linear=True),
    CellVariable("cells+rule", "reads the 3x3 cells and the rule bits with fixed weights (linear, no interaction)",
                 lambda ex: torch.cat([_block_cells(ex), _bits(ex)], dim=-1), linear=True),
    CellVariable("next", "writes the next state", lambda ex: _flat(ex.next_boards)),
    CellVariable("case+next", "matters only through the case and its governing bit's value",
                 lambda ex: (_flat(ex.boards) * N_COUNTS + _flat(ex.counts)) * 2 + _flat(ex.next_boards)),
]
UNEXPLAINED = "unexplained"


def find_roles(model: LifeTransformer, ref: Examples, ex: Examples, components: list[Component],
               threshold: float, screen: Examples) -> tuple[dict[Component, str], dict[Component, dict[str, float]]]:
    """Each component's simplest sufficient variable (or UNEXPLAINED), and the accuracy under each
    variable tried (on ``screen``, a smaller batch; the one that passes is confirmed on ``ex``)."""
    grid = [model.layout.board, model.layout.targets[0]]
    ref_out = reference_outputs(model, ref.tokens, components)
    roles, scores = {}, {}
    for c in components:
        scores[c], roles[c] = {}, UNEXPLAINED
        for v in VARIABLES:
            scores[c][v.name] = accuracy(model, screen, conditional_replacement(ref_out, {c: v}, ref, screen, grid))
            if scores[c][v.name] >= threshold:
                scores[c][v.name] = accuracy(model, ex, conditional_replacement(ref_out, {c: v}, ref, ex, grid))
                if scores[c][v.name] >= threshold:
                    roles[c] = v.name
                    break
    return roles, scores


def fixed_pattern_scores(model: LifeTransformer, ref: Examples, ex: Examples, heads: list[Component]
                         ) -> dict[Component, float]:
    """Accuracy with each head's attention (board and target queries) replaced by its mean relative
    pattern: near the clean accuracy, the head attends by position alone; lower, by content."""
    patterns = reference_patterns(model, ref.tokens, heads)
    return {c: accuracy(model, ex, fixed_pattern_hooks(model, patterns, [c])) for c in heads}


def account_accuracy(model: LifeTransformer, ref: Examples, ex: Examples, roles: dict[Component, str]) -> float:
    """Accuracy with every explained component replaced by its role at once (unexplained ones intact)."""
    by_name = {v.name: v for v in VARIABLES}
    claims = {c: by_name[r] for c, r in roles.items() if r != UNEXPLAINED}
    ref_out = reference_outputs(model, ref.tokens, claims)
    hooks = conditional_replacement(ref_out, claims, ref, ex, [model.layout.board, model.layout.targets[0]])
    return accuracy(model, ex, hooks)


# --- probes: where each variable becomes linearly decodable ----------------------------------
def probe_points(n_layers: int) -> list[tuple[str, str]]:
    """(label, hook name) after every sublayer: the embedding, then attention and MLP of each layer."""
    points = [("embed", "blocks.0.hook_resid_pre")]
    for layer in range(n_layers):
        points += [(f"L{layer} attn", f"blocks.{layer}.hook_resid_mid"),
                   (f"L{layer} MLP", f"blocks.{layer}.hook_resid_post")]
    return points


def variable_probes(model: LifeTransformer, ex: Examples, seed: int) -> dict[str, list[float]]:
    """Held-out probe scores at target positions per point: AUC (own, each rule bit, next) and R2 (count)."""
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    points = probe_points(model.cfg.n_layers)
    names = [h for _, h in points]
    cache = batched.cached(model, ex.tokens, names, take=lambda _, act: act[:, model.layout.targets[0]])
    train, test = board_split(len(ex.boards), seed)
    n = model.layout.n_cells
    labels = {"own": _flat(ex.boards), "count": _flat(ex.counts), "next": _flat(ex.next_boards),
              **{f"rule {b}": ex.rules[:, b : b + 1].expand(-1, n).long() for b in range(N_RULE_BITS)}}

    def cells(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return x[mask].reshape(-1, *x.shape[2:])[:MAX_PROBE_CELLS]

    out: dict[str, list[float]] = {k: [] for k in labels}
    for _, name in points:
        x = cache[name].numpy()
        xtr, xte = cells(x, train), cells(x, test)
        mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
        xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
        for key, y in labels.items():
            ytr, yte = cells(y.numpy(), train), cells(y.numpy(), test)
            if key == "count":
                out[key].append(float(r2_score(yte, Ridge(alpha=1.0).fit(xtr, ytr).predict(xte))))
            elif len(np.unique(ytr)) < 2 or len(np.unique(yte)) < 2:
                out[key].append(float("nan"))
            else:
                clf = LogisticRegression(C=0.1, solver="newton-cg", max_iter=100).fit(xtr, ytr)
                out[key].append(float(roc_auc_score(yte, clf.predict_proba(xte)[:, 1])))
    return {"points": [p for p, _ in points], **out}


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


# --- the card --------------------------------------------------------------------------------
WEAK_ROLES = ("case+next",)  # roles that lean on the answer itself: they explain least


def algorithm_card(roles: dict[Component, str], scores: dict[Component, dict[str, float]],
                   patterns: dict[Component, float], decodable: dict[str, str | None], verified: float,
                   threshold: float) -> list[str]:
    """Plain lines, each with the number that verifies it."""
    words = {v.name: v.words for v in VARIABLES}
    by_role: dict[str, list[Component]] = {}
    for c, r in sorted(roles.items()):
        by_role.setdefault(r, []).append(c)
    lines = []
    for variable in [v.name for v in VARIABLES[1:]] + [UNEXPLAINED, "constant"]:
        comps = by_role.get(variable, [])
        if not comps:
            continue
        names = ", ".join(c.name for c in comps)
        if variable == UNEXPLAINED:
            best = {c.name: max(scores[c].values()) for c in comps}
            lines.append(f"{names}: no single cell variable explains {'it' if len(comps) == 1 else 'them'} "
                         f"(the best replacement keeps {', '.join(f'{k} {100 * v:.2f}%' for k, v in best.items())})")
        elif variable == "constant":
            lines.append(f"{names}: not needed (mean-ablated, accuracy stays "
                         f"{min(100 * scores[c]['constant'] for c in comps):.2f}% or more)")
        else:
            kept = min(100 * scores[c][variable] for c in comps)
            lines.append(f"{names}: {words[variable]} (output replaced by its mean given that: {kept:.2f}% kept)")
    needed = [c for c in patterns if roles[c] != "constant"]
    positional = [c for c in needed if patterns[c] >= threshold]
    content = [c for c in needed if patterns[c] < threshold]
    if needed:
        lines.append("Heads that attend by position alone (their mean relative pattern keeps the accuracy): "
                     + (", ".join(f"{c.name} ({100 * patterns[c]:.2f}%)" for c in positional) or "none")
                     + "; by content too: "
                     + (", ".join(f"{c.name} ({100 * patterns[c]:.2f}% with a fixed pattern)" for c in content)
                        or "none") + ".")
    where = "; ".join(f"{k} from {v}" if v else f"{k} never" for k, v in decodable.items())
    lines.append(f"Linearly decodable at the targets: {where}.")
    lines.append(f"All roles replaced at once: {100 * verified:.2f}% held-out cell accuracy.")
    return lines


def card_verdict(roles: dict[Component, str], verified: float, th: dict) -> tuple[str, str]:
    """``supported`` when every needed component has a role that does not lean on the answer and all
    roles at once keep ``explained_acc``; ``not supported`` below ``refute_acc``; else inconclusive."""
    needed = {c: r for c, r in roles.items() if r != "constant"}
    weak = [c.name for c, r in needed.items() if r in WEAK_ROLES]
    missing = [c.name for c, r in needed.items() if r == UNEXPLAINED]
    why = (f"all roles at once keep {100 * verified:.2f}%; {len(needed) - len(weak) - len(missing)} of {len(needed)} "
           f"needed components have a role of their own"
           + (f"; only through the answer: {', '.join(weak)}" if weak else "")
           + (f"; unexplained: {', '.join(missing)}" if missing else ""))
    if verified < th["refute_acc"]:
        return "not supported", why
    if verified >= th["explained_acc"] and not weak and not missing:
        return "supported", why
    return "inconclusive", why


def run(ctx: Context, args: argparse.Namespace) -> tuple[dict, list[Path]]:
    th = load_thresholds()["circuit"]
    model, t0 = ctx.model, time.perf_counter()
    ex, ref = ctx.examples(args.samples), ctx.examples(args.samples, seed_offset=101)
    screen = ctx.examples(max(32, args.samples // 4), seed_offset=202)
    comps = all_components(model)
    ref_out = reference_outputs(model, ref.tokens, comps)
    means = {c: o.mean(0) for c, o in ref_out.items()}
    clean = accuracy(model, ex)
    single = importance(model, ex, means)
    circuit, circuit_acc, search = minimal_circuit(model, ex, means, th["sufficient_acc"], screen, single)
    roles, scores = find_roles(model, ref, ex, comps, th["sufficient_acc"], screen)
    heads = [c for c in comps if c.head is not None]
    patterns = fixed_pattern_scores(model, ref, ex, heads)
    verified = account_accuracy(model, ref, ex, roles)
    probes = variable_probes(model, ex, ctx.seed)
    control = variable_probes(random_twin(model, ctx.seed), ex, ctx.seed)
    decodable = first_decodable(probes, th)
    card = algorithm_card(roles, scores, patterns, decodable, verified, th["sufficient_acc"])
    verdict = card_verdict(roles, verified, th)
    files = [importance_figure(ctx, single, circuit, roles, clean), probes_figure(ctx, probes, control)]
    numbers = {
        "samples": args.samples, "clean_acc": clean, "seconds": round(time.perf_counter() - t0, 1),
        "importance": {c.name: a for c, a in single.items()},
        "circuit": [c.name for c in circuit], "circuit_acc": circuit_acc, "circuit_search": search,
        "roles": {c.name: r for c, r in roles.items()},
        "role_scores": {c.name: s for c, s in scores.items()},
        "fixed_pattern_acc": {c.name: a for c, a in patterns.items()},
        "account_acc": verified, "probes": probes, "probes_random_init": control, "first_decodable": decodable,
        "card": card, "verdict": verdict[0], "verdict_reason": verdict[1], "thresholds": th,
    }
    return numbers, files


def importance_figure(ctx: Context, single: dict[Component, float], circuit: list[Component],
                      roles: dict[Component, str], clean: float) -> Path:
    """Layer x component heatmap of accuracy under mean ablation, circuit outlined, roles written in."""
    cfg = ctx.model.cfg
    grid = np.array([[single[Component(l, h)] for h in [*range(cfg.n_heads), None]] for l in range(cfg.n_layers)])
    fig, ax = plt.subplots(figsize=(2.2 + 1.45 * (cfg.n_heads + 1), 1.6 + 0.9 * cfg.n_layers), layout="constrained")
    im = ax.imshow(grid, cmap=SEQ_CMAP, vmin=0.5, vmax=1.0, aspect="auto")
    for l in range(cfg.n_layers):
        for j, h in enumerate([*range(cfg.n_heads), None]):
            c = Component(l, h)
            dark = grid[l, j] < 0.8
            ax.text(j, l - 0.12, f"{100 * grid[l, j]:.1f}%", ha="center", va="center", fontsize=8,
                    color="white" if dark else INK)
            ax.text(j, l + 0.22, roles[c], ha="center", va="center", fontsize=6.5, color="white" if dark else INK)
            if c in circuit:
                ax.add_patch(Rectangle((j - 0.48, l - 0.48), 0.96, 0.96, fill=False, edgecolor=ACCENT_2, lw=2.2))
    ax.set_xticks(range(cfg.n_heads + 1), [f"H{h}" for h in range(cfg.n_heads)] + ["MLP"])
    ax.set_yticks(range(cfg.n_layers), [f"L{l}" for l in range(cfg.n_layers)])
    ax.set_title(f"accuracy with one component mean-ablated (clean {100 * clean:.2f}%)\n"
                 f"outlined: the minimal circuit ({len(circuit)} components); text: each one's tested role")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02).set_label("held-out t+1 cell accuracy")
    caption(fig, ctx.caption())
    return save(fig, ctx.out / "circuit_importance.png")


def probes_figure(ctx: Context, probes: dict, control: dict) -> Path:
    """Where each variable becomes linearly decodable at the targets, trained vs random init."""
    x = range(len(probes["points"]))
    rules = np.array([probes[f"rule {b}"] for b in range(N_RULE_BITS)], dtype=float)
    rules_ctrl = np.array([control[f"rule {b}"] for b in range(N_RULE_BITS)], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
    for key, color, label in (("own", ACCENT, "own state (AUC)"), ("next", WRONG_COLOR, "governing bit = next (AUC)"),
                              ("count", ACCENT_2, "neighbour count (R²)")):
        axes[0].plot(x, probes[key], "-o", color=color, label=label, ms=4)
        axes[0].plot(x, control[key], ":", color=color, lw=1)
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
    caption(fig, ctx.caption())
    return save(fig, ctx.out / "circuit_probes.png")


def build_parser() -> argparse.ArgumentParser:
    p = parser("How the model computes: importance, minimal circuit, tested roles and an algorithm card.")
    add_samples_arg(p, 256, 8, "boards for every accuracy (and as many for references)")
    return p


def main(argv: list[str] | None = None) -> dict:
    numbers = run_main(NAME, build_parser, run, argv)
    print(f"verdict: {numbers['verdict']} ({numbers['verdict_reason']})")
    print("\n".join(["algorithm card:"] + [f"  {i + 1}. {line}" for i, line in enumerate(numbers["card"])]))
    return numbers


if __name__ == "__main__":
    main()
