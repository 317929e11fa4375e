"""The one model object: a TransformerLens ``HookedTransformer`` that owns its own hooks (docs/design.md, "The model").

:class:`LifeTransformer` *is* a ``HookedTransformer``. Its layout-dependent tables (``pos2d``,
segment ids, the attention mask, the rotary angles) are buffers, and the hooks that use them are
*permanent* hooks, so they fire in ``model(tokens)``, ``run_with_cache``, ``run_with_hooks``
and ``transformer_lens.patching`` alike, survive ``reset_hooks()``, and no analysis ever needs
to build its own:

* ``hook_embed``: adds the segment embedding ``W_seg[segment_id]`` (also exposed at
  ``hook_seg_embed``);
* ``blocks.{l}.attn.hook_q`` / ``hook_k``: 2D rotary embeddings (:mod:`interfere.model.rope2d`);
* ``blocks.{l}.attn.hook_attn_scores``: the layout's attention mask (``-inf`` where blocked) and,
  for a window model, its relative position bias (:meth:`LifeTransformer.score_mask`, which the
  fused attention of :mod:`interfere.model.lean` applies when no hook reads the scores).

TransformerLens' learned 1D positions (``W_pos``) are zeroed and frozen, so position enters only
through 2D RoPE (``model.positions: rope``, a model for one board size) or a learned bias on the
wrapped offsets inside a local window (``model.positions: window``, one model for every board
size: :mod:`interfere.model.window`); segments tell the board from the targets. The unembedding
has two outputs: logit 0 = dead, 1 = alive (the same ids as the ``0``/``1`` tokens).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.hook_points import HookPoint

from interfere.ca.rules import Rule
from interfere.ca.simulate import as_rule_bits
from interfere.data.layout import SEG_BOARD, VOCAB, SequenceLayout
from interfere.errors import UserError
from interfere.model import fast_path, window
from interfere.model.config import ModelConfig
from interfere.model.hooks import act_name
from interfere.model.lean import LeanAttention, LeanLayerNorm
from interfere.model.memory import check_board_fits
from interfere.model.rope2d import apply_rope, rope_angles


class NoPositions(nn.Module):
    """A window model's 1D position embedding: none, for any sequence length."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model

    def forward(self, tokens: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return torch.zeros(*tokens.shape, self.d_model, device=tokens.device)


class LifeTransformer(HookedTransformer):
    """A HookedTransformer with its layout's positions, segments and mask built in.

    A ``rope`` model runs the board size it was built for; a ``window`` model runs any size:
    :meth:`resize` (or :meth:`sized`) switches the layout its hooks and fast path use.
    """

    def __init__(self, cfg: ModelConfig, layout: SequenceLayout, device: str | torch.device = "cpu"):
        cfg = cfg.resolved()
        tl_cfg = HookedTransformerConfig(
            n_layers=cfg.n_layers,
            d_model=cfg.d_model,
            n_heads=cfg.n_heads,
            d_head=cfg.d_head,
            d_mlp=cfg.d_mlp,
            act_fn=cfg.act_fn,
            d_vocab=len(VOCAB),
            d_vocab_out=2,
            n_ctx=layout.seq_len,
            normalization_type="LN" if cfg.norm == "LN" else None,
            attention_dir="bidirectional",
            positional_embedding_type="standard",
            default_prepend_bos=False,
            seed=cfg.seed,
            device=str(device),
        )
        super().__init__(tl_cfg, move_to_device=False)
        self.life_cfg = cfg
        self.layout = layout
        self.W_seg = nn.Parameter(torch.randn(layout.n_segments, cfg.d_model) * tl_cfg.initializer_range)
        self.hook_seg_embed = HookPoint()  # [batch, pos, d_model]
        if self.size_free:
            # [layer, query kind (board, target), head, offset]: zero, so training starts from uniform
            self.W_rel = nn.Parameter(torch.zeros(cfg.n_layers, 2, cfg.n_heads, (2 * cfg.window + 1) ** 2))
            self.pos_embed = NoPositions(cfg.d_model)
        else:
            with torch.no_grad():
                self.pos_embed.W_pos.zero_()
            self.pos_embed.W_pos.requires_grad_(False)
        self.built_size = (layout.height, layout.width)  # data.height x data.width of its config
        self._use_layout(layout, device)
        self.setup()  # register hook_seg_embed with TransformerLens' hook dictionary
        self._add_layout_hooks()
        for block in self.blocks:  # TransformerLens' components, fused where no hook reads inside them
            block.attn.__class__ = LeanAttention
            block.attn.score_mask = self.score_mask
            if self.has_norm:
                block.ln1.__class__ = block.ln2.__class__ = LeanLayerNorm
        if self.has_norm:
            self.ln_final.__class__ = LeanLayerNorm
        self.to(device, print_details=False)

    # --- board size ---------------------------------------------------------------------------
    @property
    def size_free(self) -> bool:
        """True for a model that runs any board size (``model.positions: window``)."""
        return self.life_cfg.positions == "window"

    def _use_layout(self, layout: SequenceLayout, device: str | torch.device) -> None:
        """Point the hooks and the fast path at ``layout``'s tables."""
        cfg = self.life_cfg
        if self.size_free:
            layout.check_window(cfg.window)
            self._window_tables: tuple[torch.Tensor, torch.Tensor] | None = None  # built by the hooked forward
        self.layout = layout
        angles = rope_angles(layout.pos2d(), cfg.rope, cfg.rotary_dim, layout.height, layout.width, cfg.rope_base)
        tables = {"pos2d": layout.pos2d(), "segment_ids": layout.segment_ids(),
                  "rope_cos": angles.cos(), "rope_sin": angles.sin(),
                  "target_index": layout.target_index.clone(), "context_index": layout.context_index.clone()}
        if not self.size_free:
            tables["attn_blocked"] = ~layout.attention_mask()
        for name, table in tables.items():
            self.register_buffer(name, table.to(device), persistent=False)

    def check_size(self, height: int, width: int) -> None:
        """Refuse, in one line, a board size this model cannot run."""
        if self.size_free:
            self.layout.with_size(height, width).check_window(self.life_cfg.window)
            check_board_fits(self.life_cfg, self.layout.with_size(height, width), self.W_seg.device)
        elif (height, width) != self.built_size:
            h, w = self.built_size
            raise UserError(f"this checkpoint is a fixed-size model (model.positions=rope, {h}x{w} boards): it "
                             f"cannot run {height}x{width} boards; train a size-free model (model.positions=window, "
                             "e.g. --config-name exp/cpu_any)")

    def resize(self, height: int, width: int) -> LifeTransformer:
        """Run ``height x width`` boards from now on (a window model; a rope model only its own size)."""
        if (height, width) != (self.layout.height, self.layout.width):
            self.check_size(height, width)
            self._use_layout(self.layout.with_size(height, width), self.W_seg.device)
        return self

    @contextlib.contextmanager
    def sized(self, height: int, width: int) -> Iterator[LifeTransformer]:
        """``with model.sized(32, 32): ...`` runs 32x32 boards inside the block, then the size before."""
        before = (self.layout.height, self.layout.width)
        try:
            yield self.resize(height, width)
        finally:
            self.resize(*before)

    # --- the model's own hooks ---------------------------------------------------------------
    def _add_layout_hooks(self) -> None:
        self.add_perma_hook("hook_embed", self._add_segments)
        for layer in range(self.cfg.n_layers):
            self.add_perma_hook(act_name("q", layer), self._rotate)
            self.add_perma_hook(act_name("k", layer), self._rotate)
            self.add_perma_hook(act_name("attn_scores", layer), self._mask_scores)

    def _add_segments(self, embed: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        # embed: [batch, pos, d_model]
        return embed + self.hook_seg_embed(self.W_seg[self.segment_ids[: embed.shape[1]]])[None]

    def _rotate(self, x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        # x: [batch, pos, head, d_head]
        return apply_rope(x, self.rope_cos, self.rope_sin)

    def _mask_scores(self, scores: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        # scores: [batch, head, query_pos, key_pos]
        mask = self.score_mask(hook.layer(), *scores.shape[-2:])
        if mask.dtype == torch.bool:
            return scores.masked_fill(~mask, float("-inf"))
        return scores + mask.to(scores.dtype)

    def score_mask(self, layer: int, queries: int, keys: int) -> torch.Tensor:
        """What a layer's attention applies to its scores: a bool ``[queries, keys]`` mask (True: may
        attend) for a RoPE model; for a window model, an additive ``[head, queries, keys]`` bias, its
        learned relative bias inside the window and ``-inf`` outside."""
        if not self.size_free:
            return ~self.attn_blocked[:queries, :keys]
        if self._window_tables is None:
            offsets = self.layout.window_offsets(self.life_cfg.window)
            kind = (self.layout.segment_ids() != SEG_BOARD).long()  # query kind: board 0, target 1
            n_off = (2 * self.life_cfg.window + 1) ** 2
            index = torch.where(offsets >= 0, kind[:, None] * n_off + offsets, 2 * n_off)  # 2*n_off: no bias
            blocked = ~self.layout.attention_mask(self.life_cfg.window)
            self._window_tables = index.to(self.W_rel.device), blocked.to(self.W_rel.device)
        index, blocked = self._window_tables
        table = self.W_rel[layer].transpose(0, 1).flatten(1)  # [head, 2 * n_off]
        table = torch.cat([table, table.new_zeros(table.shape[0], 1)], dim=1)
        return table[:, index[:queries, :keys]].masked_fill(blocked[:queries, :keys], float("-inf"))

    # --- normalisation ------------------------------------------------------------------------
    @property
    def has_norm(self) -> bool:
        """False for a model without LayerNorm (``model.norm: none``): its residual reaches the unembedding as is."""
        return self.life_cfg.norm == "LN"

    def final_norm(self, resid: torch.Tensor) -> torch.Tensor:
        """The final LayerNorm (the identity without one): what the unembedding reads."""
        return self.ln_final(resid) if self.has_norm else resid

    def final_norm_scale(self, resid: torch.Tensor) -> torch.Tensor:
        """``[...]`` the final LayerNorm's divisor for residuals ``[..., d_model]`` (ones without one)."""
        if not self.has_norm:
            return resid.new_ones(resid.shape[:-1])
        return resid.var(-1, unbiased=False).add(self.cfg.eps).sqrt()

    def logit_direction(self) -> torch.Tensor:
        """``[d_model]``: the alive-minus-dead logit direction of the normalised residual, times the final
        LayerNorm's weight (a residual's centred component along it, over the scale, is its logit difference)."""
        direction = self.unembed.W_U[:, 1] - self.unembed.W_U[:, 0]
        return self.ln_final.w * direction if self.has_norm else direction

    # --- the training fast path ---------------------------------------------------------------
    def fast_target_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """``target_logits(self(tokens))`` computed by :mod:`interfere.model.fast_path` (training only)."""
        if self.size_free:
            return window.target_logits(self, tokens)
        return fast_path.target_logits(self, tokens)

    # --- convenience on top of forward ---------------------------------------------------------
    def target_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """``[batch, T, 2]`` logits -> ``[batch, K*H*W, 2]`` at the target positions, in order."""
        return logits[:, self.target_index]

    def encode_prompt(self, rules: torch.Tensor | Rule | list[Rule], boards: torch.Tensor) -> torch.Tensor:
        """Token sequences (targets ``<MASK>``ed) for rules and ``[N, H, W]`` boards on this device."""
        boards = boards.to(self.cfg.device)
        if isinstance(rules, list):
            rules = torch.stack([r.bits for r in rules])
        bits = as_rule_bits(rules, boards.shape[0], boards.device)
        return self.layout.encode(bits, boards).tokens


def n_params(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
