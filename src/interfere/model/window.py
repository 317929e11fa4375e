"""The forward of a size-free (``model.positions: window``) model, in memory linear in the board.

A window model has no position embedding at all: where a cell sits enters only through a learned
bias per (layer, query kind, head, offset) added to the attention score of each board cell at most
``r`` rows and columns away on the torus (the layout's window mask blocks the rest, so softmax
cannot be diluted by far cells however big the board). The bias, not the board size, is the
position scheme, so the same weights run every board size. Its inductive bias: nothing beyond the
window can be attended to, so H1 asks only whether the model narrows its window to the 3x3 stencil.

:func:`target_logits` computes the same function as the hooked forward (``tests/test_any_size.py``
asserts equal logits and gradients) without any ``T x T`` tensor; the physics tokens attend only to
each other, and the board cells and targets attend in one of two ways:

* up to ``DENSE_MAX_CELLS`` cells (training boards): to the physics tokens and *every* board cell
  (and the targets to themselves), far cells masked by the bias: plain matrix products, whose
  backward is several times faster on a CPU than the gathered windows' at 12x12, in memory bounded
  by ``DENSE_MAX_CELLS`` per cell;
* above it: in tiles of ``TILE x TILE`` query cells that share one halo of ``(TILE + 2r)^2`` keys
  (batched matrix products, in memory linear in the board), so evaluation and rollouts run 64x64
  boards and beyond.

It is what training, evaluation and rollouts use at every size; analyses use the hooked forward.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer

from interfere.data.layout import MASK, SEG_BOARD, SEG_TARGET
from interfere.model.config import DENSE_MAX_CELLS, TILE
from interfere.model.ops import affine, attention_out, layer_norm, mlp_residual, project

BOARD_QUERY, TARGET_QUERY = 0, 1  # the two bias tables of a layer


class Tiles(NamedTuple):
    """How a board is cut into tiles for :func:`tiled_attention` (from :func:`tile_tables`)."""

    queries: torch.Tensor  # [tiles * TILE^2] the cell of every query slot (cells repeat where TILE does not divide)
    keys: torch.Tensor  # [tiles * (TILE + 2r)^2] the cell of every key slot of each tile's halo
    offsets: torch.Tensor  # [TILE^2, (TILE + 2r)^2] window offset index of (query slot, key slot); O outside
    first: torch.Tensor  # [H*W] the query slot that answers for each cell


def tile_tables(height: int, width: int, window: int, device: torch.device) -> Tiles:
    """Tiles of ``TILE x TILE`` cells over the torus, each with the ``(TILE + 2r)^2`` cells its queries' windows
    reach; the same relative layout in every tile, so one offset table serves them all."""
    starts_r, starts_c = torch.meshgrid(torch.arange(0, height, TILE), torch.arange(0, width, TILE), indexing="ij")
    q_r, q_c = torch.meshgrid(torch.arange(TILE), torch.arange(TILE), indexing="ij")
    k_r, k_c = torch.meshgrid(torch.arange(-window, TILE + window), torch.arange(-window, TILE + window), indexing="ij")

    def cells(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        r = (starts_r.flatten()[:, None] + rows.flatten()) % height
        return (r * width + (starts_c.flatten()[:, None] + cols.flatten()) % width).flatten()

    d_r, d_c = k_r.flatten()[None] - q_r.flatten()[:, None], k_c.flatten()[None] - q_c.flatten()[:, None]
    span = 2 * window + 1
    inside = (d_r.abs() <= window) & (d_c.abs() <= window)
    offsets = torch.where(inside, (d_r + window) * span + d_c + window, span * span)
    queries = cells(q_r, q_c)
    first = torch.full((height * width,), -1, dtype=torch.long)
    first[queries.flip(0)] = torch.arange(len(queries) - 1, -1, -1)  # the lowest slot wins
    return Tiles(queries.to(device), cells(k_r, k_c).to(device), offsets.to(device), first.to(device))


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows of all heads ``[b, ..., h*d]`` -> ``[b, h, ..., d]``."""
    return x.unflatten(-1, (n_heads, -1)).movedim(-2, 1)


def merge_heads(z: torch.Tensor) -> torch.Tensor:
    """``[b, h, ..., d]`` -> rows of all heads ``[b, ..., h*d]`` (the inverse of :func:`split_heads`)."""
    return z.movedim(1, -2).flatten(-2)


