"""PCA scatter of the residual stream: is the neighbour count / next state laid out visibly?

    python explorations/embed_scatter.py --layer 1 [--at target|board] [--color count|next]

Two principal components (scikit-learn) of ``blocks.{layer}.hook_resid_pre`` at the chosen
positions across boards, coloured by neighbour count (discrete palette, legend) or by next state.
``--layer n_layers`` means the final residual (after the last block).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

from interfere.explore import batched
from interfere.explore.common import Context, add_samples_arg, check_range, parser, run_main
from interfere.viz.style import ACCENT, COUNT_PALETTE, DEAD_COLOR, DEAD_POINT_COLOR, caption, save

NAME = "embed_scatter"
MAX_POINTS = 6000


def hook_name(layer: int, n_layers: int) -> str:
    return f"blocks.{layer}.hook_resid_pre" if layer < n_layers else f"blocks.{n_layers - 1}.hook_resid_post"


def run(ctx: Context, args: argparse.Namespace) -> tuple[dict, list[Path]]:
    n_layers = ctx.model.cfg.n_layers
    check_range("--layer", args.layer, n_layers + 1)
    ex = ctx.examples(args.samples)
    name = hook_name(args.layer, n_layers)
    positions = ctx.layout.targets[0] if args.at == "target" else ctx.layout.board
    cache = batched.cached(ctx.model, ex.tokens, [name], take=lambda _, act: act[:, positions])
    x = cache[name].numpy().reshape(-1, ctx.model.cfg.d_model)
    counts = ex.counts.reshape(-1).numpy()
    nxt = ex.next_boards.reshape(-1).numpy()
    rng = np.random.default_rng(ctx.seed)
    keep = rng.permutation(len(x))[:MAX_POINTS]
    pca = PCA(n_components=2, random_state=ctx.seed).fit(x)
    xy = pca.transform(x[keep])
    var = pca.explained_variance_ratio_

    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    if args.color == "count":
        for c in range(9):
            sel = counts[keep] == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=COUNT_PALETTE(c), label=str(c), alpha=0.7, lw=0)
        ax.legend(title="neighbours", markerscale=3, frameon=False, fontsize=7, title_fontsize=7,
                  loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        for v, color, label in ((0, DEAD_POINT_COLOR, "dead at t+1"), (1, ACCENT, "alive at t+1")):
            sel = nxt[keep] == v
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=color, label=label, alpha=0.7, lw=0,
                       edgecolors=DEAD_COLOR)
        ax.legend(markerscale=3, frameon=False, fontsize=7)
    ax.set_xlabel(f"PC1 ({100 * var[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * var[1]:.1f}% of variance)")
    where = f"layer {args.layer}" if args.layer < n_layers else "final residual"
    ax.set_title(f"PCA of resid_pre, {where}, {args.at} positions, by {args.color}")
    caption(fig, ctx.caption(layer=args.layer, hook=name))
    files = [save(fig, ctx.out / f"pca_L{args.layer}_{args.at}_{args.color}.png")]
    return {"hook": name, "at": args.at, "color": args.color, "explained_variance": var.tolist(),
            "points": len(keep)}, files


def build_parser() -> argparse.ArgumentParser:
    p = parser("PCA scatter of the residual stream coloured by neighbour count or next state.")
    p.add_argument("--layer", type=int, default=1, help="0..n_layers (n_layers = final residual)")
    p.add_argument("--at", choices=["target", "board"], default="target")
    p.add_argument("--color", choices=["count", "next"], default="count")
    add_samples_arg(p, 128, 4)
    p.set_defaults(final_layer_ok=True)
    return p


def main(argv: list[str] | None = None) -> dict:
    return run_main(NAME, build_parser, run, argv)


if __name__ == "__main__":
    main()
