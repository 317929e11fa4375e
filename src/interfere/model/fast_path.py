"""The training forward: target logits of a :class:`LifeTransformer` without its hooks (docs/design.md, "The model").

It computes the same function as ``model.target_logits(model(tokens))`` over the same parameters
(``tests/test_model.py`` asserts equal logits and equal gradients), but only what the loss needs.
It uses the *shape* of the layout's attention mask instead of applying it:

* the context (prefix, board, separators) and the targets are two separate streams; the context
  attends to itself with fused attention, and each target attends to the context plus itself, so
  blocked (query, key) pairs are never computed;
* every target's input is ``<MASK>`` plus its segment embedding, the same in every sequence, so the
  first layer's target queries, keys and values are computed once, not once per sequence;
* in the last layer the context contributes only keys and values (nothing else reaches a target).

Every analysis uses the hooked forward (``forward``, ``run_with_cache``, ``run_with_hooks``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer

from interfere.data.layout import MASK
from interfere.model.ops import affine, attention_out, layer_norm, mlp_residual, project
from interfere.model.precision import at_least_fp32
from interfere.model.rope2d import apply_rope


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[..., pos, n_heads * d_head]`` -> ``[..., n_heads, pos, d_head]``."""
    return x.unflatten(-1, (n_heads, -1)).transpose(-3, -2)


def _merge_heads(z: torch.Tensor) -> torch.Tensor:
    """``[..., n_heads, pos, d_head]`` -> ``[..., pos, n_heads * d_head]``."""
    return z.transpose(-3, -2).flatten(-2)


class TargetAttention(torch.autograd.Function):
    """Each target query attends to the context keys plus its own key: ``z = softmax([q.K_c, q.k_t]) @ [V_c; v_t]``.

    Shapes ``q, k_t, v_t``: ``[(batch,) head, targets, d_head]`` (no batch dim where they are the
    same in every sequence); ``k_c, v_c``: ``[batch, head, context, d_head]``. Written out by hand
    with its backward because autograd's version concatenates the self score onto the
    ``[batch, head, targets, context]`` scores and slices it off again, which costs several extra
    passes over that, the largest tensor of a step (``bench/README.md``).
    """

    @staticmethod
    def forward(ctx, q, k_c, v_c, k_t, v_t, scale: float):  # noqa: ANN001, ANN205
        # Matmuls run in the inputs' dtype (bf16 under autocast); the softmax and the saved
        # probabilities at least fp32, as autocast does for softmax. In fp32 every cast is a no-op.
        p = at_least_fp32(torch.matmul(q, k_c.transpose(-1, -2))).mul_(scale)  # scores, then probabilities
        p_self = (at_least_fp32(q) * at_least_fp32(k_t)).sum(-1, keepdim=True).mul_(scale)
        top = torch.maximum(p.amax(-1, keepdim=True), p_self)
        p = p.sub_(top).exp_()
        p_self = (p_self - top).exp_()
        total = p.sum(-1, keepdim=True).add_(p_self)
        p, p_self = p.div_(total), p_self.div_(total)
        z = at_least_fp32(torch.matmul(p.to(v_c.dtype), v_c)).add_(p_self * at_least_fp32(v_t))
        ctx.save_for_backward(q, k_c, v_c, k_t, v_t, p, p_self, z)
        ctx.scale = scale
        return z.to(q.dtype)

    @staticmethod
    def backward(ctx, dz):  # noqa: ANN001, ANN205
        q, k_c, v_c, k_t, v_t, p, p_self, z = ctx.saved_tensors
        scale, low = ctx.scale, v_c.dtype  # backward runs outside autocast: cast explicitly
        dz32, dz = at_least_fp32(dz), dz.to(low)
        row = (dz32 * z).sum(-1, keepdim=True)  # sum over keys of p * dp, = dz . z
        ds = at_least_fp32(torch.matmul(dz, v_c.transpose(-1, -2))).sub_(row).mul_(p).mul_(scale)
        ds_self = p_self * ((dz32 * at_least_fp32(v_t)).sum(-1, keepdim=True) - row) * scale
        dq = at_least_fp32(torch.matmul(ds.to(low), k_c.to(low))).add_(ds_self * at_least_fp32(k_t))
        dk_c = torch.matmul(ds.to(low).transpose(-1, -2), q.to(low))
        dv_c = torch.matmul(p.to(low).transpose(-1, -2), dz)
        dk_t, dv_t = ds_self * at_least_fp32(q), p_self * dz32
        return (dq.sum_to_size(q.shape).to(q.dtype), dk_c.to(k_c.dtype), dv_c,
                dk_t.sum_to_size(k_t.shape).to(k_t.dtype), dv_t.sum_to_size(v_t.shape).to(v_t.dtype), None)


def target_logits(model: HookedTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, K*H*W, 2]`` logits at the target positions of a :class:`~interfere.model.LifeTransformer`
    (its layout tables are the model's buffers), in layout order.

    Target tokens are not read: the layout defines every target input as ``<MASK>``.
    """
    cfg, n_heads = model.cfg, model.cfg.n_heads
    ctx, tgt = model.context_index, model.target_index
    rope_c = model.rope_cos[ctx], model.rope_sin[ctx]
    rope_t = model.rope_cos[tgt], model.rope_sin[tgt]
    scale = cfg.d_head**-0.5

    def rotate(x: torch.Tensor, cos_sin: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """2D RoPE on ``[(b,) pos, head * d_head]``, returned heads-first."""
        return apply_rope(x.unflatten(-1, (n_heads, -1)), *cos_sin).transpose(-3, -2)

    x_c = model.embed.W_E[tokens[:, ctx]] + model.W_seg[model.segment_ids[ctx]]  # W_pos is zero
    x_t = model.embed.W_E[MASK] + model.W_seg[model.segment_ids[tgt]]  # [targets, d]: same in every sequence
    for i, block in enumerate(model.blocks):
        attn, last = block.attn, i == cfg.n_layers - 1
        h_c, h_t = layer_norm(x_c, block.ln1, cfg), layer_norm(x_t, block.ln1, cfg)
        if last:
            k_c, v_c = project(h_c, [attn.W_K, attn.W_V], [attn.b_K, attn.b_V])
        else:
            q_c, k_c, v_c = project(h_c, [attn.W_Q, attn.W_K, attn.W_V], [attn.b_Q, attn.b_K, attn.b_V])
        q_t, k_t, v_t = project(h_t, [attn.W_Q, attn.W_K, attn.W_V], [attn.b_Q, attn.b_K, attn.b_V])
        k_c, v_c = rotate(k_c, rope_c), _heads(v_c, n_heads)  # [b, head, ctx, d_head]
        q_t, k_t, v_t = rotate(q_t, rope_t), rotate(k_t, rope_t), _heads(v_t, n_heads)  # [(b,) head, tgt, d_head]

        z_t = TargetAttention.apply(q_t, k_c, v_c, k_t, v_t, scale)
        x_t = mlp_residual(x_t + attention_out(_merge_heads(z_t), attn), block, cfg)
        if not last:
            z_c = F.scaled_dot_product_attention(rotate(q_c, rope_c), k_c, v_c)
            x_c = mlp_residual(x_c + attention_out(_merge_heads(z_c), attn), block, cfg)
    final = layer_norm(x_t, getattr(model, "ln_final", None), cfg)  # no ln_final without normalisation
    return affine(final, model.unembed.W_U, model.unembed.b_U)
