"""The pieces both fast forwards share (:mod:`interfere.model.fast_path` for RoPE models,
:mod:`interfere.model.window` for size-free ones), over TransformerLens' parameters: the same
arithmetic as the hooked forward, without its hooks, one copy of each."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformerConfig


def affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x @ w + b`` for TransformerLens' ``[in, out]`` weights, the bias added inside the matmul."""
    return F.linear(x, w.t(), b)


def layer_norm(x: torch.Tensor, norm: torch.nn.Module | None, cfg: HookedTransformerConfig) -> torch.Tensor:
    """TransformerLens' ``LN`` (``normalization_type="LN"``) as one fused op; the identity for a model
    without normalisation (``normalization_type=None``, ``model.norm: none``)."""
    if cfg.normalization_type is None:
        return x
    return F.layer_norm(x, (cfg.d_model,), norm.w, norm.b, cfg.eps)


def project(h: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> list[torch.Tensor]:
    """``h @ W + b`` for several ``[head, d_model, d_head]`` weights (Q, K, V) in one matmul, split back
    into ``[..., head * d_head]`` each."""
    w = torch.cat([w.permute(1, 0, 2).flatten(1) for w in weights], dim=1)
    b = torch.cat([b.flatten() for b in biases])
    return list(affine(h, w, b).chunk(len(weights), dim=-1))


def attention_out(z: torch.Tensor, attn: torch.nn.Module) -> torch.Tensor:
    """The heads' outputs ``[..., head * d_head]`` through ``W_O`` (what the attention adds to the residual)."""
    return affine(z, attn.W_O.flatten(0, 1), attn.b_O)


def mlp_residual(x: torch.Tensor, block: torch.nn.Module, cfg: HookedTransformerConfig) -> torch.Tensor:
    """The residual after a block's MLP: ``x + MLP(LN2(x))``."""
    hidden = block.mlp.act_fn(affine(layer_norm(x, block.ln2, cfg), block.mlp.W_in, block.mlp.b_in))
    return x + affine(hidden, block.mlp.W_out, block.mlp.b_out)
