"""``train.autocast``: bf16 autocast or fp32 for a run, decided once at start-up and logged.

Master weights, the optimizer and the loss stay fp32 either way. ``none`` and ``bf16`` pin the
choice; ``auto`` uses bf16 on CUDA, and on a CPU only where the CPU multiplies bf16 natively
(AVX-512 BF16 or AMX: without them bf16 is emulated, hundreds of times slower) *and* the model is
wide enough for bf16 to pay: ``d_model >= BF16_MIN_D_MODEL``. The rule is a shape rule, not a timing
at start-up, so that a seed gives the same run on a busy machine too (a start-up timing of the
demo's step swung from 0.4x to 20x while another job ran), and a conservative one: the whole-step
gain differs by CPU (at d_model 256, 2.4-2.7x on an AMD EPYC with AVX-512 BF16 but 1.1-1.3x on an
Intel Xeon with AMX). The threshold comes from ``bench/autocast_crossover.py``, which times whole
training steps in both precisions across widths (bench/README.md).
"""

from __future__ import annotations

import torch

from interfere.cpu import BF16_FLAGS, native_bf16

BF16_MIN_D_MODEL = 256  # below it bf16 steps measured up to 1.5x slower; from it never slower (bench/README.md)


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
