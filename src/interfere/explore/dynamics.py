"""When each piece forms: cheap measures on every weight snapshot of a training run.

    python explorations/dynamics.py [--run-id ID | --ckpt PATH] [--samples 256]
                                                 (also: python -m interfere.explore.dynamics)

Training writes weight-only snapshots at log-spaced steps (``train.snapshots``). On each one this
measures: held-out loss and cell accuracy, overall and per governing rule bit (which of S0..S8,
B0..B8 is learned when); the best 3x3 stencil share and 8-neighbour share per layer (H1); the
largest rule-token attention mass per layer (H3); linear probes at the targets (least squares,
held-out boards, best over the residual points) for the neighbour count (R2), the own state, the
rule bits (mean AUC) and the next state; and the accuracy of the final model's minimal circuit
(the other components mean-ablated), when the final snapshot has one.

For each measure, the step (and training seconds) at which it first covers ``--fraction`` of the
way from its first to its final value, and the steps where accuracy first crosses 50/90/99/99.9%.
Figures: "what forms when" (log steps), per-bit learning curves, and a GIF/MP4 of the relative
stencil of the final model's most local layer-0 head across snapshots.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from interfere.ca.rules import BIT_NAMES, N_COUNTS, N_RULE_BITS
from interfere.errors import UserError
from interfere.explore import attn_maps
from interfere.explore.analysis import Examples, Want, at_positions, cell_labels, linear_probes, target_rows
from interfere.explore.common import Context, add_samples_arg, examples_of, parser, run_main
from interfere.explore.components import (
    Component,
    accuracy,
    all_components,
    importance,
    mean_ablation,
    minimal_circuit,
    reference_outputs,
)
from interfere.explore.logit_lens import residual_points
from interfere.model import inference
from interfere.model.checkpoint import list_snapshots, model_from_checkpoint, read_checkpoint
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer
from interfere.viz.animate import field_frames, write_frames
from interfere.viz.style import ACCENT, ACCENT_2, BIRTH_COLOR, CONTROL_COLOR, GUIDE_COLOR, SEQ_CMAP, caption, save

NAME = "dynamics"
ACC_MARKS = (0.5, 0.9, 0.99, 0.999)


def first_reaching(steps: list[int], values: list[float], fraction: float) -> int | None:
    """The first step at which ``values`` has covered ``fraction`` of the way from its first to its
    final value (None when it never changes, or never gets there)."""
    v = np.asarray(values, dtype=float)
    start, end = v[0], v[-1]
    if not np.isfinite(start) or not np.isfinite(end) or math.isclose(start, end, abs_tol=1e-9):
        return None
    progress = (v - start) / (end - start)
    hit = np.nonzero(np.nan_to_num(progress, nan=-np.inf) >= fraction - 1e-12)[0]
    return int(steps[hit[0]]) if len(hit) else None


def first_crossing(steps: list[int], values: list[float], level: float) -> int | None:
    hit = [s for s, v in zip(steps, values) if v >= level]
    return hit[0] if hit else None


def wanted_per_snapshot(model: LifeTransformer) -> list[Want]:
    """What every snapshot's one shared forward keeps: the t+1 targets' attention over the board and the
    rule per layer, and the residual at the targets before and after every layer."""
    layout = model.layout
    board, rule = target_rows(layout, "targets->board", layout.board), target_rows(layout, "targets->rule", layout.rule)
    patterns = [(act_name("pattern", i), v) for i in range(model.cfg.n_layers) for v in (board, rule)]
    targets = at_positions("targets", layout.targets[0])
    return patterns + [(hook, targets) for _, hook in residual_points(model.cfg.n_layers)]


def probe_scores(model: LifeTransformer, ex: Examples) -> dict[str, float]:
    """Least-squares linear probes at the t+1 targets, fitted on 3/4 of the boards, scored on the rest,
    best over the residual points: count R2, own-state, next-state and mean rule-bit AUC; and the next state's
    AUC after each layer."""
    test = torch.arange(len(ex)) >= 3 * len(ex) // 4
    labels = cell_labels(ex)
    best = {"count_r2": -np.inf, "own_auc": 0.0, "next_auc": 0.0, "rule_auc": 0.0}
    after = []
    for _, hook in residual_points(model.cfg.n_layers):
        s = linear_probes(ex.act(hook, at_positions("targets", model.layout.targets[0])), labels, test)
        rules = [s[f"rule {b}"] for b in range(N_RULE_BITS) if not np.isnan(s[f"rule {b}"])]
        scores = {"count_r2": s["count"], "own_auc": s["own"], "next_auc": s["next"],
                  "rule_auc": float(np.mean(rules)) if rules else float("nan")}
        best = {k: float(np.nanmax([best[k], scores[k]])) for k in best}
        after.append(float(s["next"]))
    return {**best, "next_auc_by_layer": after[1:]}


def snapshot_measures(model: LifeTransformer, ex: Examples, small: Examples, ref: Examples,
                      circuit: list[Component] | None) -> dict[str, float | list[float]]:
    """Every measure of one snapshot (module docstring); ``small`` must be this snapshot's examples (its
    attention and residuals come from one shared forward)."""
    logits = model.layout.first_step(inference.target_logits(model, ex.tokens)).float().cpu()
    truth = ex.next_boards.flatten(1)
    correct = (logits.argmax(-1) == truth).float()
    governing = ex.cases
    per_bit = [float(correct[governing == b].mean()) if (governing == b).any() else float("nan")
               for b in range(N_RULE_BITS)]
    out: dict[str, float | list[float]] = {
        "loss": float(F.cross_entropy(logits.flatten(0, 1), truth.flatten())),
        "acc": float(correct.mean()), "acc_by_bit": per_bit,
    }
    layout, wanted = model.layout, wanted_per_snapshot(model)
    small.acts.want(wanted)
    stencil, neighbours, rule_mass = [], [], []
    for layer in range(model.cfg.n_layers):
        board_att, rule_att = (small.act(hook, view) for hook, view in wanted[2 * layer : 2 * layer + 2])
        share, _ = attn_maps.stencil_shares(board_att, layout)
        profile, _ = attn_maps.stencil_profile(board_att, layout)
        stencil.append(float(share.nan_to_num(0).max()))
        neighbours.append(float(attn_maps.locality_measures(profile)["neighbour_share"].max()))
        rule_mass.append(float(rule_att.sum(-1).mean((0, 2)).max()))
    out.update(stencil_share=stencil, neighbour_share=neighbours, rule_attention=rule_mass)
    out.update(probe_scores(model, small))
    if circuit:
        means = {c: o.mean(0) for c, o in reference_outputs(model, ref.tokens, all_components(model)).items()}
        out["circuit_acc"] = accuracy(model, small, mean_ablation(means, [c for c in means if c not in circuit]))
    return out


def final_circuit(model: LifeTransformer, ex: Examples, ref: Examples, threshold: float) -> list[Component]:
    """The final model's minimal circuit (the circuit analysis' search), to follow through training."""
    means = {c: o.mean(0) for c, o in reference_outputs(model, ref.tokens, all_components(model)).items()}
    single = importance(model, ex, means)
    return minimal_circuit(model, ex, means, threshold, single=single)[0]


# the curves of "what forms when": (label, key, layer or None, colour, style)
CURVES = [
    ("held-out accuracy", "acc", None, ACCENT, "-"),
    ("best 8-neighbour share, layer 0", "neighbour_share", 0, ACCENT_2, "-"),
    ("rule-token attention, layer 0", "rule_attention", 0, BIRTH_COLOR, "-"),
    ("count R² (probe)", "count_r2", None, "#6a4c93", "--"),
    ("own state AUC (probe)", "own_auc", None, "#1982c4", "--"),
    ("rule bits AUC (probe)", "rule_auc", None, "#ff924c", "--"),
    ("final circuit's accuracy", "circuit_acc", None, CONTROL_COLOR, ":"),
]


def series(measures: list[dict], key: str, layer: int | None) -> list[float]:
    return [m[key][layer] if layer is not None else m[key] for m in measures if key in m]


LAYER_SERIES = {"locality": "neighbour_share", "rule_attention": "rule_attention", "next_auc": "next_auc_by_layer"}


def layer_roles(steps: list[int], measures: list[dict], fraction: float) -> list[dict]:
    """Per layer: the final value of its locality (best 8-neighbour share), its rule-token attention and the next
    state's probe AUC after it, each with the step at which it formed (``first_reaching``)."""
    n_layers = len(measures[-1]["neighbour_share"])
    return [{"layer": layer, **{name: series(measures, key, layer)[-1] for name, key in LAYER_SERIES.items()},
             **{f"{name}_forms": first_reaching(steps, series(measures, key, layer), fraction)
                for name, key in LAYER_SERIES.items()}} for layer in range(n_layers)]


