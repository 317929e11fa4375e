"""``train.autocast``: bf16 autocast or fp32 for a run, decided once at start-up and logged.

Master weights, the optimizer and the loss stay fp32 either way. ``none`` and ``bf16`` pin the
choice; ``auto`` uses bf16 on CUDA, and on a CPU only where the CPU multiplies bf16 natively
(AVX-512 BF16 or AMX: without them bf16 is emulated, hundreds of times slower) *and* the model is
wide enough for bf16 to pay: ``d_model >= BF16_MIN_D_MODEL``. The rule is a shape rule, not a timing
at start-up, so that a seed gives the same run on a busy machine too (a start-up timing of the
demo's step swung from 0.4x to 20x while another job ran), and a conservative one: the whole-step
gain differs by CPU (at d_model 256, 2.4-2.7x on an AMD EPYC with AVX-512 BF16 but 1.1-1.3x on an
Intel Xeon with AMX). The threshold comes from ``bench/autocast_crossover.py``, which times whole
training steps in both precisions across widths with :func:`step_speedup` (bench/README.md).
"""

from __future__ import annotations

import time

import torch

from interfere.ca import N_RULE_BITS
from interfere.cpu import BF16_FLAGS, native_bf16
from interfere.data.layout import SequenceLayout

BF16_MIN_D_MODEL = 256  # below it bf16 steps measured up to 1.5x slower; from it never slower (bench/README.md)
PROBE_TOKENS = 4096  # tokens per timed step of step_speedup: a few sequences


def step_speedup(net: torch.nn.Module, layout: SequenceLayout, batch_size: int, repeats: int = 3) -> float:
    """fp32 time over bf16-autocast time of a forward and backward of ``net`` (target logits, as
    training computes them) on all-dead boards under rule 0 (best of ``repeats``, interleaved, after a
    warm-up). Uses no randomness and leaves the gradients as it found them (none)."""
    n = max(1, min(batch_size, PROBE_TOKENS // layout.seq_len))
    device = next(net.parameters()).device
    boards = torch.zeros(n, layout.height, layout.width, dtype=torch.long)
    tokens = layout.encode(torch.zeros(n, N_RULE_BITS, dtype=torch.long), boards).tokens.to(device)
    labels = torch.zeros(n, len(layout.target_index), dtype=torch.long, device=device)

    def seconds(bf16: bool) -> float:
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = net(tokens)
        torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten()).backward()
        return time.perf_counter() - t0

    try:
        seconds(False), seconds(True)  # warm-up: first calls allocate and fault in memory
        # interleaved, best of each: a burst of load from another process hits both precisions
        times = [(seconds(False), seconds(True)) for _ in range(repeats)]
        return min(t[0] for t in times) / min(t[1] for t in times)
    finally:
        net.zero_grad(set_to_none=True)


def autocast_choice(setting: str, device: torch.device, d_model: int) -> tuple[bool, str]:
    """(bf16 autocast on?, why) for ``train.autocast`` = ``setting`` (auto | none | bf16)."""
    if setting != "auto":
        return setting == "bf16", f"train.autocast={setting}"
    if device.type == "cuda":
        return True, "CUDA: bf16 autocast, fp32 master weights"
    if not native_bf16():
        return False, f"this CPU has no native bf16 ({' / '.join(BF16_FLAGS)} absent): fp32"
    if d_model < BF16_MIN_D_MODEL:
        return False, f"native bf16, but d_model {d_model} < {BF16_MIN_D_MODEL} is no faster in bf16: fp32"
    return True, f"native bf16 and d_model {d_model} >= {BF16_MIN_D_MODEL}: bf16 autocast, fp32 master weights"
