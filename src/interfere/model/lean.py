"""TransformerLens' attention and LayerNorm, computing intermediates only when a hook reads them
(docs/design.md, "The model").

TransformerLens writes both out op by op so that every intermediate can be hooked: the attention's
``[batch, head, query, key]`` scores and pattern (``hook_attn_scores``, ``hook_pattern``), the
LayerNorm's scale (``hook_scale``) and normalised input (``hook_normalized``). On a CPU those
elementwise passes are most of a hooked forward: the attention's over the largest tensor of the
model (the scale, our mask, the softmax, a NaN clean-up), the LayerNorm's three times per block
(TransformerLens normalises the query, key and value inputs separately).

:class:`LeanAttention` and :class:`LeanLayerNorm` run TransformerLens' own forward whenever a hook
listens at one of those points (a cache of the patterns, a patch, a gradient hook; for the scores,
any hook but the model's own mask), and otherwise the fused op: the same function
(``tests/test_model.py`` compares logits, caches and gradients), and every other hook (``hook_q``,
``hook_k``, ``hook_v``, ``hook_z``, the residual stream, the MLPs) fires as before.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from transformer_lens.components import Attention, LayerNorm

from interfere.model.hooks import act_name, norm_hook

ScoreMask = Callable[[int, int, int], torch.Tensor]  # (layer, queries, keys) -> bool allowed or additive bias


def op_by_op_hooks(n_layers: int) -> list[tuple[str, Callable]]:
    """No-op hooks at every ``hook_pattern`` and LayerNorm output: with them the model runs
    TransformerLens' own attention and LayerNorm op by op (for comparisons and benchmarks)."""
    names = [name for i in range(n_layers) for name in
             (act_name("pattern", i), norm_hook("normalized", i, "ln1"), norm_hook("normalized", i, "ln2"))]
    return [(name, lambda act, hook: act) for name in [*names, "ln_final.hook_normalized"]]


class LeanAttention(Attention):
    """A TransformerLens ``Attention`` that skips the explicit pattern when no hook needs it.

    ``score_mask(layer, queries, keys)`` (set by the model) gives what its ``hook_attn_scores`` hook
    applies: a bool ``[queries, keys]`` mask (True: may attend) or an additive ``[head, queries, keys]`` bias.
    """

    score_mask: ScoreMask

    def pattern_needed(self) -> bool:
        """True unless the scores have exactly one hook, the model's mask (any other, permanent or not,
        must see them; with none, TransformerLens' forward runs unmasked as it always did), and the
        pattern none."""
        scores = self.hook_attn_scores
        return (len(scores.fwd_hooks) != 1 or bool(scores.bwd_hooks) or self.hook_pattern.has_hooks(dir="both")
                or self.cfg.use_attn_result or self.cfg.positional_embedding_type != "standard")

    def forward(self, query_input: torch.Tensor, key_input: torch.Tensor, value_input: torch.Tensor,
                past_kv_cache_entry: object = None, additive_attention_mask: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, position_bias: torch.Tensor | None = None,
                ) -> torch.Tensor:
        plain = past_kv_cache_entry is None and additive_attention_mask is None and attention_mask is None
        if not plain or position_bias is not None or self.pattern_needed():
            return super().forward(query_input, key_input, value_input, past_kv_cache_entry,
                                   additive_attention_mask, attention_mask, position_bias)
        q, k, v = self.calculate_qkv_matrices(query_input, key_input, value_input)  # fires hook_q/k/v
        mask = self.score_mask(self.layer_id, q.shape[1], k.shape[1])
        if mask.is_floating_point():  # [head, q, k] broadcast over the batch: given as 4D, SDPA's CPU kernel is 3x
            mask = mask.to(q.dtype)[None].expand(q.shape[0], *mask.shape)  # faster than the 3D broadcast (torch 2.13)
        z = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
                                           scale=1.0 / float(self.attn_scale))
        z = self.hook_z(z.transpose(1, 2))  # [batch, pos, head, d_head]
        return F.linear(z.flatten(-2), self.W_O.flatten(0, 1).t(), self.b_O)


class LeanLayerNorm(LayerNorm):
    """A TransformerLens ``LayerNorm`` that runs as one fused op when no hook reads its scale or output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hooked = self.hook_scale.has_hooks(dir="both") or self.hook_normalized.has_hooks(dir="both")
        if hooked or self.cfg.dtype not in (torch.float32, torch.float64):
            return super().forward(x)
        return F.layer_norm(x, (self.length,), self.w, self.b, self.eps)
