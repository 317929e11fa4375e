"""Hooked forwards in memory-bounded chunks, keeping only what an analysis needs.

A hooked forward builds ``[batch, head, T, T]`` attention tensors in every layer; at the life32
shape (T = 2,069) that is about 137 MB per sequence and tensor, so an analysis that runs 64 boards
at once needs tens of GB. These helpers split the batch into chunks sized by
:func:`interfere.model.memory.forward_bytes`, apply a ``take`` function to each cached activation
while the chunk is alive (e.g. keep the t+1 target rows over the board only), and concatenate the
results on the CPU. At the demo size every batch is one chunk, so numbers are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from interfere.model.hooks import block_of
from interfere.model.life_model import LifeTransformer
from interfere.model.memory import chunk_budget, forward_bytes, largest_batch

Hook = tuple[str, Callable]  # (hook name, hook function), as TransformerLens' run_with_hooks takes them
Hooks = list[Hook] | Callable[[slice], list[Hook]]  # the same hooks for every chunk, or per chunk of the batch
BASE_CELLS = 64  # per-size sample defaults are stated for 8x8 boards and scaled down with the cell count


def chunk_size(model: LifeTransformer, n: int) -> int:
    """Sequences per hooked forward: the most (up to ``n``) whose activations fit the budget; at least 1."""
    budget = chunk_budget(torch.device(model.cfg.device))
    return max(1, largest_batch(lambda b: forward_bytes(model.life_cfg, model.layout, b), budget, n))


def chunks(model: LifeTransformer, n: int) -> Iterator[slice]:
    size = chunk_size(model, n)
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def cached_views(model: LifeTransformer, tokens: torch.Tensor,
                 wants: list[tuple[str, str, Callable[[torch.Tensor], torch.Tensor]]]
                 ) -> dict[tuple[str, str], torch.Tensor]:
    """One chunked ``run_with_cache`` for several cuts of several hooks: ``(hook name, key, take)`` ->
    ``{(hook name, key): take(activation)}``, float32 on the CPU, concatenated along the batch. Only the
    cuts outlive their chunk."""
    names = {name for name, _, _ in wants}
    parts: dict[tuple[str, str], list[torch.Tensor]] = {(name, key): [] for name, key, _ in wants}
    with torch.no_grad():
        for part in chunks(model, len(tokens)):
            _, cache = model.run_with_cache(tokens[part], names_filter=lambda n: n in names)
            for name, key, take in wants:
                parts[(name, key)].append(take(cache[name]).float().cpu())
            del cache
    return {k: torch.cat(v) for k, v in parts.items()}


def cached(model: LifeTransformer, tokens: torch.Tensor, names: list[str],
           take: Callable[[str, torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """``run_with_cache`` over chunks: each named activation passed through ``take(name, act)``
    (default: kept whole), as float32 on the CPU, concatenated along the batch."""
    wants = [(name, name, (lambda act, n=name: take(n, act)) if take else (lambda act: act)) for name in names]
    return {name: act for (name, _), act in cached_views(model, tokens, wants).items()}


def target_logits(model: LifeTransformer, tokens: torch.Tensor, hooks: Hooks | None = None,
                  start: tuple[int, torch.Tensor] | None = None) -> torch.Tensor:
    """``[batch, K*H*W, 2]`` logits at the target positions of the hooked model, chunked; ``hooks`` is a
    list, or a function of the chunk ``part`` giving the hooks for ``tokens[part]``. ``start``, a block
    and the residual ``[batch, T, d_model]`` entering it, runs only that block and the ones after it
    (TransformerLens' ``start_at_layer``): for hooks that change nothing before it."""
    out = []
    with torch.no_grad():
        for part in chunks(model, len(tokens)):
            extra = hooks(part) if callable(hooks) else (hooks or [])
            if start is None:
                logits = model.run_with_hooks(tokens[part], fwd_hooks=extra)
            else:
                layer, resid = start
                logits = model.run_with_hooks(resid[part].to(model.cfg.device), start_at_layer=layer, fwd_hooks=extra)
            out.append(model.target_logits(logits).float().cpu())
    return torch.cat(out)


def first_hooked_block(hooks: Hooks | None) -> int:
    """The block a forward with ``hooks`` must start at: the first one any of them reads or changes (0 for
    a hook outside the blocks, such as ``hook_embed``, and for no hooks)."""
    names = [name for name, _ in (hooks(slice(0, 0)) if callable(hooks) else (hooks or []))]
    blocks = [block_of(name) or 0 for name in names]
    return min(blocks, default=0)


def scaled_samples(base: int, n_cells: int, floor: int) -> int:
    """A sample count stated for 8x8 boards, for boards of ``n_cells``: fewer boards as each has more
    cells (at 32x32, 1/16 as many), never below ``floor``."""
    return max(floor, math.ceil(base * min(1.0, BASE_CELLS / n_cells)))
