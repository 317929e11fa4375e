"""PCA scatter of the residual stream: is the neighbour count / next state laid out visibly?

    python explorations/embed_scatter.py --layer 1 [--at target|board] [--color count|next]

Two principal components (scikit-learn) of ``blocks.{layer}.hook_resid_pre`` at the chosen
positions across boards, coloured by neighbour count (discrete palette, legend) or by next state.
``--layer n_layers`` means the final residual (after the last block).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

from interfere.explore.analysis import Examples, View, Want, at_positions
from interfere.explore.common import Context, add_samples_arg, check_range, parser, run_main
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer
from interfere.viz.style import ACCENT, COUNT_PALETTE, DEAD_COLOR, DEAD_POINT_COLOR, caption, save

NAME = "embed_scatter"
MAX_POINTS = 6000


@dataclass
class Params:
    samples: int = 128
    layer: int = 1  # 0..n_layers: the residual before this layer (n_layers: the final residual)
    at: str = "target"  # target | board positions
    color: str = "count"  # count | next
    seed: int = 0


@dataclass
class Result:
    hook: str
    layer: int
    at: str
    color: str
    final: bool
    explained_variance: list[float]
    points: int
    xy: list  # [points][2]: the kept cells on the first two principal components
    counts: list[int]  # the kept cells' neighbour counts
    next_states: list[int]


def hook_name(layer: int, n_layers: int) -> str:
    return act_name("resid_pre", layer) if layer < n_layers else act_name("resid_post", n_layers - 1)


def view(model: LifeTransformer, at: str) -> View:
    layout = model.layout
    return at_positions(at, layout.targets[0] if at == "target" else layout.board)


def wants(model: LifeTransformer, params: Params) -> list[Want]:
    return [(hook_name(params.layer, model.cfg.n_layers), view(model, params.at))]


def measure(model: LifeTransformer, ex: Examples, params: Params) -> Result:
    name = hook_name(params.layer, model.cfg.n_layers)
    x = ex.act(name, view(model, params.at)).numpy().reshape(-1, model.cfg.d_model)
    keep = np.random.default_rng(params.seed).permutation(len(x))[:MAX_POINTS]
    pca = PCA(n_components=2, random_state=params.seed).fit(x)
    return Result(hook=name, layer=params.layer, at=params.at, color=params.color,
                  final=params.layer >= model.cfg.n_layers,
                  explained_variance=pca.explained_variance_ratio_.tolist(), points=len(keep),
                  xy=pca.transform(x[keep]).tolist(), counts=ex.counts.reshape(-1).numpy()[keep].tolist(),
                  next_states=ex.next_boards.reshape(-1).numpy()[keep].tolist())


def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    xy, counts, nxt = np.array(result.xy), np.array(result.counts), np.array(result.next_states)
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    if result.color == "count":
        for c in range(9):
            sel = counts == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=COUNT_PALETTE(c), label=str(c), alpha=0.7, lw=0)
        ax.legend(title="neighbours", markerscale=3, frameon=False, fontsize=7, title_fontsize=7,
                  loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        for v, color, label in ((0, DEAD_POINT_COLOR, "dead at t+1"), (1, ACCENT, "alive at t+1")):
            sel = nxt == v
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=color, label=label, alpha=0.7, lw=0,
                       edgecolors=DEAD_COLOR)
        ax.legend(markerscale=3, frameon=False, fontsize=7)
    var = result.explained_variance
    ax.set_xlabel(f"PC1 ({100 * var[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * var[1]:.1f}% of variance)")
    where = "final residual" if result.final else f"layer {result.layer}"
    ax.set_title(f"PCA of resid_pre, {where}, {result.at} positions, by {result.color}")
    caption(fig, provenance(layer=result.layer, hook=result.hook))
    return [save(fig, out / f"pca_L{result.layer}_{result.at}_{result.color}.png")]


def params_from_args(args: argparse.Namespace, ctx: Context, thresholds: dict) -> Params:
    check_range("--layer", args.layer, ctx.model.cfg.n_layers + 1)
    return Params(samples=args.samples, layer=args.layer, at=args.at, color=args.color, seed=ctx.seed)


def build_parser() -> argparse.ArgumentParser:
    p = parser("PCA scatter of the residual stream coloured by neighbour count or next state.")
    p.add_argument("--layer", type=int, default=1, help="0..n_layers (n_layers = final residual)")
    p.add_argument("--at", choices=["target", "board"], default="target")
    p.add_argument("--color", choices=["count", "next"], default="count")
    add_samples_arg(p, 128, 4)
    p.set_defaults(final_layer_ok=True)
    return p


def main(argv: list[str] | None = None) -> dict:
    return run_main(__spec__.name, argv)


if __name__ == "__main__":
    main()
