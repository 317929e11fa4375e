"""H3, physics tokens usage: do target queries read the rule tokens, and does flipping one act as it should?

    python explorations/physics_bits.py [--samples 144]

1. Attention mass from t+1 target queries to the 18 rule tokens per (layer, head), normalised
   over every key (pattern rows sum to 1), and per rule bit.
2. The flip test: flip one rule token ``<Rr_v>`` -> ``<Rr_{1-v}>``. Bit b < 9 (S_b) governs live cells
   with b neighbours, bit b >= 9 (B_{b-9}) dead cells with b-9 neighbours: exactly those cells'
   true next state changes. With C the cells whose prediction changed and G the governed cells:
   precision |C & G| / |C|, recall |C & G| / |G|, the false-flip rate |C - G| / |not G|, and the
   accuracy of the flipped prediction against the flipped rule's truth.
   For a model that is right under both rules, changed = governed by construction, so the flip test
   is a *consistency check*, not a discriminating test.
3. The discriminating causal test, rule-path ablation: every rule token's embedding is replaced by
   the mean of its two values' embeddings (``<Rr_0>``, ``<Rr_1>``) at ``hook_embed``, which removes
   what the rule says while keeping where it sits. Accuracy on held-out rules is compared with
   the best accuracy any rule-blind predictor can reach on the same cells (for each of the 18
   (state, neighbour count) cases, the more frequent next state). *Rule use* = (clean - ablated)
   / (clean - rule-blind best): 1 when removing the rule leaves a rule-blind model, 0 when it
   changes nothing. Below the ``rule_use_gain`` floor (``cfg/report/thresholds.yaml``) the model is
   no better than rule-blind and rule use is "no effect". The same ablation on Conway's Life shows
   what happens to a rule the model may know by heart.
4. Activation patching: each head's output (``hook_z``, all positions) from the flipped run is
   patched into the clean run (as ``transformer_lens.patching`` does, in chunks); the share of the flip's effect on
   the governed cells' alive-minus-dead logit it restores names the responsible heads. When the
   flip's effect is below the ``patch_effect_logits`` floor, the shares are "no effect".
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from interfere.ca.rules import BIT_NAMES, N_COUNTS, N_RULE_BITS, get_rule
from interfere.ca.simulate import neighbour_counts, step
from interfere.data.layout import rule_token
from interfere.explore import batched
from interfere.explore.analysis import Examples, Want, target_rows
from interfere.explore.common import Context, add_samples_arg, examples_of, parser, run_main
from interfere.explore.components import accuracy
from interfere.model import inference
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer
from interfere.thresholds import effect_floors
from interfere.viz.boards import head_grid
from interfere.viz.style import ACCENT, ACCENT_2, CONTROL_COLOR, DIV_CMAP, SEQ_CMAP, WRONG_COLOR, caption, save

NAME = "physics_bits"
PATCHING_MAX_CELLS = 256  # beyond, per-head patching is off by default (a hooked forward per head is slow on a CPU)
Predictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (rules, boards) -> next boards


def rule_attention(rule_att: torch.Tensor) -> torch.Tensor:
    """``[layer, batch, head, HW, 18]`` (the t+1 targets' attention over the rule) -> ``[layer, head, 18]``: the mean
    attention mass from t+1 targets to each rule token."""
    return rule_att.float().mean(dim=(1, 3))


def flip_bits(rules: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Rules ``[N, 18]`` with bit ``bits[n]`` of example n flipped."""
    flipped = rules.clone()
    idx = torch.arange(len(rules))
    flipped[idx, bits] = ~flipped[idx, bits]
    return flipped


def flip_scores(predict: Predictor, rules: torch.Tensor, boards: torch.Tensor) -> dict[str, list[float]]:
    """Per bit: precision, recall, false-flip rate and flipped accuracy of ``predict`` (docstring)."""
    out: dict[str, list[float]] = {"precision": [], "recall": [], "false_flip_rate": [], "flipped_acc": [],
                                   "governed_cells": [], "changed_cells": []}
    clean_pred = predict(rules, boards)
    for b in range(N_RULE_BITS):
        flipped = flip_bits(rules, torch.full((len(rules),), b))
        pred = predict(flipped, boards)
        governed = step(boards, rules) != step(boards, flipped)
        changed = pred != clean_pred
        hit = (changed & governed).sum().item()
        out["precision"].append(hit / changed.sum().item() if changed.any() else float("nan"))
        out["recall"].append(hit / governed.sum().item() if governed.any() else float("nan"))
        out["false_flip_rate"].append((changed & ~governed).sum().item() / max(1, (~governed).sum().item()))
        out["flipped_acc"].append((pred == step(boards, flipped)).float().mean().item())
        out["governed_cells"].append(int(governed.sum()))
        out["changed_cells"].append(int(changed.sum()))
    return out


def governed_metric(model: LifeTransformer, rules: torch.Tensor, flipped: torch.Tensor, boards: torch.Tensor):
    """The metric patching measures, of target logits ``[batch, K*H*W, 2]``: the mean signed
    alive-minus-dead logit on the governed cells, signed towards the flipped rule's truth (it rises
    when the model follows the flip)."""
    n = model.layout.n_cells
    truth_flipped = step(boards, flipped)
    governed = (step(boards, rules) != truth_flipped).reshape(len(boards), -1)
    sign = (2 * truth_flipped - 1).reshape(len(boards), -1).float()

    def metric(target_logits: torch.Tensor) -> torch.Tensor:
        diff = (target_logits[:, :n, 1] - target_logits[:, :n, 0]).float().cpu()
        return (diff * sign)[governed].mean()

    return metric


def patch_hooks(source_z: dict[str, torch.Tensor], heads: list[tuple[int, int]], part: slice) -> list:
    """Hooks giving the listed heads their ``hook_z`` (all positions) from ``source_z[name][part]``."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)

    def make_hook(layer: int):
        def hook(z: torch.Tensor, hook) -> torch.Tensor:  # z: [batch, pos, head, d_head]
            z = z.clone()
            z[:, :, by_layer[layer]] = source_z[hook.name][part][:, :, by_layer[layer]].to(z.device, z.dtype)
            return z
        return hook

    return [(act_name("z", layer), make_hook(layer)) for layer in by_layer]


@torch.no_grad()
def head_patching(model: LifeTransformer, rules: torch.Tensor, flipped: torch.Tensor,
                  boards: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """([layer, head] share of the flip's effect each head restores, share with all heads, effect size).

    The same numbers as ``transformer_lens.patching.get_act_patch_attn_head_out_all_pos`` (tested), in
    memory-bounded chunks.
    """
    clean_tokens = model.encode_prompt(rules, boards)
    flip_tokens = model.encode_prompt(flipped, boards)
    metric = governed_metric(model, rules, flipped, boards)
    names = [act_name("z", layer) for layer in range(model.cfg.n_layers)]
    source_z = batched.cached(model, flip_tokens, names)
    clean_m = metric(batched.target_logits(model, clean_tokens))
    effect = metric(batched.target_logits(model, flip_tokens)) - clean_m

    def restored(heads: list[tuple[int, int]]) -> float:
        logits = batched.target_logits(model, clean_tokens, lambda part: patch_hooks(source_z, heads, part))
        return float((metric(logits) - clean_m) / effect)

    layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    per_head = torch.tensor([[restored([(layer, h)]) for h in range(n_heads)] for layer in range(layers)])
    everything = restored([(layer, h) for layer in range(layers) for h in range(n_heads)])
    return per_head, everything, float(effect)


def model_predictor(model: LifeTransformer) -> Predictor:
    return lambda rules, boards: inference.predict(model, rules, boards).cpu()


def rule_blind_ceiling(boards: torch.Tensor, next_boards: torch.Tensor) -> float:
    """The best accuracy a predictor that ignores the rule can reach on these cells: in each of
    the 18 (state, neighbour count) cases it predicts the more frequent next state."""
    case = (boards * N_COUNTS + neighbour_counts(boards)).flatten()
    alive = torch.bincount(case, weights=next_boards.flatten().float(), minlength=2 * N_COUNTS)
    total = torch.bincount(case, minlength=2 * N_COUNTS).float()
    return float(torch.maximum(alive, total - alive).sum() / total.sum())


def rule_value_ablation(model: LifeTransformer, tokens: torch.Tensor) -> tuple[str, Callable]:
    """A ``hook_embed`` hook that replaces each rule token's embedding by the mean of its two values'."""
    w_e, rule = model.embed.W_E, model.layout.rule
    bits = torch.arange(N_RULE_BITS, device=w_e.device)
    mean = (w_e[rule_token(bits, 0)] + w_e[rule_token(bits, 1)]) / 2  # [18, d_model]
    delta = mean - w_e[tokens[:, rule]]  # [batch, 18, d_model]

    def hook(embed: torch.Tensor, hook) -> torch.Tensor:  # embed: [batch, pos, d_model]
        embed = embed.clone()
        embed[:, rule] += delta.to(embed.dtype)
        return embed

    return "hook_embed", hook


def rule_path(model: LifeTransformer, ex: Examples) -> dict[str, float]:
    """Accuracy with the rule tokens intact and with their values ablated, and the rule-blind best."""
    clean = accuracy(model, ex)
    ablated = accuracy(model, ex, lambda part: [rule_value_ablation(model, ex.tokens[part])])
    best_blind = rule_blind_ceiling(ex.boards, ex.next_boards)
    return {"clean_acc": clean, "ablated_acc": ablated, "rule_blind_best": best_blind}


def rule_use(path: dict[str, float], floor: float) -> float | None:
    """(clean - ablated) / (clean - rule-blind best), or None ("no effect") below ``floor``."""
    gain = path["clean_acc"] - path["rule_blind_best"]
    return (path["clean_acc"] - path["ablated_acc"]) / gain if gain >= floor else None


@dataclass
class Params:
    samples: int = 144
    patching: str = "auto"  # per-head activation patching: auto (up to PATCHING_MAX_CELLS cells) | on | off
    conway: bool = True  # also the rule-path test on Conway's Life (the same boards)
    thresholds: dict = field(kw_only=True)  # passed in by commands (never read here); H3 applies effect_floors


@dataclass
class Result:
    samples: int
    rule_attention_mass: list  # [layer][head]: attention from t+1 targets to the 18 rule tokens
    rule_attention_per_bit: list  # [layer][head][18]
    rule_attention_uniform: float  # 18 / (context + 1): what uniform attention would give
    flip: dict  # per bit: precision, recall, false_flip_rate, flipped_acc, governed_cells, changed_cells
    flip_mean: dict
    rule_path: dict  # clean_acc, ablated_acc, rule_blind_best, rule_use
    rule_path_conway: dict | None
    patching: dict
    effect_floors: dict  # the floors applied (from the thresholds passed in)
    board_size: list[int]


def wants(model: LifeTransformer, params: Params) -> list[Want]:
    view = target_rows(model.layout, "targets->rule", model.layout.rule)
    return [(act_name("pattern", i), view) for i in range(model.cfg.n_layers)]


def measure(model: LifeTransformer, ex: Examples, params: Params) -> Result:
    layout, cfg = model.layout, model.cfg
    floors = effect_floors(params.thresholds)
    rule_mass = rule_attention(torch.stack([ex.act(hook, view) for hook, view in wants(model, params)]))
    scores = flip_scores(model_predictor(model), ex.rules, ex.boards)
    flipped = flip_bits(ex.rules, torch.arange(len(ex.rules)) % N_RULE_BITS)  # every bit on an equal share
    patch = params.patching == "on" or (params.patching == "auto" and layout.n_cells <= PATCHING_MAX_CELLS)
    if patch:
        restored, restored_all, effect = head_patching(model, ex.rules, flipped, ex.boards)
    else:
        restored, restored_all, effect = torch.full((cfg.n_layers, cfg.n_heads), float("nan")), float("nan"), 0.0
    patch_effect = patch and abs(effect) >= floors["patch_effect_logits"]
    path = rule_path(model, ex)
    path["rule_use"] = rule_use(path, floors["rule_use_gain"])
    conway = None
    if params.conway:
        conway = rule_path(model, examples_of(model, get_rule("B3/S23").bits.expand(len(ex), -1), ex.boards))
    best = torch.nonzero(restored == restored.max())[0].tolist() if patch_effect else None
    n_context = layout.seq_len - len(layout.target_index)
    return Result(
        samples=len(ex), rule_attention_mass=rule_mass.sum(-1).tolist(), rule_attention_per_bit=rule_mass.tolist(),
        rule_attention_uniform=N_RULE_BITS / (n_context + 1), flip=scores,
        flip_mean={k: _nanmean(scores[k]) for k in ("precision", "recall", "false_flip_rate", "flipped_acc")},
        rule_path=path, rule_path_conway=conway, effect_floors=floors, board_size=[layout.height, layout.width],
        patching={"effect_logit": effect, "effect_floor": floors["patch_effect_logits"], "no_effect": not patch_effect,
                  "skipped": not patch, "restored_share": restored.tolist() if patch_effect else None,
                  "all_heads": restored_all if patch_effect else None,
                  "best_head": ({"layer": best[0], "head": best[1], "share": float(restored.max())}
                                if patch_effect else None)})


def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    return [rule_attention_figure(result, out, provenance), flip_figure(result, out, provenance),
            rule_path_figure(result, out, provenance), patching_figure(result, out, provenance)]


def rule_attention_figure(r: Result, out: Path, provenance: Callable[..., str]) -> Path:
    per_bit = np.array(r.rule_attention_per_bit, dtype=float)
    n_layers, n_heads = per_bit.shape[:2]
    fig, axes = plt.subplots(1, 2, figsize=(13, 1.5 + 0.3 * n_layers * n_heads),
                             gridspec_kw={"width_ratios": [1, 3]}, layout="constrained")
    total = np.array(r.rule_attention_mass, dtype=float)
    head_grid(axes[0], total, "attention mass on the 18 rule tokens", "share of all attention",
              vmax=max(1e-6, float(total.max())))
    im = axes[1].imshow(per_bit.reshape(-1, N_RULE_BITS), cmap=SEQ_CMAP, vmin=0, aspect="auto")
    axes[1].set_xticks(range(N_RULE_BITS), BIT_NAMES)
    axes[1].set_yticks(range(n_layers * n_heads), [f"L{i}H{j}" for i in range(n_layers) for j in range(n_heads)])
    axes[1].set_xlabel("rule token")
    axes[1].set_title("… per rule token")
    fig.colorbar(im, ax=axes[1], fraction=0.02, pad=0.02).set_label("attention weight")
    fig.suptitle("H3: how much t+1 target queries attend to the rule (physics) tokens")
    caption(fig, provenance(samples=r.samples))
    return save(fig, out / "rule_attention.png")


def flip_figure(r: Result, out: Path, provenance: Callable[..., str]) -> Path:
    fig, ax = plt.subplots(figsize=(9, 3.4))
    x = np.arange(N_RULE_BITS)
    nan = lambda values: [float("nan") if v is None else v for v in values]  # noqa: E731
    ax.bar(x - 0.2, nan(r.flip["precision"]), 0.4, color=ACCENT, label="precision |C∩G|/|C|")
    ax.bar(x + 0.2, nan(r.flip["recall"]), 0.4, color=ACCENT_2, label="recall |C∩G|/|G|")
    ax.plot(x, r.flip["false_flip_rate"], "x", color=WRONG_COLOR, label="false-flip rate |C−G|/|¬G|")
    ax.set_xticks(x, BIT_NAMES)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("flipped rule bit")
    ax.set_ylabel("share of cells")
    ax.set_title("H3 causal test: flipping one rule token changes exactly the governed cells?")
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    caption(fig, provenance(samples=r.samples))
    return save(fig, out / "flip_test.png")


def patching_figure(r: Result, out: Path, provenance: Callable[..., str]) -> Path:
    patch = r.patching
    n_layers, n_heads = np.array(r.rule_attention_mass).shape
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * n_heads, 1.4 + 0.6 * n_layers))
    if not patch["no_effect"]:
        restored = np.array(patch["restored_share"], dtype=float)
        lim = max(1.0, float(np.abs(restored).max()))
        head_grid(ax, restored, "share of the flip effect restored by patching one head\n"
                  f"(all heads: {patch['all_heads']:.2f}; flip effect {patch['effect_logit']:.2f} logits)",
                  "restored share", DIV_CMAP, -lim, lim)
    else:
        ax.axis("off")
        why = (f"patching skipped at {r.board_size[0]}x{r.board_size[1]}\n(one hooked forward per head; --patching on)"
               if patch["skipped"] else
               f"no effect to patch:\nthe flip moves the governed cells' logit by {patch['effect_logit']:.3f},\n"
               f"below the floor of {patch['effect_floor']} (thresholds file)")
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
    caption(fig, provenance(samples=r.samples))
    return save(fig, out / "head_patching.png")


def _nanmean(values: list[float]) -> float:
    """The mean over the defined values; NaN when none is (e.g. no prediction changed under any flip)."""
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def rule_path_figure(r: Result, out: Path, provenance: Callable[..., str]) -> Path:
    """Accuracy with the rule path intact and removed, against the best rule-blind predictor."""
    groups = [("held-out random rules", r.rule_path)] + ([("Conway's Life", r.rule_path_conway)]
                                                         if r.rule_path_conway else [])
    fig, ax = plt.subplots(figsize=(3.2 + 2.2 * len(groups), 3.4))
    width = 0.26
    for i, (_, p) in enumerate(groups):
        for j, (key, label, color) in enumerate((("clean_acc", "rule tokens intact", ACCENT),
                                                 ("ablated_acc", "rule values ablated", WRONG_COLOR),
                                                 ("rule_blind_best", "best rule-blind predictor", CONTROL_COLOR))):
            ax.bar(i + (j - 1) * width, p[key], width, color=color, label=label if i == 0 else None)
            ax.text(i + (j - 1) * width, p[key] + 0.01, f"{p[key]:.3f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(groups)), [g for g, _ in groups])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("t+1 cell accuracy")
    use = r.rule_path["rule_use"]
    ax.set_title("H3 causal test: remove the rule-reading path\n"
                 + (f"rule use {use:.2f} on held-out rules" if use is not None
                    else f"no effect: the model is within {r.effect_floors['rule_use_gain']} of rule-blind"))
    ax.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    caption(fig, provenance(samples=r.samples))
    return save(fig, out / "rule_path.png")


def params_from_args(args: argparse.Namespace, ctx: Context, thresholds: dict) -> Params:
    return Params(samples=args.samples, patching=args.patching, conway=ctx.rule is None, thresholds=thresholds)


def build_parser() -> argparse.ArgumentParser:
    p = parser("H3: rule-token attention, the rule-bit flip test, and per-head patching.")
    add_samples_arg(p, 144, 4, "boards (each bit is flipped on every board)")
    p.add_argument("--patching", choices=["auto", "on", "off"], default="auto",
                   help=f"per-head activation patching, one hooked forward per head (auto: on up to "
                        f"{PATCHING_MAX_CELLS} cells per board, e.g. 16x16)")
    return p


def main(argv: list[str] | None = None) -> dict:
    return run_main(__spec__.name, argv)


if __name__ == "__main__":
    main()
