"""H4's logit lens: how well does the residual after each layer already predict the next state?

    python explorations/logit_lens.py [--samples 256]

The residual at t+1 target positions after each layer (``hook_embed`` + segments for "embed",
then ``blocks.{l}.hook_resid_post``) is passed through the model's own final LayerNorm and
unembedding; the report is next-state accuracy (argmax over dead/alive) and ROC-AUC per point.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from sklearn.metrics import roc_auc_score

from interfere.explore import batched
from interfere.explore.common import Context, Examples, add_samples_arg, parser, run_main
from interfere.model.life_model import LifeTransformer
from interfere.viz.style import ACCENT, ACCENT_2, GUIDE_COLOR, caption, save

NAME = "logit_lens"


def lens_points(n_layers: int) -> list[str]:
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(n_layers)]


@torch.no_grad()
def logit_lens(model: LifeTransformer, ex: Examples) -> dict[str, list[float]]:
    """Next-state accuracy and AUC of the unembedded residual at every lens point."""
    names = lens_points(model.cfg.n_layers)
    cache = batched.cached(model, ex.tokens, names, take=lambda _, act: act[:, model.layout.targets[0]])
    truth = ex.next_boards.reshape(len(ex.boards), -1)
    acc, auc = [], []
    for name in names:
        resid = cache[name].to(model.cfg.device)
        logits = model.unembed(model.ln_final(resid)).float().cpu()
        diff = logits[..., 1] - logits[..., 0]
        acc.append(((diff > 0).long() == truth).float().mean().item())
        auc.append(float(roc_auc_score(truth.flatten().numpy(), diff.flatten().numpy())))
    return {"points": ["embed"] + [f"after L{i}" for i in range(model.cfg.n_layers)], "acc": acc, "auc": auc}


def run(ctx: Context, args: argparse.Namespace) -> tuple[dict, list[Path]]:
    lens = logit_lens(ctx.model, ctx.examples(args.samples))
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    x = range(len(lens["points"]))
    ax.plot(x, lens["acc"], "-o", color=ACCENT, label="accuracy")
    ax.plot(x, lens["auc"], "--s", color=ACCENT_2, label="ROC-AUC")
    ax.axhline(0.5, color=GUIDE_COLOR, lw=0.8, zorder=0)
    ax.set_xticks(list(x), lens["points"])
    ax.set_ylim(0.4, 1.02)
    ax.set_xlabel("residual stream read out")
    ax.set_ylabel("next-state score at t+1 targets")
    ax.set_title("logit lens: when is the next state decided?")
    ax.legend(frameon=False)
    caption(fig, ctx.caption(samples=args.samples))
    return {"samples": args.samples, **lens}, [save(fig, ctx.out / "logit_lens.png")]


def build_parser() -> argparse.ArgumentParser:
    p = parser("H4: logit lens, next-state accuracy read from the residual after each layer.")
    add_samples_arg(p, 256, 4)
    return p


def main(argv: list[str] | None = None) -> dict:
    return run_main(NAME, build_parser, run, argv)


if __name__ == "__main__":
    main()