def per_tile(x: torch.Tensor, index: torch.Tensor, n_tiles: int, n_heads: int) -> torch.Tensor:
    """Rows of all heads ``[b, ..., N, h*d]`` gathered into tiles, ``[b, h, ..., tiles, slots, d]``: whole rows
    are gathered (several times faster than gathering per head), then split into heads."""
    return split_heads(x.index_select(-2, index).unflatten(-2, (n_tiles, -1)), n_heads)


def tile_halos(k_b: torch.Tensor, v_b: torch.Tensor, tiles: Tiles, n_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each tile's halo of board keys and values, ``[b, h, 1, tiles, (TILE + 2r)^2, d]``, from rows
    ``[b, N, h*d]``: gathered once per layer, for the board's and the targets' queries alike."""
    n_tiles = len(tiles.keys) // tiles.offsets.shape[1]
    return per_tile(k_b[:, None], tiles.keys, n_tiles, n_heads), per_tile(v_b[:, None], tiles.keys, n_tiles, n_heads)


def tiled_attention(q: torch.Tensor, k_p: torch.Tensor, v_p: torch.Tensor, halos: tuple[torch.Tensor, torch.Tensor],
                    bias: torch.Tensor, scale: float, tiles: Tiles,
                    own: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Each query attends to the physics keys, its window of board keys (with ``bias``) and optionally its
    own key, tile by tile: a tile's queries share one halo of keys (:func:`tile_halos`), so scores and
    values are batched matrix products over ``(TILE + 2r)^2`` keys (offsets outside a query's reach get
    ``-inf``).

    ``q`` and ``own`` (keys, values): rows of all heads, ``[b, S, N, h*d]`` (S query blocks over the same N
    cells); ``k_p, v_p``: ``[b, h, P, d]``; ``bias``: ``[h, O]``. Returns ``z`` as rows, ``[b, S, N, h*d]``.
    """
    k_t, v_t = halos
    n_tiles, n_heads = k_t.shape[3], k_t.shape[1]
    q_t = per_tile(q, tiles.queries, n_tiles, n_heads) * scale  # [b, h, S, tiles, T^2, d]
    table = torch.cat([bias, bias.new_full((bias.shape[0], 1), float("-inf"))], dim=1)[:, tiles.offsets]
    scores = [torch.einsum("bhstqd,bhpd->bhstqp", q_t, k_p),
              torch.matmul(q_t, k_t.transpose(-1, -2)).add_(table[None, :, None, None])]
    if own is not None:
        own_k, own_v = (per_tile(x, tiles.queries, n_tiles, n_heads) for x in own)
        scores.append((q_t * own_k).sum(-1, keepdim=True))
    p = torch.softmax(torch.cat(scores, dim=-1), dim=-1)
    n_p, n_k = k_p.shape[2], k_t.shape[-2]
    z = torch.einsum("bhstqp,bhpd->bhstqd", p[..., :n_p], v_p) + torch.matmul(p[..., n_p : n_p + n_k], v_t)
    if own is not None:
        z = z + p[..., n_p + n_k :] * own_v
    return merge_heads(z).flatten(2, 3).index_select(2, tiles.first)


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float,
                    own: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``softmax(q k^T * scale + bias) v`` for ``q`` ``[b, h, Q, d]``, ``k, v`` ``[b, h, K, d]``, ``bias``
    ``[h, Q, K]``; ``own``: each query's own key and value ``[b, h, Q, d]``, attended to as well."""
    if own is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale + bias
    p = torch.softmax(torch.cat([scores, (q * own[0]).sum(-1, keepdim=True) * scale], dim=-1), dim=-1)
    return torch.matmul(p[..., :-1], v) + p[..., -1:] * own[1]


def dense_bias(table: torch.Tensor, index: torch.Tensor, n_physics: int, steps: int = 1) -> torch.Tensor:
    """``[h, S*N, P + N]``: 0 on the physics keys and the window bias ``table`` ``[h, O]`` on the board
    keys (``-inf`` outside), for ``steps`` S blocks of N queries."""
    n_heads, n = table.shape[0], index.shape[0]
    board = torch.cat([table, table.new_full((n_heads, 1), float("-inf"))], dim=1)[:, index]  # [h, N, N]
    return torch.cat([table.new_zeros(n_heads, n, n_physics), board], dim=2).repeat(1, steps, 1)


def target_logits(model: HookedTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, K*H*W, 2]`` logits at the target positions of a window
    :class:`~interfere.model.LifeTransformer`, in layout order."""
    cfg, layout, r = model.cfg, model.layout, model.life_cfg.window
    n_heads, scale = cfg.n_heads, cfg.d_head**-0.5
    b, H, W, K = tokens.shape[0], layout.height, layout.width, layout.multi_steps
    phys = model.layout.physics_index.to(tokens.device)
    dense = H * W <= DENSE_MAX_CELLS
    if dense:  # [N, N] offset index of each (query cell, key cell), (2r+1)^2 outside the window
        offsets = layout.window_offsets(r)[layout.targets[0]][:, layout.board]
        index = torch.where(offsets >= 0, offsets, (2 * r + 1) ** 2).to(tokens.device)
    else:
        tiles = tile_tables(H, W, r, tokens.device)

    def heads(x: torch.Tensor) -> torch.Tensor:
        return split_heads(x, n_heads)

    def out(x: torch.Tensor, z: torch.Tensor, block: torch.nn.Module) -> torch.Tensor:
        """Residual after the attention output ``z`` ``[b, ..., head * d_head]`` and the MLP."""
        return mlp_residual(x + attention_out(z, block.attn), block, cfg)

    x_p = model.embed.W_E[tokens[:, phys]] + model.W_seg[model.segment_ids[phys]]  # [b, P, d]
    x_b = model.embed.W_E[tokens[:, layout.board]] + model.W_seg[SEG_BOARD]  # [b, N, d]
    seg_t = model.W_seg[SEG_TARGET : SEG_TARGET + K]  # [K, d]
    x_t = (model.embed.W_E[MASK] + seg_t)[None, :, None, :]  # [1, K, 1, d]: every target's, up to layer 0's attention
    for i, block in enumerate(model.blocks):
        attn, last = block.attn, i == cfg.n_layers - 1
        h_p, h_b, h_t = (layer_norm(x, block.ln1, cfg) for x in (x_p, x_b, x_t))
        qkv = [attn.W_Q, attn.W_K, attn.W_V], [attn.b_Q, attn.b_K, attn.b_V]
        q_p, k_p, v_p = (heads(x) for x in project(h_p, *qkv))  # [b, h, P, dh]
        q_b, k_b, v_b = project(h_b, *qkv) if not last else [None, *project(h_b, *(x[1:] for x in qkv))]
        q_t, *own = (x.expand(b, K, H * W, -1) for x in project(h_t, *qkv))  # [b, K, N, h*dh]; board [b, N, h*dh]
        if dense:
            keys, values = torch.cat([k_p, heads(k_b)], dim=2), torch.cat([v_p, heads(v_b)], dim=2)
            z_t = dense_attention(heads(q_t).flatten(2, 3), keys, values,
                                  dense_bias(model.W_rel[i, TARGET_QUERY], index, len(phys), K), scale,
                                  (heads(own[0]).flatten(2, 3), heads(own[1]).flatten(2, 3)))
            z_t = merge_heads(z_t.unflatten(2, (K, H * W)))
            if q_b is not None:
                z_b = merge_heads(dense_attention(heads(q_b), keys, values,
                                                  dense_bias(model.W_rel[i, BOARD_QUERY], index, len(phys)), scale))
        else:
            halos = tile_halos(k_b, v_b, tiles, n_heads)
            z_t = tiled_attention(q_t, k_p, v_p, halos, model.W_rel[i, TARGET_QUERY], scale, tiles, own)
            if q_b is not None:
                z_b = tiled_attention(q_b[:, None], k_p, v_p, halos, model.W_rel[i, BOARD_QUERY], scale, tiles)[:, 0]
        x_t = out(x_t, z_t, block)
        if not last:
            z_p = F.scaled_dot_product_attention(q_p, k_p, v_p)
            x_p, x_b = out(x_p, merge_heads(z_p), block), out(x_b, z_b, block)
    final = layer_norm(x_t, getattr(model, "ln_final", None), cfg)  # no ln_final without normalisation
    logits = affine(final, model.unembed.W_U, model.unembed.b_U)  # [b, K, N, 2]
    return logits.flatten(1, 2)
