"""A head's contribution map: how much each board cell, through one head, pushes a target toward alive.

    python explorations/attn_contrib_vector.py --layer 0 --head 0 [--query R,C]

For target query q and board key k, the head writes ``A[q, k] * v_k @ W_O[head]`` into q's
residual. Projected through the final layer norm (centred, divided by q's final ``hook_scale``,
times ``ln_final.w``) onto the alive-minus-dead unembedding direction ``W_U[:, 1] - W_U[:, 0]``,
it is that key's direct contribution to q's alive-minus-dead logit. Drawn as a diverging heatmap
over the board, with a quiver of the field's spatial gradient on top.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from interfere.explore.analysis import Examples, View, Want
from interfere.explore.common import Context, add_samples_arg, parse_cell, parser, run_main
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer
from interfere.viz.boards import draw_board, draw_field, mark_cell
from interfere.viz.style import DIV_CMAP, INK, caption, save

NAME = "attn_contrib_vector"


@dataclass
class Params:
    samples: int = 64
    layer: int = 0
    head: int = 0
    query: tuple[int, int] | None = None  # the target's cell (default: the centre)


@dataclass
class Result:
    layer: int
    head: int
    query: list[int]
    samples: int
    example_board: list  # [H][W]: the first example's board at t
    example_field: list  # [H][W]: its per-cell direct contribution
    mean_board_field: list  # [H][W]: the mean over the examples
    mean_total_from_board: float
    mean_total_from_prefix: float


def query_position(model: LifeTransformer, params: Params) -> int:
    layout = model.layout
    return layout.target_position(*(params.query or (layout.height // 2, layout.width // 2)))


def wants(model: LifeTransformer, params: Params) -> list[Want]:
    q, head = query_position(model, params), params.head
    found = [(act_name("v", params.layer), View(f"head{head}", lambda act: act[:, :, head])),
             (act_name("pattern", params.layer), View(f"head{head}@{q}", lambda act: act[:, head, q]))]
    if model.has_norm:  # a model without LayerNorm (model.norm: none) has no scale to divide by
        found.append(("ln_final.hook_scale", View(f"@{q}", lambda act: act[:, q])))
    return found


def key_contributions(model: LifeTransformer, ex: Examples, params: Params) -> torch.Tensor:
    """``[batch, T]``: each key's direct contribution, via (layer, head), to the query's logit difference."""
    (v_name, v_view), (p_name, p_view), *scale_want = wants(model, params)
    v = ex.act(v_name, v_view).to(model.cfg.device)  # [batch, key, d_head]
    a = ex.act(p_name, p_view).to(model.cfg.device)  # [batch, key]
    written = torch.einsum("bk,bkd,dm->bkm", a, v, model.blocks[params.layer].attn.W_O[params.head].float())
    scale = torch.ones(len(v), 1, device=v.device)
    if scale_want:
        written = written - written.mean(-1, keepdim=True)  # the final LayerNorm centres
        scale = ex.act(*scale_want[0]).to(model.cfg.device)  # [batch, 1]
    return ((written @ model.logit_direction().float()) / scale).detach().cpu()


def measure(model: LifeTransformer, ex: Examples, params: Params) -> Result:
    layout = model.layout
    contrib = key_contributions(model, ex, params)
    board_field = contrib[:, layout.board].reshape(-1, layout.height, layout.width)
    return Result(layer=params.layer, head=params.head, query=list(params.query or (layout.height // 2,
                                                                                     layout.width // 2)),
                  samples=len(ex), example_board=ex.boards[0].tolist(), example_field=board_field[0].tolist(),
                  mean_board_field=board_field.mean(0).tolist(),
                  mean_total_from_board=float(board_field.sum((1, 2)).mean()),
                  mean_total_from_prefix=contrib[:, layout.prefix].sum(1).mean().item())


def quiver(ax, field: np.ndarray) -> None:
    """Arrows of the field's spatial gradient, the longest one 0.45 of a cell."""
    gy, gx = np.gradient(field)
    longest = float(np.hypot(gx, gy).max())
    if longest == 0:
        return
    rows, cols = np.mgrid[0 : field.shape[0], 0 : field.shape[1]]
    ax.quiver(cols, rows, gx, gy, angles="xy", scale_units="xy", scale=longest / 0.45, color=INK,
              alpha=0.75, width=0.006, pivot="mid")


def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    r, cell = result, tuple(result.query)
    example, mean = np.array(r.example_field), np.array(r.mean_board_field)
    lim = float(max(np.abs(example).max(), np.abs(mean).max(), 1e-6))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
    draw_board(axes[0], np.array(r.example_board), "board at t (example 0)")
    mark_cell(axes[0], *cell)
    for ax, field, title in ((axes[1], example, "example 0"), (axes[2], mean, f"mean over {r.samples} boards")):
        draw_field(ax, field, title, DIV_CMAP, -lim, lim, cell, "direct logit contribution")
        quiver(ax, field)
    fig.suptitle(f"L{r.layer}H{r.head}: each board cell's direct contribution to target {cell}'s "
                 "logit(alive) − logit(dead)")
    caption(fig, provenance(layer=r.layer, head=r.head, query=cell) + " · arrows: spatial gradient of the field")
    return [save(fig, out / f"contrib_L{r.layer}H{r.head}_q{cell[0]}_{cell[1]}.png")]


def params_from_args(args: argparse.Namespace, ctx: Context, thresholds: dict) -> Params:
    query = parse_cell(args.query, ctx.layout) if args.query else None
    return Params(samples=args.samples, layer=args.layer, head=args.head, query=query)


def build_parser() -> argparse.ArgumentParser:
    p = parser("A head's per-cell direct contribution to a target's alive-minus-dead logit.")
    p.add_argument("--layer", type=int, default=0)
    p.add_argument("--head", type=int, default=0)
    p.add_argument("--query", default=None, help="query cell ROW,COL (default: the centre)")
    add_samples_arg(p, 64, 2)
    return p


def main(argv: list[str] | None = None) -> dict:
    return run_main(__spec__.name, argv)


if __name__ == "__main__":
    main()
