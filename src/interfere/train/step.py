"""One training step's pieces: the forward the loss reads (fast path or hooked), the loss (case weights, focal),
gradient accumulation, deterministic mode, and the running window of loss and accuracy the log prints.
:mod:`interfere.train.loop` runs them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from interfere.model.life_model import LifeTransformer


class TargetLogits(torch.nn.Module):
    """What training differentiates: target logits, by the fused fast path or the hooked forward."""

    def __init__(self, model: LifeTransformer, fast: bool) -> None:
        super().__init__()
        self.model, self.fast = model, fast

    def forward(self, tokens: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is not None:
            self.model.resize(*size)
        if self.fast:
            return self.model.fast_target_logits(tokens)
        return self.model.target_logits(self.model(tokens))


def target_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                focal_gamma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over the two outputs (weighted by ``weights`` ``[N, targets]``, mean 1, if
    given; with ``focal_gamma`` > 0 the focal loss of Lin et al. 2017, each target's cross-entropy
    times ``(1 - p)^gamma``, p its probability of the right answer, so cells the model already gets
    right weigh less), and the number of correct cells (no sync)."""
    if weights is None and focal_gamma == 0:
        loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
    else:
        per_cell = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="none")
        if focal_gamma > 0:
            per_cell = per_cell * (1 - torch.exp(-per_cell)).pow(focal_gamma)
        if weights is not None:
            per_cell = per_cell * weights.flatten().to(per_cell.device)
        loss = per_cell.mean()
    correct = (logits.argmax(-1) == labels).sum()
    return loss, correct


def accumulate_gradients(net: torch.nn.Module, batches: list, autocast: contextlib.AbstractContextManager,
                         focal_gamma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward over micro-batches, each of one board size (gradients averaged over them, and over
    ranks by DDP, which synchronises only on the last one); returns the mean loss and the
    correct-cell count."""
    loss_sum = torch.zeros(())
    correct_sum = torch.zeros((), dtype=torch.long)
    for micro, batch in enumerate(batches):
        last = micro == len(batches) - 1
        sync = net.no_sync() if isinstance(net, DistributedDataParallel) and not last else contextlib.nullcontext()
        with sync:
            with autocast:
                logits = net(batch.tokens, (batch.layout.height, batch.layout.width))
            loss, correct = target_loss(logits, batch.labels[:, batch.layout.target_index.to(logits.device)],
                                        batch.weights, focal_gamma)
            (loss / len(batches)).backward()
        loss_sum = loss_sum.to(loss.device) + loss.detach() / len(batches)
        correct_sum = correct_sum.to(correct.device) + correct
    return loss_sum, correct_sum


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool, device: torch.device) -> Iterator[None]:
    """torch's deterministic algorithms (``train.deterministic``) for the block, without their NaN fill.

    On CPU the only non-deterministic op of a step is the embedding backward (atomic adds); its
    deterministic version is no slower (bench/README.md). CUDA warns where it cannot. The mode also
    fills every new tensor with NaN, for ops that would read memory before writing it; none of a
    training step's does (200 cpu_demo steps give bit-identical weights either way), and the fill costs
    1-2% of a cpu_demo step (steps alternating it on and off; docs/experiments.md, round 4).
    """
    was, was_filling = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(enabled, warn_only=device.type == "cuda")
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)
        torch.utils.deterministic.fill_uninitialized_memory = was_filling


class Window:
    """Loss and correct-cell sums over the steps since the last log line (kept on the device)."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.reset()

    def add(self, loss: torch.Tensor, correct: torch.Tensor) -> None:
        self.loss += loss
        self.correct += correct
        self.steps += 1

    def reset(self) -> None:
        self.loss.zero_()
        self.correct.zero_()
        self.steps, self.start = 0, time.perf_counter()