@dataclass
class Params:
    samples: int = 128
    fraction: float = 0.9  # a measure "forms" when it has covered this share of the way to its final value
    run_dir: str = ""  # the run whose snapshots are measured (checkpoints/<RUN_ID>)
    size: tuple[int, int] | None = None  # the board size to measure at (a size-free run; default its own)
    sufficient_acc: float = field(kw_only=True)  # the minimal circuit's bar: the thresholds' circuit.sufficient_acc


@dataclass
class Result:
    snapshots: list[str]
    steps: list[int]
    train_seconds: dict
    samples: int
    measures: list[dict]
    final_circuit: list[str]
    fraction: float
    first_reaches: dict
    accuracy_first_crosses: dict
    order: list[str]
    stencil_head: int  # the final model's most local layer-0 head, followed through training
    stencil_maps: list  # [snapshot][H][W]: its relative stencil
    sufficient_acc: float  # the minimal circuit's bar that was applied
    by_layer: list[dict]  # when each layer takes its role (layer_roles)


def wants(model: LifeTransformer, params: Params) -> list[Want]:
    return []  # every snapshot is its own model: nothing to share with the analysed checkpoint's forward


def measure(model: LifeTransformer, ex: Examples, params: Params) -> Result:
    if not 0 < params.fraction <= 1:
        raise UserError(f"--fraction must be in (0, 1], got {params.fraction}")
    paths = list_snapshots(Path(params.run_dir))
    if not paths:
        raise UserError(f"run folder {params.run_dir} has no snapshots: train with train.snapshots=N "
                        "(exp/cpu_demo writes 19)")
    snaps = [read_checkpoint(p) for p in paths]
    size = params.size or (model.layout.height, model.layout.width)
    quarter = max(2, len(ex) // 4)  # a quarter for the attention and probes, another for reference means
    final = model_from_checkpoint(snaps[-1], model.cfg.device).resize(*size)
    small, ref = (examples_of(final, ex.rules[rows], ex.boards[rows]) for rows in (slice(0, quarter),
                                                                                   slice(quarter, 2 * quarter)))
    circuit = final_circuit(final, ex, ref, params.sufficient_acc)
    measures, patterns = [], []
    for snap in snaps:
        snapshot = model_from_checkpoint(snap, model.cfg.device).resize(*size)
        own = examples_of(snapshot, small.rules, small.boards)
        measures.append(snapshot_measures(snapshot, ex, own, ref, circuit))
        patterns.append(own.act(*wanted_per_snapshot(snapshot)[0]))  # layer 0 over the board
    steps = [int(s["step"]) for s in snaps]
    seconds = {int(s["step"]): float(s.get("train_time_s", float("nan"))) for s in snaps}
    forms = {label: first_reaching(steps, series(measures, key, layer), params.fraction)
             for label, key, layer, *_ in CURVES if series(measures, key, layer)}
    order = sorted(((s, label) for label, s in forms.items() if s is not None))
    profile, _ = attn_maps.stencil_profile(patterns[-1], final.layout)
    head = int(attn_maps.locality_measures(profile)["neighbour_share"].argmax())
    return Result(
        snapshots=[str(p) for p in paths], steps=steps, train_seconds=seconds, samples=len(ex), measures=measures,
        final_circuit=[c.name for c in circuit], fraction=params.fraction, first_reaches=forms,
        accuracy_first_crosses={f"{100 * m:g}%": first_crossing(steps, series(measures, "acc", None), m)
                                for m in ACC_MARKS},
        order=[f"{label} (step {s}, {seconds.get(s, float('nan')):.0f} s)" for s, label in order],
        stencil_head=head, stencil_maps=[attn_maps.relative_maps(p, final.layout)[head].tolist() for p in patterns],
        sufficient_acc=params.sufficient_acc, by_layer=layer_roles(steps, measures, params.fraction))


def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    return [forms_figure(result, out, provenance), bits_figure(result, out, provenance),
            layers_figure(result, out, provenance), *stencil_animation(result, out, provenance)]


def params_from_args(args: argparse.Namespace, ctx: Context, thresholds: dict) -> Params:
    return Params(samples=args.samples, fraction=args.fraction, run_dir=str(Path(ctx.ckpt["path"]).parent),
                  size=(ctx.layout.height, ctx.layout.width),
                  sufficient_acc=thresholds["circuit"]["sufficient_acc"])


def forms_figure(r: Result, out: Path, provenance: Callable[..., str]) -> Path:
    steps, measures, marks, fraction = r.steps, r.measures, r.accuracy_first_crosses, r.fraction
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.0), layout="constrained")
    for label, key, layer, color, style in CURVES:
        values = series(measures, key, layer)
        if not values:
            continue
        axes[0].plot(steps, values, style, marker="o", ms=3, color=color, label=label)
        v = np.asarray(values, dtype=float)
        span = v[-1] - v[0]
        if abs(span) > 1e-9:
            axes[1].plot(steps, (v - v[0]) / span, style, marker="o", ms=3, color=color, label=label)
    axes[1].axhline(fraction, color=GUIDE_COLOR, lw=1, ls="--")
    axes[1].set_ylim(-0.25, 1.25)  # overshoots and early noise are clipped: the crossing is what matters
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("training step (log)")
        for name, step in marks.items():
            if step is not None:
                ax.axvline(step, color=GUIDE_COLOR, lw=0.8, zorder=0)
                ax.text(step, 1.04, name, fontsize=6.5, ha="center", color="#666666",
                        transform=ax.get_xaxis_transform())
    axes[0].set_ylim(-0.05, 1.02)
    axes[0].set_ylabel("value")
    axes[0].set_title("measures against training step\n(vertical lines: accuracy first crosses 50/90/99/99.9%)",
                      pad=14)
    axes[1].set_ylabel("share of the way from the first to the final value")
    axes[1].set_title(f"what forms when (dashed: {fraction:.0%} of the way)", pad=14)
    axes[1].legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    caption(fig, provenance())
    return save(fig, out / "dynamics_what_forms_when.png")


