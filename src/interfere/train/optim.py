"""The optimisation pieces of training: AdamW groups, the learning-rate schedule, and EMA weights."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

from interfere.config import TrainConfig


def lr_factor(step: int, tc: TrainConfig, decay_start: int | None = None) -> float:
    """The learning rate's factor at ``step``: linear warm-up to 1, then

    * ``train.schedule: cosine``: cosine decay to ``min_lr_frac`` at ``tc.steps``;
    * ``train.schedule: triggered``: constant until the decay starts, then linear decay to ``min_lr_frac``
      over ``tc.decay_steps``. The decay starts at ``decay_start`` (the step at which validation reached
      ``train.decay_when``) or, at the latest, ``decay_steps`` before the cap, so a run that never gets
      there still anneals by its last step.
    """
    if step < tc.warmup_steps:
        return (step + 1) / tc.warmup_steps
    if tc.schedule == "triggered":
        latest = max(tc.warmup_steps, tc.steps - tc.decay_steps)
        start = latest if decay_start is None else min(decay_start, latest)
        progress = min(1.0, max(0.0, (step - start) / max(1, tc.decay_steps)))
        return tc.min_lr_frac + (1 - tc.min_lr_frac) * (1 - progress)
    progress = min(1.0, (step - tc.warmup_steps) / max(1, tc.steps - tc.warmup_steps))
    return tc.min_lr_frac + (1 - tc.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress))


class Schedule:
    """The learning-rate schedule of a run (:func:`lr_factor`), with the step its decay was triggered at."""

    def __init__(self, optimizer: torch.optim.Optimizer, tc: TrainConfig) -> None:
        self.tc, self.decay_start = tc, None
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, tc, self.decay_start))

    def trigger(self, step: int) -> bool:
        """Start the decay at ``step`` (once); True when this call started it."""
        if self.tc.schedule != "triggered" or self.decay_start is not None:
            return False
        self.decay_start = step
        return True

    def step(self) -> None:
        self.scheduler.step()

    def last_lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def state_dict(self) -> dict:
        return {**self.scheduler.state_dict(), "decay_start": self.decay_start}

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        self.decay_start = state.pop("decay_start", None)
        self.scheduler.load_state_dict(state)


def make_optimizer(model: torch.nn.Module, tc: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (not on biases, norms or embeddings)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_embedding = name in ("embed.W_E", "W_seg")
        (decay if p.dim() >= 2 and not is_embedding else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), fused=False)


def make_scheduler(optimizer: torch.optim.Optimizer, tc: TrainConfig) -> Schedule:
    return Schedule(optimizer, tc)


class EMA:
    """Exponential moving average of the trainable weights, kept as a shadow state dict."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - self.decay)

    def state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with the averaged weights in place of the live ones."""
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state.update({n: s.clone() for n, s in zip(self.names, self.shadow)})
        return state

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for n, s in zip(self.names, self.shadow):
            s.copy_(state[n])

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Temporarily put the averaged weights into the model (for evaluation)."""
        with torch.no_grad():
            live = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, live)


def maybe_ema(ema: EMA | None) -> contextlib.AbstractContextManager:
    """``ema.swapped_in()``, or nothing when EMA is off."""
    return ema.swapped_in() if ema is not None else contextlib.nullcontext()


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """True when no tensor holds a NaN or an infinity (one device sync)."""
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def snapshot_steps(steps: int, n: int) -> list[int]:
    """About ``n`` log-spaced steps in 1..steps (fewer when they round to the same step), the last one included."""
    if n <= 0 or steps <= 0:
        return []
    return sorted({int(round(s)) for s in np.geomspace(1, steps, n)})
