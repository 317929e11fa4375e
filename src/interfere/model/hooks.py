"""Hook names, in one place: TransformerLens' own names (``get_act_name``) for every point this project reads or
writes, so no module spells ``blocks.{l}...`` by hand."""

from __future__ import annotations

import re

from transformer_lens.utilities import get_act_name

_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def act_name(kind: str, layer: int) -> str:
    """The name of a block's hook point, e.g. ``act_name("pattern", 1)`` -> ``blocks.1.attn.hook_pattern``; kinds:
    ``q k v z pattern attn_scores resid_pre resid_mid resid_post mlp_out post``."""
    return get_act_name(kind, layer)


def norm_hook(kind: str, layer: int, norm: str) -> str:
    """A LayerNorm's hook point inside a block, ``norm`` ``ln1`` or ``ln2``, ``kind`` ``scale`` or ``normalized``."""
    return get_act_name(kind, layer, norm)


def resid_after(layer: int, n_layers: int) -> str:
    """The residual stream after block ``layer``: the next block's input, or the last block's output."""
    return act_name("resid_pre", layer + 1) if layer + 1 < n_layers else act_name("resid_post", layer)


def block_of(name: str) -> int | None:
    """The block a hook name belongs to (None for points outside the blocks, such as ``hook_embed``)."""
    match = _BLOCK.match(name)
    return int(match.group(1)) if match else None
