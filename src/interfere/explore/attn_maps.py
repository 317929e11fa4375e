"""H1, locality via attention: where do target queries look on the board at t?

    python explorations/attn_maps.py --layer 0 --head 0 [--center | --query R,C] [--sweep heads|layers]

Measures per (layer, head), with A the attention pattern of t+1 target queries and N(q) the 3x3
toroidal neighbourhood of the query's cell, every share a fraction of the query's attention on the
board, averaged over queries and boards:

* *stencil share*: the share on N(q) (uniform baseline 9/(H*W)); it counts the query's own cell,
  so a head that only copies its own cell scores 1.0. Hence, separately:
* *own-cell share*: the share on the query's own cell (a *self-lookup* head has most of it there);
* *8-neighbour share*: the share on the 8 neighbours (uniform baseline 8/(H*W));
* *neighbour evenness*: the smallest of the 8 mean neighbour weights over their mean (1: spread
  evenly, as counting needs; 0: some neighbour ignored; a plus-shaped head scores low);
* *effective cells*: exp(entropy) of the mean 3x3 weights (9 = uniform over the stencil, 1 = one cell);
* *board share*: the attention mass on the board at all.

Figures: the chosen head's map for one query, all heads of the layer for that query, the relative
stencil (every query's map re-centred on the query, then averaged), and the per-head measures.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from interfere.ca.simulate import moore_neighbourhood
from interfere.data.layout import SequenceLayout
from interfere.explore.analysis import Examples, Want, target_rows
from interfere.explore.common import Context, add_samples_arg, parse_cell, parser, run_main
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer
from interfere.viz.animate import figure_to_array, write_frames
from interfere.viz.boards import draw_field, head_grid
from interfere.viz.style import SEQ_CMAP, caption, save

NAME = "attn_maps"


def board_attention(pattern: torch.Tensor, layout: SequenceLayout) -> torch.Tensor:
    """``[batch, head, T, T]`` -> ``[batch, head, HW query cell, HW key cell]``: t+1 targets to board."""
    targets = layout.targets[0]
    return pattern[:, :, targets, layout.board]


def stencil_shares(a: torch.Tensor, layout: SequenceLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """(stencil share, board share) per head, each ``[head]``, from board attention ``a`` (module docstring)."""
    a = a.float()
    board_mass = a.sum(-1)  # [batch, head, q]
    stencil_mass = (a * stencil_mask(layout).to(a.device)).sum(-1)
    ratio = torch.where(board_mass > 1e-12, stencil_mass / board_mass.clamp_min(1e-12), torch.nan)
    return ratio.nanmean(dim=(0, 2)), board_mass.mean(dim=(0, 2))


def stencil_mask(layout: SequenceLayout) -> torch.Tensor:
    """``[HW query cell, HW key cell]`` float, 1 on the query's 3x3 toroidal neighbourhood."""
    hood = moore_neighbourhood(layout.height, layout.width)
    return torch.zeros(layout.n_cells, layout.n_cells).scatter_(1, hood, 1.0)


OWN_OFFSET = 4  # index of the query's own cell among the 3x3 offsets (row-major, see moore_neighbourhood)


