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
* above it: each cell gathers its window's ``(2r+1)^2`` keys and values, in memory linear in the
  board (at 32x32 3.5x faster than dense attention without gradients), so evaluation and
  rollouts run 64x64 boards and beyond.

It is what training, evaluation and rollouts use at every size; analyses use the hooked forward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from interfere.data.layout import MASK, SEG_BOARD, SEG_TARGET, window_shifts
from interfere.model.fast_path import affine

if TYPE_CHECKING:
    from interfere.model.life_model import LifeTransformer

BOARD_QUERY, TARGET_QUERY = 0, 1  # the two bias tables of a layer
DENSE_MAX_CELLS = 256  # boards up to 16x16 attend densely (module docstring)


def window_index(height: int, width: int, window: int, device: torch.device) -> torch.Tensor:
    """``[H*W * O]`` int64: the row-major cell of every cell's window, in :func:`window_shifts` order."""
    rows = torch.arange(height, device=device)[:, None, None]
    cols = torch.arange(width, device=device)[None, :, None]
    shifts = torch.tensor(window_shifts(window), device=device)
    return (((rows + shifts[:, 0]) % height) * width + (cols + shifts[:, 1]) % width).flatten()


def neighbours(cells: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``[b, h, N, d]`` -> ``[b, h, N, O, d]``: each cell's window (``index`` from :func:`window_index`)."""
    return cells.index_select(2, index).unflatten(2, (cells.shape[2], -1))


def local_attention(q: torch.Tensor, k_p: torch.Tensor, v_p: torch.Tensor, k_n: torch.Tensor, v_n: torch.Tensor,
                    bias: torch.Tensor, scale: float, own: tuple[torch.Tensor, torch.Tensor] | None = None
                    ) -> torch.Tensor:
    """Each query attends to the physics keys, its window (with ``bias``) and optionally its own key.

    ``q``: ``[b, h, S, N, d]`` (S query blocks over the same N cells); ``k_p, v_p``: ``[b, h, P, d]``;
    ``k_n, v_n``: ``[b, h, N, O, d]``; ``bias``: ``[h, O]``; ``own``: ``[b, h, S, N, d]`` keys and values.
    """
    near = (q.unsqueeze(-2) * k_n.unsqueeze(2)).sum(-1)  # [b, h, S, N, O]: many tiny products, not a bmm
    scores = [torch.einsum("bhsnd,bhpd->bhsnp", q, k_p) * scale, near * scale + bias[None, :, None, None, :]]
    if own is not None:
        scores.append((q * own[0]).sum(-1, keepdim=True) * scale)
    p = torch.softmax(torch.cat(scores, dim=-1), dim=-1)
    n_p, n_o = k_p.shape[2], k_n.shape[3]
    z = torch.einsum("bhsnp,bhpd->bhsnd", p[..., :n_p], v_p)
    z = z + (p[..., n_p : n_p + n_o].unsqueeze(-1) * v_n.unsqueeze(2)).sum(-2)
    if own is not None:
        z = z + p[..., n_p + n_o :] * own[1]
    return z


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


def target_logits(model: LifeTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, K*H*W, 2]`` logits at the target positions of a window model, in layout order."""
    cfg, layout, r = model.cfg, model.layout, model.life_cfg.window
    n_heads, d, scale = cfg.n_heads, cfg.d_model, cfg.d_head**-0.5
    b, H, W, K = tokens.shape[0], layout.height, layout.width, layout.multi_steps
    phys = model.layout.physics_index.to(tokens.device)
    dense = H * W <= DENSE_MAX_CELLS
    if dense:  # [N, N] offset index of each (query cell, key cell), (2r+1)^2 outside the window
        offsets = layout.window_offsets(r)[layout.targets[0]][:, layout.board]
        index = torch.where(offsets >= 0, offsets, (2 * r + 1) ** 2).to(tokens.device)
    else:
        index = window_index(H, W, r, tokens.device)

    def ln(x: torch.Tensor, norm: torch.nn.Module) -> torch.Tensor:
        return F.layer_norm(x, (d,), norm.w, norm.b, cfg.eps)

    def heads(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``[b, ..., d_model]`` -> ``[b, head, ..., d_head]`` through one of Q, K, V."""
        y = affine(x, w.permute(1, 0, 2).flatten(1), bias.flatten()).unflatten(-1, (n_heads, -1))
        return y.movedim(-2, 1)

    def out(x: torch.Tensor, z: torch.Tensor, block: torch.nn.Module) -> torch.Tensor:
        """Residual after the attention output ``z`` ``[b, head, ..., d_head]`` and the MLP."""
        x = x + affine(z.movedim(1, -2).flatten(-2), block.attn.W_O.flatten(0, 1), block.attn.b_O)
        hidden = block.mlp.act_fn(affine(ln(x, block.ln2), block.mlp.W_in, block.mlp.b_in))
        return x + affine(hidden, block.mlp.W_out, block.mlp.b_out)

    x_p = model.embed.W_E[tokens[:, phys]] + model.W_seg[model.segment_ids[phys]]  # [b, P, d]
    x_b = model.embed.W_E[tokens[:, layout.board]] + model.W_seg[SEG_BOARD]  # [b, N, d]
    seg_t = model.W_seg[SEG_TARGET : SEG_TARGET + K]  # [K, d]
    x_t = (model.embed.W_E[MASK] + seg_t)[None, :, None, :].expand(b, K, H * W, d)  # [b, K, N, d]
    for i, block in enumerate(model.blocks):
        attn, last = block.attn, i == cfg.n_layers - 1
        h_p, h_b, h_t = ln(x_p, block.ln1), ln(x_b, block.ln1), ln(x_t, block.ln1)
        k_p, v_p = heads(h_p, attn.W_K, attn.b_K), heads(h_p, attn.W_V, attn.b_V)
        k_b, v_b = heads(h_b, attn.W_K, attn.b_K), heads(h_b, attn.W_V, attn.b_V)  # [b, h, N, dh]
        q_t = heads(h_t, attn.W_Q, attn.b_Q)  # [b, h, K, N, dh]
        own = heads(h_t, attn.W_K, attn.b_K), heads(h_t, attn.W_V, attn.b_V)
        q_b = None if last else heads(h_b, attn.W_Q, attn.b_Q)
        if dense:
            keys, values = torch.cat([k_p, k_b], dim=2), torch.cat([v_p, v_b], dim=2)
            z_t = dense_attention(q_t.flatten(2, 3), keys, values, dense_bias(model.W_rel[i, TARGET_QUERY], index,
                                  len(phys), K), scale, (own[0].flatten(2, 3), own[1].flatten(2, 3)))
            z_t = z_t.unflatten(2, (K, H * W))
            if q_b is not None:
                z_b = dense_attention(q_b, keys, values, dense_bias(model.W_rel[i, BOARD_QUERY], index, len(phys)),
                                      scale)
        else:
            k_n, v_n = neighbours(k_b, index), neighbours(v_b, index)
            z_t = local_attention(q_t, k_p, v_p, k_n, v_n, model.W_rel[i, TARGET_QUERY], scale, own)
            if q_b is not None:
                z_b = local_attention(q_b[:, :, None], k_p, v_p, k_n, v_n, model.W_rel[i, BOARD_QUERY], scale)[:, :, 0]
        x_t = out(x_t, z_t, block)
        if not last:
            z_p = F.scaled_dot_product_attention(heads(h_p, attn.W_Q, attn.b_Q), k_p, v_p)
            x_p, x_b = out(x_p, z_p, block), out(x_b, z_b, block)
    logits = affine(ln(x_t, model.ln_final), model.unembed.W_U, model.unembed.b_U)  # [b, K, N, 2]
    return logits.flatten(1, 2)
