"""Running a model on many sequences: target logits in memory-bounded chunks, predictions and
autoregressive rollouts (the model's own predictions fed back), at any board size the model runs.

Evaluation, rollouts, the explorer and ``python -m interfere run`` use these: the fast path, never a ``T x T``
tensor; analyses that need activations use the hooked forward (:mod:`interfere.explore.batched`).
"""

from __future__ import annotations

import torch

from interfere.ca.rules import Rule
from interfere.model.life_model import LifeTransformer
from interfere.model.memory import inference_batch


@torch.no_grad()
def target_logits(model: LifeTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """``[N, K*H*W, 2]`` target logits for any number of sequences, by the fast path in chunks sized to
    the free memory (:func:`interfere.model.memory.inference_batch`)."""
    chunk = inference_batch(model.life_cfg, model.layout, len(tokens), tokens.device)
    return torch.cat([model.fast_target_logits(tokens[i : i + chunk]) for i in range(0, len(tokens), chunk)])


@torch.no_grad()
def rollout(model: LifeTransformer, rules: torch.Tensor | Rule | list[Rule], boards: torch.Tensor,
            steps: int) -> torch.Tensor:
    """``[N, steps + 1, H, W]``: the given ``[N, H, W]`` boards, then the model's own predictions fed back."""
    states = [boards.to(model.cfg.device).long()]
    for _ in range(steps):
        logits = target_logits(model, model.encode_prompt(rules, states[-1]))
        first = model.layout.first_step(logits)  # the t+1 targets
        states.append(first.argmax(-1).view_as(states[-1]))
    return torch.stack(states, dim=1)


def predict(model: LifeTransformer, rules: torch.Tensor | Rule | list[Rule], boards: torch.Tensor,
            steps: int = 1) -> torch.Tensor:
    """The model's board after ``steps`` generations (autoregressive): ``[N, H, W]`` int64."""
    return rollout(model, rules, boards, steps)[:, -1]
