"""2D rotary position embeddings for queries and keys on an H x W grid.

The first ``rotary_dim`` dims of each head are rotated in pairs: the first half of the pairs by
angles proportional to the row, the second half by angles proportional to the column; the rest
of the head is left unrotated, so a head can also attend by content alone (e.g. to the rule
tokens, which all sit at one fixed position).

Two frequency families:

* ``standard``: angle = position * base ** (-2i / m) as in RoFormer, per axis.
* ``toroidal``: angle = 2 * pi * k * position / size for integer k = 1, 2, ..., so offsets that
  are equal modulo the board size (H - 1 and -1) rotate identically and a q.k score can be
  exactly translation-equivariant on the torus.
"""

from __future__ import annotations

import math

import torch

from interfere.model.precision import at_least_fp32

ROPE_KINDS = ("toroidal", "standard")


def axis_frequencies(kind: str, n_freqs: int, size: int, base: float) -> torch.Tensor:
    """``[n_freqs]`` angular frequencies (radians per cell) for one axis of ``size`` cells."""
    if kind == "standard":
        return base ** (-torch.arange(n_freqs, dtype=torch.float64) / max(n_freqs, 1))
    if kind == "toroidal":
        distinct = size // 2  # k and size - k give the same cosines: 1..size//2 are all there is
        if distinct == 0:
            return torch.zeros(n_freqs, dtype=torch.float64)
        k = 1 + torch.arange(n_freqs) % distinct
        return 2 * math.pi * k.double() / size
    raise ValueError(f"Unknown rope kind {kind!r}; choose from {ROPE_KINDS}")


def rope_angles(
    pos2d: torch.Tensor, kind: str, rotary_dim: int, height: int, width: int, base: float = 10000.0
) -> torch.Tensor:
    """``[T, rotary_dim // 2]`` rotation angle of every (position, pair): rows first, then columns."""
    if rotary_dim % 4:
        raise ValueError(f"rotary_dim must be a multiple of 4 (pairs for rows and columns), got {rotary_dim}")
    n = rotary_dim // 4
    rows = pos2d[:, :1].double() * axis_frequencies(kind, n, height, base)
    cols = pos2d[:, 1:].double() * axis_frequencies(kind, n, width, base)
    return torch.cat([rows, cols], dim=1).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[(batch,) pos, head, d_head]`` by per-position angles (``cos``/``sin``: ``[T, P]``).

    Pairs are adjacent dims (2i, 2i + 1) among the first ``2P`` dims; the rest pass through.
    Each pair is multiplied as a complex number by ``cos + i sin``: one kernel forward and back,
    several times faster on CPU than the four real products (``bench/README.md``). Dtypes without
    a complex counterpart (bf16) are rotated in fp32 and cast back.
    """
    n_pos, n_pairs = x.shape[-3], cos.shape[-1]
    if n_pairs == 0:
        return x
    work = at_least_fp32(x)
    pairs = work[..., : 2 * n_pairs].unflatten(-1, (n_pairs, 2))
    if pairs.stride(-1) != 1 or pairs.storage_offset() % 2 or any(s % 2 for s in pairs.stride()[:-1]):
        pairs = pairs.contiguous()  # view_as_complex needs (re, im) adjacent and complex-aligned
    turn = torch.complex(cos[:n_pos, None, :].to(work.dtype), sin[:n_pos, None, :].to(work.dtype))
    rotated = torch.view_as_real(torch.view_as_complex(pairs) * turn).flatten(-2).to(x.dtype)
    return rotated if 2 * n_pairs == x.shape[-1] else torch.cat([rotated, x[..., 2 * n_pairs :]], dim=-1)
