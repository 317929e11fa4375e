"""The account's figures, drawn from its results alone: the lookup map (cases x slots), importance with the minimal
circuit and each slot's role at the targets, and where each variable becomes linearly decodable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from interfere.ca.rules import BIT_NAMES, N_COUNTS, N_RULE_BITS
from interfere.explore.account.routes import UNMEASURED, CaseFlips, Route, carry_table
from interfere.explore.components import Component
from interfere.viz.style import ACCENT, ACCENT_2, CONTROL_COLOR, INK, SEQ_CMAP, WRONG_COLOR, caption, save

ENTER_LABEL = {"board": "board", "targets": "targets", "rule": "rule token", "separators": "separators",
               UNMEASURED: "no cell on these boards"}


def enter_label(enters: str) -> str:
    """Where a flip enters, in words (a redundant case's two routes joined by ``+``)."""
    return " + ".join(ENTER_LABEL[e] for e in enters.split("+"))


def map_figure(summary: dict[str, CaseFlips], routes: dict[str, Route], out: Path, provenance: str) -> Path:
    """Cases x slots: the share of each case's rule-bit flips that each slot carries when patched alone, the lookup
    outlined, where the flip enters on the left."""
    cases, slots, grid = carry_table(summary)
    fig, ax = plt.subplots(figsize=(2.6 + 0.52 * len(slots), 1.4 + 0.3 * len(cases)), layout="constrained")
    im = ax.imshow(grid, cmap=SEQ_CMAP, vmin=0, vmax=1, aspect="auto")
    for i, case in enumerate(cases):
        for j in range(len(slots)):
            if grid[i, j] >= 0.05:
                ax.text(j, i, f"{100 * grid[i, j]:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if grid[i, j] < 0.6 else INK)
        lookup = routes[case].lookup
        if lookup in slots:
            j = slots.index(lookup)
            ax.add_patch(Rectangle((j - 0.48, i - 0.46), 0.96, 0.92, fill=False, edgecolor=ACCENT_2, lw=2))
    ax.axhline(N_COUNTS - 0.5, color="white", lw=1.5)
    ax.set_xticks(range(len(slots)), slots, rotation=90, fontsize=7)
    ax.set_yticks(range(len(cases)), [f"{c}  ({enter_label(routes[c].enters)})" for c in cases], fontsize=7)
    ax.set_title("The lookup map: share of each case's rule-bit flips a slot carries when patched alone\n"
                 "outlined: the lookup (first selective slot that carries it); in brackets: where the flip enters")
    fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01).set_label("flips carried (sufficiency)")
    caption(fig, provenance)
    return save(fig, out / "circuit_map.png")


def importance_figure(r: Any, out: Path, provenance: Callable[..., str]) -> Path:
    """Layer x component heatmap of accuracy under mean ablation, circuit outlined, target roles written in."""
    names = list(r.importance)
    n_layers = 1 + max(Component.from_name(n).layer for n in names)
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
            ax.text(j, l + 0.22, r.roles[f"{name}@targets"].uses, ha="center", va="center", fontsize=6.5,
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


def probes_figure(r: Any, out: Path, provenance: Callable[..., str]) -> Path:
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