def bits_figure(r: Result, out: Path, provenance: Callable[..., str]) -> Path:
    steps = r.steps
    per_bit = np.array([[np.nan if v is None else v for v in m["acc_by_bit"]] for m in r.measures])  # [snap, 18]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True, layout="constrained")
    for ax, offset, title in ((axes[0], 0, "survival bits S0..S8 (live cells)"),
                              (axes[1], N_COUNTS, "birth bits B0..B8 (dead cells)")):
        colors = plt.get_cmap("viridis", N_COUNTS)
        for c in range(N_COUNTS):
            ax.plot(steps, per_bit[:, offset + c], "-o", ms=2.5, color=colors(c), label=BIT_NAMES[offset + c])
        ax.set_xscale("log")
        ax.set_xlabel("training step (log)")
        ax.set_title(title)
        ax.legend(frameon=False, fontsize=6.5, ncol=3)
    axes[0].set_ylabel("held-out accuracy on the cells it governs")
    fig.suptitle("Which rule bit is learned when")
    caption(fig, provenance())
    return save(fig, out / "dynamics_bits.png")


def layers_figure(r: Result, out: Path, provenance: Callable[..., str]) -> Path:
    """Layer by snapshot: the best 8-neighbour share and the next state's probe AUC after the layer."""
    n_layers = len(r.by_layer)
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.6 + 0.32 * n_layers), layout="constrained")
    for ax, key, title, vmin in ((axes[0], "neighbour_share", "best 8-neighbour share of board attention", 0.0),
                                 (axes[1], "next_auc_by_layer", "the next state's probe AUC after the layer", 0.5)):
        grid = np.array([[m[key][layer] for m in r.measures] for layer in range(n_layers)], dtype=float)
        image = ax.imshow(grid, aspect="auto", cmap=SEQ_CMAP, vmin=vmin, vmax=1.0, interpolation="nearest")
        ticks = np.unique(np.linspace(0, len(r.steps) - 1, min(8, len(r.steps))).round().astype(int))
        ax.set_xticks(ticks, [str(r.steps[i]) for i in ticks])
        ax.set_yticks(range(n_layers), [f"L{i}" for i in range(n_layers)])
        ax.set_xlabel("training step (snapshots, log-spaced)")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, shrink=0.9)
    fig.suptitle("When each layer takes its role")
    caption(fig, provenance())
    return save(fig, out / "dynamics_layers.png")


def stencil_animation(r: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    """The relative stencil of the final model's most local layer-0 head, snapshot by snapshot (frames
    drawn directly, one colour scale for all)."""
    maps = np.array(r.stencil_maps, dtype=float)
    titles = [f"L0H{r.stencil_head}, step {step}: relative stencil" for step in r.steps]
    frames = field_frames(maps, titles, SEQ_CMAP, vmax=float(maps.max()), footer=provenance(layer=0,
                                                                                           head=r.stencil_head))
    return write_frames(frames, out / f"dynamics_stencil_L0H{r.stencil_head}", fps=3)


def build_parser() -> argparse.ArgumentParser:
    p = parser("When each piece forms: cheap measures on every training snapshot of a run.")
    add_samples_arg(p, 256, 8, "held-out boards for accuracy (a quarter for the rest)")
    p.add_argument("--fraction", type=float, default=0.9,
                   help="a measure 'forms' when it has covered this share of the way to its final value")
    return p


def main(argv: list[str] | None = None) -> dict:
    numbers = run_main(__spec__.name, argv)
    print("order of emergence: " + "; ".join(numbers["order"]))
    return numbers


if __name__ == "__main__":
    main()
