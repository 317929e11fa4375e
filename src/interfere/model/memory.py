"""Memory estimates, so that a board or batch that cannot fit is refused before any work starts.

The estimates count the tensors that dominate, in bytes, at fp32:

* a training step (the fast path): per layer the saved target-to-context attention probabilities
  ``[batch, head, targets, context]`` and the activations of both streams, plus two transient
  attention-sized buffers in the backward, plus the weights, gradients and AdamW/EMA state;
* a forward of the hooked model (analyses): per layer up to five ``[batch, head, T, T]`` tensors
  alive at once (scores, masked scores, pattern, and the zeros and result of TransformerLens's NaN
  guard after the softmax; measured 4.6-5.1 per sequence at life32), plus the residual stream: the
  worst case, when a hook reads the pattern (without one the attention is fused, :mod:`interfere.model.lean`);
* an inference forward of the fast path (evaluation, rollouts): one layer's target-to-context
  scores and probabilities, plus the residual streams.

For a window model (``model.positions: window``) each query attends to its window and the physics
tokens instead of the whole context, and above 16x16 each layer holds per-tile copies of its
queries, keys and values.

Evaluation, rollouts and analyses split their sequences into chunks whose transient activations
fit :func:`chunk_budget`: a quarter of the free memory, and never more than 1 GB, so that the
peak does not grow with the machine and an analysis keeps room for what it collects.

Checked against the peak resident memory of real steps (``bench/README.md``); they are meant to
be within a factor of about two, which is enough to tell 8x8 from 512x512.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from interfere.data.layout import SequenceLayout
from interfere.errors import UserError
from interfere.model.config import DENSE_MAX_CELLS, TILE, ModelConfig

FP32 = 4
GB = 1e9
CHUNK_SHARE = 0.25  # of the free memory, for the transient activations of one chunk (inference or analysis)
TABLE_BYTES_PER_POSITION = 64  # the layout's per-position tables (positions, segments, rotary angles, indices)
CHUNK_MAX_BYTES = 1e9  # and never more: the peak does not grow with the machine, and life32 analyses stay under 8 GB


def _n_params(cfg: ModelConfig, vocab: int = 64) -> int:
    d, m = cfg.d_model, cfg.d_mlp
    per_layer = 4 * d * cfg.n_heads * cfg.d_head + 2 * d * m + 6 * d + m
    return cfg.n_layers * per_layer + 2 * vocab * d


def _keys_and_gathered(cfg: ModelConfig, layout: SequenceLayout, batch: int) -> tuple[int, int]:
    """Keys each target attends to, and the bytes of one layer's per-tile copies of the queries, keys
    and values (a window model above DENSE_MAX_CELLS, :func:`interfere.model.window.tiled_attention`)."""
    if cfg.positions != "window":
        return layout.seq_len - layout.n_targets, 0
    if layout.n_cells <= DENSE_MAX_CELLS:  # the window model attends densely (interfere.model.window)
        return layout.n_physics + layout.n_cells + 1, 0
    halo = (TILE + 2 * cfg.window) ** 2
    tiles = -(-layout.height // TILE) * -(-layout.width // TILE)
    return layout.n_physics + halo + 1, (2 * tiles * halo + 4 * layout.n_cells) * batch * cfg.d_model * FP32


def train_step_bytes(cfg: ModelConfig, layout: SequenceLayout, batch: int) -> int:
    """Peak bytes of one fast-path training step on ``batch`` sequences (module docstring)."""
    cfg = cfg.resolved()
    context, targets = layout.seq_len - layout.n_targets, layout.n_targets
    keys, gathered = _keys_and_gathered(cfg, layout, batch)
    attention = batch * cfg.n_heads * targets * keys * FP32
    per_token = (11 * cfg.d_model + 2 * cfg.d_mlp) * FP32
    activations = cfg.n_layers * (batch * (context + targets) * per_token + 2 * gathered)
    return int((cfg.n_layers + 2) * attention + activations + 6 * _n_params(cfg) * FP32)


def forward_bytes(cfg: ModelConfig, layout: SequenceLayout, batch: int) -> int:
    """Peak bytes of one hooked forward (no gradients) on ``batch`` sequences (module docstring)."""
    cfg = cfg.resolved()
    t = layout.seq_len
    attention = 5 * batch * cfg.n_heads * t * t * FP32
    residual = 4 * batch * t * max(cfg.d_model * 3, cfg.d_mlp) * FP32
    return int(attention + residual + _n_params(cfg) * FP32)


def inference_bytes(cfg: ModelConfig, layout: SequenceLayout, batch: int) -> int:
    """Peak bytes of one fast-path forward without gradients on ``batch`` sequences."""
    cfg = cfg.resolved()
    context, targets = layout.seq_len - layout.n_targets, layout.n_targets
    keys, gathered = _keys_and_gathered(cfg, layout, batch)
    attention = 2 * batch * cfg.n_heads * targets * keys * FP32
    streams = 3 * batch * (context + targets) * max(3 * cfg.d_model, cfg.d_mlp) * FP32
    return int(attention + streams + gathered)


def chunk_budget(device: torch.device) -> int:
    """Bytes of transient activations one chunk of sequences may use on ``device``."""
    free = available_bytes(device)
    return int(CHUNK_MAX_BYTES if free is None else min(CHUNK_MAX_BYTES, CHUNK_SHARE * free))


def inference_batch(cfg: ModelConfig, layout: SequenceLayout, n: int, device: torch.device) -> int:
    """How many sequences (at most ``n``, at least 1) one inference chunk may hold on ``device``."""
    return max(1, largest_batch(lambda b: inference_bytes(cfg, layout, b), chunk_budget(device), n))


def available_bytes(device: torch.device) -> int | None:
    """Memory free for this process: CUDA's free memory, or the kernel's MemAvailable; None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def largest_batch(bytes_for: Callable[[int], int], budget: int, upper: int) -> int:
    """The largest batch in ``0..upper`` with ``bytes_for(batch) <= budget`` (0: not even one fits)."""
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if bytes_for(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_board_fits(cfg: ModelConfig, layout: SequenceLayout, device: torch.device) -> None:
    """Refuse, in one line and before anything is allocated, a board size whose one-sequence forward (and the
    layout's per-position tables) cannot fit in the memory this machine has free."""
    free = available_bytes(device)
    need = inference_bytes(cfg, layout, 1) + TABLE_BYTES_PER_POSITION * layout.seq_len
    if free is None or need <= free:
        return
    raise UserError(f"{layout.height}x{layout.width} boards need about {need / GB:,.1f} GB to run one sequence, but "
                    f"{device.type} has {free / GB:,.1f} GB free: use a smaller board (--size)")


def check_training_fits(cfg: ModelConfig, layout: SequenceLayout, batch: int, device: torch.device) -> None:
    """Refuse, in one line, a training step that cannot fit in the memory this machine has free."""
    free = available_bytes(device)
    need = train_step_bytes(cfg, layout, batch)
    if free is None or need <= free:
        return
    fits = largest_batch(lambda b: train_step_bytes(cfg, layout, b), free, batch)
    advice = (f"data.batch_size={fits} would fit" if fits else
              "not even one sequence fits: use smaller boards (data.height, data.width) or a smaller model")
    raise UserError(
        f"{layout.height}x{layout.width} boards with data.batch_size={batch} need about {need / GB:,.1f} GB per "
        f"training step ({layout.n_targets:,} targets attending to "
        f"{layout.seq_len - layout.n_targets:,} context tokens), but {device.type} has "
        f"{free / GB:,.1f} GB free; {advice}"
    )
