"""Held-out evaluation: cell accuracy, ROC-AUC, board exact-match, per-rule table, rollout divergence.

Accuracy is the argmax over the two outputs (dead/alive) at target positions only. The held-out
rules are random rules the training stream never emits; the named rules are also reported one
by one. Rollout divergence is the first generation at which the model's autoregressive rollout
differs from the simulator (``ROLLOUT_CAP`` means it never did).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from interfere.ca.patterns import place
from interfere.ca.rules import NAMED_RULES, Rule, get_rule
from interfere.ca.simulate import rollout as simulate_rollout
from interfere.data.stream import DataConfig, future_boards, heldout_rules, random_boards, validation_rules
from interfere.model import inference
from interfere.model.life_model import LifeTransformer

ROLLOUT_CAP = 100
ROLLOUT_PATTERNS = ("blinker", "glider", "r_pentomino")
VALIDATION_BOARD_SEED = 5  # validation boards are drawn from seed + this (test boards use seed .. seed + 3)


@dataclass
class CellScores:
    """Target-cell predictions against the truth, for one set of examples (t+1 targets)."""

    prob_alive: torch.Tensor  # [N, H, W] float
    truth: torch.Tensor  # [N, H, W] int64

    @property
    def pred(self) -> torch.Tensor:
        return (self.prob_alive > 0.5).long()

    def summary(self) -> dict[str, float]:
        correct = self.pred == self.truth
        from sklearn.metrics import roc_auc_score  # imported here: 1 s that a process which never scores skips

        truth = self.truth.flatten().numpy()
        auc = float(roc_auc_score(truth, self.prob_alive.flatten().numpy())) if 0 < truth.mean() < 1 else float("nan")
        return {
            "cell_acc": correct.float().mean().item(),
            "board_exact": correct.flatten(1).all(1).float().mean().item(),
            "auc": auc,
            "cells": correct.numel(),
            "wrong_cells": int((~correct).sum()),
        }


@torch.no_grad()
def target_probs(model: LifeTransformer, rules: torch.Tensor, boards: torch.Tensor,
                 batch_size: int = 4096) -> torch.Tensor:
    """``P(alive)`` at every target: ``[N, K, H, W]`` float32 on the CPU (memory-bounded chunks)."""
    out = []
    for i in range(0, len(boards), batch_size):
        tokens = model.encode_prompt(rules[i : i + batch_size], boards[i : i + batch_size])
        logits = inference.target_logits(model, tokens).float()
        out.append(logits.softmax(-1)[..., 1].cpu())
    return model.layout.labels_to_boards(torch.cat(out))


def score(model: LifeTransformer, rules: torch.Tensor, boards: torch.Tensor) -> list[CellScores]:
    """Per future step k (t+1+k): the model's probabilities against the simulator."""
    k = model.layout.multi_steps
    truth = future_boards(boards.cpu(), rules.cpu(), k)[:, 1:]
    probs = target_probs(model, rules, boards)
    return [CellScores(probs[:, s], truth[:, s]) for s in range(k)]


def eval_boards(n: int, data: DataConfig, seed: int) -> torch.Tensor:
    """``[n, H, W]`` evaluation soups, drawn like the training boards but from their own seed."""
    g = torch.Generator().manual_seed(seed)
    return random_boards(n, data.height, data.width, data.density_min, data.density_max, g)


