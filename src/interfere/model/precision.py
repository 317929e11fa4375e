"""The one rule for mixed precision inside the model's own kernels (RoPE, target attention)."""

from __future__ import annotations

import torch


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in at least fp32: bf16/fp16 become fp32; fp32 and fp64 are returned as they are (no copy)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()
