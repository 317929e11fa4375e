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
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from interfere.explore import batched
from interfere.explore.common import Context, add_samples_arg, parse_cell, parser, run_main
from interfere.model.life_model import LifeTransformer
from interfere.viz.boards import draw_board, draw_field, mark_cell
from interfere.viz.style import DIV_CMAP, INK, caption, save

NAME = "attn_contrib_vector"


def key_contributions(model: LifeTransformer, tokens: torch.Tensor, layer: int, head: int,
                      query_pos: int) -> torch.Tensor:
    """``[batch, T]``: each key's direct contribution, via (layer, head), to the query's logit difference."""
    v_name, p_name = f"blocks.{layer}.attn.hook_v", f"blocks.{layer}.attn.hook_pattern"
    take = {v_name: lambda act: act[:, :, head], p_name: lambda act: act[:, head, query_pos],
            "ln_final.hook_scale": lambda act: act[:, query_pos]}
    cache = {k: x.to(model.cfg.device) for k, x in
             batched.cached(model, tokens, list(take), take=lambda name, act: take[name](act)).items()}
    v = cache[v_name]  # [batch, key, d_head]
    a = cache[p_name]  # [batch, key]
    written = torch.einsum("bk,bkd,dm->bkm", a, v, model.blocks[layer].attn.W_O[head].float())
    written = written - written.mean(-1, keepdim=True)  # the final LayerNorm centres
    scale = cache["ln_final.hook_scale"]  # [batch, 1]
    direction = model.ln_final.w.float() * (model.unembed.W_U[:, 1] - model.unembed.W_U[:, 0]).float()
    return (written @ direction) / scale


def quiver(ax, field: np.ndarray) -> None:
    """Arrows of the field's spatial gradient, the longest one 0.45 of a cell."""
    gy, gx = np.gradient(field)
    longest = float(np.hypot(gx, gy).max())
    if longest == 0:
        return
    rows, cols = np.mgrid[0 : field.shape[0], 0 : field.shape[1]]
    ax.quiver(cols, rows, gx, gy, angles="xy", scale_units="xy", scale=longest / 0.45, color=INK,
              alpha=0.75, width=0.006, pivot="mid")


def run(ctx: Context, args: argparse.Namespace) -> tuple[dict, list[Path]]:
    layout = ctx.layout
    cell = parse_cell(args.query, layout) if args.query else (layout.height // 2, layout.width // 2)
    ex = ctx.examples(args.samples)
    q = layout.target_position(*cell)
    contrib = key_contributions(ctx.model, ex.tokens, args.layer, args.head, q).cpu()
    board_field = contrib[:, layout.board].reshape(-1, layout.height, layout.width)
    example, mean = board_field[0].numpy(), board_field.mean(0).numpy()
    lim = float(max(np.abs(example).max(), np.abs(mean).max(), 1e-6))

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
    draw_board(axes[0], ex.boards[0].numpy(), "board at t (example 0)")
    mark_cell(axes[0], *cell)
    for ax, field, title in ((axes[1], example, "example 0"), (axes[2], mean, f"mean over {args.samples} boards")):
        draw_field(ax, field, title, DIV_CMAP, -lim, lim, cell, "direct logit contribution")
        quiver(ax, field)
    fig.suptitle(f"L{args.layer}H{args.head}: each board cell's direct contribution to target {cell}'s "
                 "logit(alive) − logit(dead)")
    caption(fig, ctx.caption(layer=args.layer, head=args.head, query=cell)
            + " · arrows: spatial gradient of the field")
    files = [save(fig, ctx.out / f"contrib_L{args.layer}H{args.head}_q{cell[0]}_{cell[1]}.png")]
    prefix_total = contrib[:, layout.prefix].sum(1).mean().item()
    return {
        "layer": args.layer, "head": args.head, "query": list(cell),
        "mean_board_field": mean.tolist(), "mean_total_from_board": float(board_field.sum((1, 2)).mean()),
        "mean_total_from_prefix": prefix_total,
    }, files


def build_parser() -> argparse.ArgumentParser:
    p = parser("A head's per-cell direct contribution to a target's alive-minus-dead logit.")
    p.add_argument("--layer", type=int, default=0)
    p.add_argument("--head", type=int, default=0)
    p.add_argument("--query", default=None, help="query cell ROW,COL (default: the centre)")
    add_samples_arg(p, 64, 2)
    return p


def main(argv: list[str] | None = None) -> dict:
    return run_main(NAME, build_parser, run, argv)


if __name__ == "__main__":
    main()