def stencil_profile(a: torch.Tensor, layout: SequenceLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """(``[head, 9]`` mean share of board attention on each 3x3 offset, ``[head]`` board share),
    from board attention ``a`` ``[batch, head, query cell, key cell]``."""
    a = a.float()
    board_mass = a.sum(-1)
    share = a / board_mass.clamp_min(1e-12)[..., None]
    hood = moore_neighbourhood(layout.height, layout.width).to(a.device)  # [q, 9]
    per_offset = share.gather(-1, hood.expand(*a.shape[:2], -1, -1))  # [b, head, q, 9]
    valid = (board_mass > 1e-12).float()[..., None]
    profile = (per_offset * valid).sum(dim=(0, 2)) / valid.sum(dim=(0, 2)).clamp_min(1)
    return profile, board_mass.mean(dim=(0, 2))


def locality_measures(profile: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per-head H1 measures (module docstring) from ``[..., 9]`` stencil profiles."""
    own = profile[..., OWN_OFFSET]
    neighbours = torch.cat([profile[..., :OWN_OFFSET], profile[..., OWN_OFFSET + 1 :]], dim=-1)
    p = profile / profile.sum(-1, keepdim=True).clamp_min(1e-12)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(-1)
    return {
        "own_share": own,
        "neighbour_share": neighbours.sum(-1),
        "neighbour_evenness": neighbours.min(-1).values / neighbours.mean(-1).clamp_min(1e-12),
        "effective_cells": entropy.exp(),
    }


def relative_maps(a: torch.Tensor, layout: SequenceLayout) -> torch.Tensor:
    """``[head, H, W]``: each query's board attention ``a`` re-centred so the query sits at (H//2, W//2)."""
    h, w = layout.height, layout.width
    a = a.float()  # [b, head, q, k]
    q_rows = torch.arange(h).repeat_interleave(w)[:, None]
    q_cols = torch.arange(w).repeat(h)[:, None]
    rel_r = torch.arange(h).repeat_interleave(w)[None, :] - h // 2
    rel_c = torch.arange(w).repeat(h)[None, :] - w // 2
    key = ((q_rows + rel_r) % h) * w + (q_cols + rel_c) % w  # [q, rel]
    idx = key[None, None].expand(a.shape[0], a.shape[1], -1, -1).to(a.device)
    return a.gather(-1, idx).mean(dim=(0, 2)).reshape(-1, h, w)


def query_map(board_att: torch.Tensor, layout: SequenceLayout, layer: int, head: int, cell: tuple[int, int]):
    """``[H, W]``: the mean attention of cell's t+1 target over the board (``board_att`` from board_patterns)."""
    return board_att[layer][:, head, layout.cell_index(*cell)].mean(0).reshape(layout.height, layout.width)


@dataclass
class Params:
    samples: int = 64
    layer: int = 0  # the layer and head of the single-query figures
    head: int = 0
    query: tuple[int, int] | None = None  # the query cell (default: the centre)
    sweep: str | None = None  # "heads" | "layers": also an animation across them


@dataclass
class Result:
    """Per (layer, head) locality measures (module docstring), and the maps the figures draw."""

    samples: int
    layer: int
    head: int
    query: list[int]
    board_size: list[int]  # [height, width]
    uniform_baseline: float
    neighbour_uniform_baseline: float
    stencil_share: list[list[float]]  # [layer][head]
    board_share: list[list[float]]
    own_share: list[list[float]]
    neighbour_share: list[list[float]]
    neighbour_evenness: list[list[float]]
    effective_cells: list[list[float]]
    stencil_profile: list  # [layer][head][9]
    best_head: dict
    best_stencil_share_per_layer: list[float]
    query_maps: list  # [layer][head][H][W]: the query cell's mean attention over the board
    relative_maps: list  # [head][H][W] of the chosen layer: every query re-centred
    sweep: str | None = None


def wants(model: LifeTransformer, params: Params) -> list[Want]:
    view = target_rows(model.layout, "targets->board", model.layout.board)
    return [(act_name("pattern", i), view) for i in range(model.cfg.n_layers)]


def board_patterns(model: LifeTransformer, ex: Examples) -> torch.Tensor:
    """``[layer, batch, head, HW query, HW key]``: the t+1 targets' attention over the board."""
    return torch.stack([ex.act(hook, view) for hook, view in wants(model, Params())])


def measure(model: LifeTransformer, ex: Examples, params: Params) -> Result:
    layout, cfg = model.layout, model.cfg
    cell = params.query or (layout.height // 2, layout.width // 2)
    patterns = board_patterns(model, ex)
    shares = [stencil_shares(patterns[i], layout) for i in range(cfg.n_layers)]
    stencil = torch.stack([s for s, _ in shares])  # [layer, head]
    board = torch.stack([b for _, b in shares])
    profile = torch.stack([stencil_profile(patterns[i], layout)[0] for i in range(cfg.n_layers)])  # [l, h, 9]
    measures = locality_measures(profile)
    best = torch.nonzero(stencil == stencil.nan_to_num(-1).max())[0].tolist()
    maps = [[query_map(patterns, layout, layer, h, cell) for h in range(cfg.n_heads)] for layer in range(cfg.n_layers)]
    return Result(
        samples=len(ex), layer=params.layer, head=params.head, query=list(cell),
        board_size=[layout.height, layout.width],
        uniform_baseline=float(stencil_mask(layout).sum(1).mean()) / layout.n_cells,
        neighbour_uniform_baseline=8 / layout.n_cells, stencil_share=stencil.tolist(), board_share=board.tolist(),
        **{k: v.tolist() for k, v in measures.items()}, stencil_profile=profile.tolist(),
        best_head={"layer": best[0], "head": best[1], "stencil_share": float(stencil[best[0], best[1]])},
        best_stencil_share_per_layer=stencil.nan_to_num(-1).max(1).values.tolist(),
        query_maps=torch.stack([torch.stack(m) for m in maps]).tolist(),
        relative_maps=relative_maps(patterns[params.layer], layout).tolist(), sweep=params.sweep)


def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    r, cell = result, tuple(result.query)
    maps = torch.tensor(r.query_maps)
    height, width = r.board_size
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    draw_field(ax, maps[r.layer, r.head], f"L{r.layer}H{r.head}: attention of target {cell} to the board",
               SEQ_CMAP, 0, None, cell, "attention weight (mean over boards)")
    caption(fig, provenance(layer=r.layer, head=r.head, query=cell))
    files = [save(fig, out / f"query_L{r.layer}H{r.head}.png")]
    for name, fields_, title, centre in [
        ("heads", list(maps[r.layer]), f"layer {r.layer}: attention of target {cell} to the board, every head", cell),
        ("relative_stencil", list(torch.tensor(r.relative_maps)),
         f"layer {r.layer}: relative stencil (query re-centred at {height // 2},{width // 2})",
         (height // 2, width // 2)),
    ]:
        fig, axes = plt.subplots(1, len(fields_), figsize=(2.9 * len(fields_) + 0.8, 3.2), squeeze=False,
                                 layout="constrained")
        vmax = max(float(x.max()) for x in fields_)
        for h, ax in enumerate(axes[0]):
            im = draw_field(ax, fields_[h], f"head {h}", SEQ_CMAP, 0, vmax, centre, extent_labels=h == 0)
        fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02, pad=0.01).set_label("attention weight")
        fig.suptitle(title)
        caption(fig, provenance(layer=r.layer))
        files.append(save(fig, out / f"{name}_L{r.layer}.png"))
    files.append(locality_figure(r, out, provenance))
    if r.sweep:
        files += sweep_animation(r, maps, out, provenance)
    return files


def sweep_animation(r: Result, maps: torch.Tensor, out: Path, provenance: Callable[..., str]) -> list[Path]:
    """The query's map across heads (of ``r.layer``) or layers (of ``r.head``), as a GIF/MP4."""
    cell = tuple(r.query)
    pairs = [(r.layer, h) for h in range(maps.shape[1])] if r.sweep == "heads" else \
        [(layer, r.head) for layer in range(maps.shape[0])]
    frames = []
    for layer, head in pairs:
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
        draw_field(ax, maps[layer, head], f"L{layer}H{head}: target {cell}", SEQ_CMAP, 0, 1, cell, "attention weight")
        caption(fig, provenance(layer=layer, head=head))
        frames.append(figure_to_array(fig))
    return write_frames(frames, out / f"sweep_{r.sweep}", fps=1.5)


def locality_figure(r: Result, out: Path, provenance: Callable[..., str]) -> Path:
    """The per-head H1 measures side by side: where a head's board attention goes, and how evenly."""
    n_layers, n_heads = len(r.stencil_share), len(r.stencil_share[0])
    n_cells = r.board_size[0] * r.board_size[1]
    panels = [
        (r.stencil_share, f"3x3 stencil share\n(uniform {r.uniform_baseline:.3f})", "share of board attention"),
        (r.own_share, f"own-cell share\n(uniform {1 / n_cells:.3f})", "share of board attention"),
        (r.neighbour_share, f"8-neighbour share\n(uniform {8 / n_cells:.3f})", "share of board attention"),
        (r.neighbour_evenness, "neighbour evenness\n(min / mean of the 8)", "1 = even"),
        (r.board_share, "board share", "attention mass on the board"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.8 + 2.3 * len(panels) * max(1, n_heads / 4),
                                                      1.9 + 0.55 * n_layers), layout="constrained")
    for ax, (values, title, label) in zip(axes, panels):
        head_grid(ax, np.array(values, dtype=float), title, label)
    fig.suptitle("H1: where t+1 target queries look on the board, per head")
    caption(fig, provenance(samples=r.samples))
    return save(fig, out / "h1_locality.png")


def params_from_args(args: argparse.Namespace, ctx: Context, thresholds: dict) -> Params:
    query = parse_cell(args.query, ctx.layout) if args.query else None
    return Params(samples=args.samples, layer=args.layer, head=args.head, query=query, sweep=args.sweep)


def build_parser() -> argparse.ArgumentParser:
    p = parser("H1: attention maps of target queries over the board, and the 3x3 stencil share.")
    p.add_argument("--layer", type=int, default=0)
    p.add_argument("--head", type=int, default=0)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--center", action="store_true", help="query the central cell (the default)")
    where.add_argument("--query", default=None, help="query cell ROW,COL")
    p.add_argument("--sweep", choices=["heads", "layers"], default=None, help="also write a GIF/MP4 sweep")
    add_samples_arg(p, 64, 2, "boards to average over")
    return p


def main(argv: list[str] | None = None) -> dict:
    return run_main(__spec__.name, argv)


if __name__ == "__main__":
    main()