def spread_rules(rules: torch.Tensor, n_boards: int) -> torch.Tensor:
    """``[n_boards, 18]``: each of ``rules`` for an equal run of boards (the last rules may get one fewer)."""
    return rules.repeat_interleave(-(-n_boards // len(rules)), 0)[:n_boards]


def rule_set_metrics(model: LifeTransformer, data: DataConfig, rules: torch.Tensor, n_boards: int,
                     seed: int) -> dict:
    """Metrics on ``n_boards`` soups spread evenly over ``rules`` (``[n, 18]``)."""
    scores = score(model, spread_rules(rules, n_boards), eval_boards(n_boards, data, seed))
    out = {"n_rules": len(rules), **scores[0].summary()}
    if len(scores) > 1:
        out["cell_acc_by_step"] = [s.summary()["cell_acc"] for s in scores]
    return out


def heldout_metrics(model: LifeTransformer, data: DataConfig, n_boards: int, seed: int = 0) -> dict:
    """Metrics on the held-out test rules: measured at the end of training, never used to steer it."""
    return rule_set_metrics(model, data, heldout_rules(data.n_heldout, data.heldout_seed), n_boards, seed)


def validation_metrics(model: LifeTransformer, data: DataConfig, n_boards: int, seed: int = 0) -> dict:
    """Metrics on the validation rules (disjoint from the test rules and never trained on), on boards
    of their own seed: what training checks while it runs."""
    return rule_set_metrics(model, data, validation_rules(data), n_boards, seed + VALIDATION_BOARD_SEED)


def named_check(model: LifeTransformer, data: DataConfig, boards_per_rule: int, seed: int = 0) -> dict:
    """The worst named rule's cell accuracy during training (``named_acc`` in ``train.stop_when``). Named
    rules are training rules, so this checks training, not generalisation; its boards are the validation's
    seed's, never the final evaluation's."""
    named = named_metrics(model, data, boards_per_rule, seed + VALIDATION_BOARD_SEED)
    worst = min(named, key=lambda name: named[name]["cell_acc"])
    return {"named_worst_acc": named[worst]["cell_acc"], "named_worst_rule": worst}


def named_metrics(model: LifeTransformer, data: DataConfig, boards_per_rule: int, seed: int = 0) -> dict:
    """Per named rule: the t+1 metrics on ``boards_per_rule`` soups."""
    boards = eval_boards(boards_per_rule, data, seed + 1)
    out = {}
    for name, rule in NAMED_RULES.items():
        out[name] = {"rule": str(rule), **score(model, rule.bits.expand(len(boards), -1), boards)[0].summary()}
    return out


@dataclass
class RolloutComparison:
    """The model's autoregressive rollouts next to the simulator's, from the same start boards."""

    model: torch.Tensor  # [N, steps + 1, H, W] int64, on the CPU
    truth: torch.Tensor  # [N, steps + 1, H, W]

    @property
    def wrong_cells(self) -> torch.Tensor:
        """``[N, steps + 1]``: wrong cells per generation."""
        return (self.model != self.truth).flatten(2).sum(-1)

    @property
    def accuracy(self) -> torch.Tensor:
        """``[N, steps + 1]``: cell accuracy per generation."""
        return 1 - self.wrong_cells.float() / self.truth[0, 0].numel()

    def first_wrong(self) -> list[int | None]:
        """Per start, the first generation with a wrong cell (None: exact throughout)."""
        wrong = self.wrong_cells > 0
        return [int(w.float().argmax()) if w.any() else None for w in wrong]


def compare_rollouts(model: LifeTransformer, rules: torch.Tensor | Rule, starts: torch.Tensor,
                     steps: int) -> RolloutComparison:
    """Roll ``[N, H, W]`` starts out ``steps`` generations with the model and with the simulator.

    ``rules``: one :class:`Rule` for all starts, or ``[N, 18]`` bits (one per start).
    """
    bits = rules.bits.expand(len(starts), -1) if isinstance(rules, Rule) else rules
    ours = inference.rollout(model, bits, starts, steps).cpu()
    return RolloutComparison(ours, simulate_rollout(starts.cpu(), bits.cpu(), steps))


def rollout_divergence(model: LifeTransformer, rules: torch.Tensor | Rule, starts: torch.Tensor,
                       steps: int = ROLLOUT_CAP) -> list[int]:
    """First generation at which the model's rollout differs from the simulator, per start board
    (``steps``: it never did)."""
    return [steps if first is None else first for first in compare_rollouts(model, rules, starts, steps).first_wrong()]


def rollout_starts(data: DataConfig, n_soups: int, seed: int) -> dict[str, torch.Tensor]:
    """Named start boards: the known patterns in the middle of the board, then random soups."""
    h, w = data.height, data.width
    starts = {name: place(name, h, w, h // 2 - 1, w // 2 - 1) for name in ROLLOUT_PATTERNS}
    g = torch.Generator().manual_seed(seed + 2)
    for i, soup in enumerate(random_boards(n_soups, h, w, 0.35, 0.35, g)):
        starts[f"soup{i}"] = soup
    return starts


def rollout_metrics(model: LifeTransformer, data: DataConfig, seed: int = 0, n_soups: int = 4) -> dict:
    """Divergence step per start board for Conway's Life, and per held-out rule for soups."""
    starts = rollout_starts(data, n_soups, seed)
    held = heldout_rules(data.n_heldout, data.heldout_seed)[:8]
    conway = get_rule("B3/S23").bits.expand(len(starts), -1)
    boards = torch.cat([torch.stack(list(starts.values())), eval_boards(len(held), data, seed + 3)])
    first = rollout_divergence(model, torch.cat([conway, held]), boards)  # one rollout: half the forwards
    return {"cap": ROLLOUT_CAP, "conway": dict(zip(starts, first[: len(starts)])),
            "heldout_soups": first[len(starts):]}


def evaluate(model: LifeTransformer, data: DataConfig, n_boards: int = 4096, seed: int = 0,
             boards_per_named_rule: int = 256, rollouts: bool = True) -> dict:
    """The full evaluation report (a JSON-able dict)."""
    model.eval()
    report = {
        "heldout": heldout_metrics(model, data, n_boards, seed),
        "named": named_metrics(model, data, boards_per_named_rule, seed),
    }
    if rollouts:
        report["rollout"] = rollout_metrics(model, data, seed)
    return report


def evaluate_sizes(model: LifeTransformer, data: DataConfig, sizes: list[int], n_boards: int = 4096,
                   seed: int = 0, rollouts: bool = True) -> dict[str, dict]:
    """:func:`evaluate` on ``size x size`` boards for each size, with as many cells per size as
    ``n_boards`` 8x8 boards have (a size-free model; a fixed-size one only at its own size)."""
    out = {}
    for size in sizes:
        scale = 64 / (size * size)
        with model.sized(size, size):
            out[str(size)] = evaluate(model, replace(data, height=size, width=size),
                                      n_boards=max(8, round(n_boards * scale)), seed=seed,
                                      boards_per_named_rule=max(4, round(256 * scale)), rollouts=rollouts)
    return out


def format_sizes(reports: dict[str, dict]) -> str:
    """One row per board size: held-out accuracy and exact match, the worst named rule, rollouts."""
    lines = [f"{'board':>7} {'held-out acc':>12} {'exact':>8} {'worst named rule':>26} {'glider':>7} "
             f"{'soups (held-out rules)':>24}"]
    for size, r in reports.items():
        held = r["heldout"]
        worst_name, worst = min(r["named"].items(), key=lambda kv: kv[1]["cell_acc"])
        roll = r.get("rollout")
        glider = str(roll["conway"]["glider"]) if roll else "-"
        soups = f"min {min(roll['heldout_soups'])}" if roll else "-"
        worst_text = f"{worst_name} {100 * worst['cell_acc']:.3f}%"
        lines.append(f"{size + 'x' + size:>7} {100 * held['cell_acc']:11.3f}% {100 * held['board_exact']:7.2f}% "
                     f"{worst_text:>26} {glider:>7} {soups:>24}")
    if any(r.get("rollout") for r in reports.values()):
        lines.append(f"glider, soups: first generation the rollout differs from the simulator ({ROLLOUT_CAP}: never)")
    return "\n".join(lines)


def format_report(report: dict) -> str:
    """A plain-text table of an :func:`evaluate` report."""
    lines = [f"{'rule set':<22} {'rule':<16} {'cell acc':>9} {'exact':>8} {'AUC':>8} {'wrong':>7}"]

    def row(name: str, rule: str, m: dict) -> str:
        return (f"{name:<22} {rule:<16} {100 * m['cell_acc']:8.3f}% {100 * m['board_exact']:7.2f}%"
                f" {m['auc']:8.5f} {m['wrong_cells']:>7}")

    held = report["heldout"]
    lines.append(row("held-out random rules", f"({held['n_rules']} rules)", held))
    for name, m in report["named"].items():
        lines.append(row(name, m["rule"], m))
    if "rollout" in report:
        r = report["rollout"]
        conway = ", ".join(f"{k} {v}" for k, v in r["conway"].items())
        lines.append(f"rollout divergence (first wrong generation, cap {r['cap']}):")
        lines.append(f"  Conway's Life: {conway}")
        lines.append(f"  held-out rules, soups: {r['heldout_soups']}")
    return "\n".join(lines)


def save_rollout_animation(model: LifeTransformer, rule: str | Rule, start: str | torch.Tensor,
                           path: Path, steps: int | None = None) -> list[Path]:
    """Animate the model's rollout next to the simulator's (GIF, and MP4 with imageio-ffmpeg).

    ``start`` is a pattern name (placed mid-board) or a ``[H, W]`` board; ``steps`` defaults to
    one lap of a glider around the torus (4 x the larger board side).
    """
    rule = get_rule(rule)
    layout = model.layout
    if isinstance(start, str):
        start = place(start, layout.height, layout.width, layout.height // 2 - 1, layout.width // 2 - 1)
    steps = steps or 4 * max(layout.height, layout.width)
    model_states = inference.rollout(model, rule.bits.expand(1, -1), start[None], steps)[0].cpu()
    true_states = simulate_rollout(start, rule, steps)
    title = f"{rule.name or rule}"
    from interfere.viz.animate import comparison_frames, write_frames  # matplotlib: only when a GIF is written

    return write_frames(comparison_frames(model_states, true_states, title), path)
