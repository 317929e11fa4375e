"""H4's logit lens: how well does the residual after each layer already predict the next state?

    python explorations/logit_lens.py [--samples 256]

The residual at t+1 target positions after each layer (``hook_embed`` + segments for "embed",
then ``blocks.{l}.hook_resid_post``) is passed through the model's own final LayerNorm and
unembedding; the report is next-state accuracy (argmax over dead/alive) and ROC-AUC per point.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from interfere.explore.analysis import Examples, Want, at_positions, fast_auc
from interfere.explore.common import add_samples_arg, parser, run_main
from interfere.model.hooks import act_name, resid_after
from interfere.model.life_model import LifeTransformer
from interfere.viz.style import ACCENT, ACCENT_2, GUIDE_COLOR, caption, save

NAME = "logit_lens"


@dataclass
class Params:
    samples: int = 256


@dataclass
class Result:
    samples: int
    points: list[str]  # "embed", "after L0", ...
    acc: list[float]  # next-state accuracy of the unembedded residual at each point
    auc: list[float]


def residual_points(n_layers: int) -> list[tuple[str, str]]:
    """(label, hook) of the residual stream before layer 0 and after every layer."""
    return [("embed", act_name("resid_pre", 0))] + [(f"after L{i}", resid_after(i, n_layers)) for i in range(n_layers)]


def wants(model: LifeTransformer, params: Params) -> list[Want]:
    view = at_positions("targets", model.layout.targets[0])
    return [(hook, view) for _, hook in residual_points(model.cfg.n_layers)]


@torch.no_grad()
def measure(model: LifeTransformer, ex: Examples, params: Params) -> Result:
    """Next-state accuracy and AUC of the unembedded residual at every point."""
    truth = ex.next_boards.reshape(len(ex.boards), -1)
    acc, auc = [], []
    for (hook, view), _ in zip(wants(model, params), residual_points(model.cfg.n_layers)):
        resid = ex.act(hook, view).to(model.cfg.device)
        logits = model.unembed(model.final_norm(resid)).float().cpu()
        diff = logits[..., 1] - logits[..., 0]
        acc.append(((diff > 0).long() == truth).float().mean().item())
        auc.append(fast_auc(truth.flatten(), diff.flatten()))
    return Result(len(ex), [label for label, _ in residual_points(model.cfg.n_layers)], acc, auc)


def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    x = range(len(result.points))
    ax.plot(x, result.acc, "-o", color=ACCENT, label="accuracy")
    ax.plot(x, result.auc, "--s", color=ACCENT_2, label="ROC-AUC")
    ax.axhline(0.5, color=GUIDE_COLOR, lw=0.8, zorder=0)
    ax.set_xticks(list(x), result.points)
    ax.set_ylim(0.4, 1.02)
    ax.set_xlabel("residual stream read out")
    ax.set_ylabel("next-state score at t+1 targets")
    ax.set_title("logit lens: when is the next state decided?")
    ax.legend(frameon=False)
    caption(fig, provenance(samples=result.samples))
    return [save(fig, out / "logit_lens.png")]


def build_parser() -> argparse.ArgumentParser:
    p = parser("H4: logit lens, next-state accuracy read from the residual after each layer.")
    add_samples_arg(p, 256, 4)
    return p


def main(argv: list[str] | None = None) -> dict:
    return run_main(__spec__.name, argv)


if __name__ == "__main__":
    main()
