"""The analysis interface: examples, activations computed once, and what every analysis module provides.

An analysis is a module with

* ``NAME`` and a typed ``Params`` dataclass (``samples`` and its own settings; thresholds it applies are
  passed in, never read from a file by the analysis);
* ``wants(model, params) -> list[Want]``: the hooked-forward activations it reads, each cut down by a
  :class:`View` to what it needs (e.g. the t+1 target rows of the attention over the board);
* ``measure(model, examples, params) -> Result``: the numbers, a JSON-serialisable dataclass;
* ``plot(result, out, caption) -> list[Path]``: the figures.

:class:`Examples` carries an :class:`Activations` cache: whoever runs several analyses on one batch
(the report, per data seed) asks every analysis what it wants first, so that one chunked hooked forward
(:mod:`interfere.explore.batched`) computes all of it; an analysis that asks for something nobody
announced still gets it, from a forward of its own. docs/design.md says how to add an analysis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata

from interfere.ca.rules import governing_bit
from interfere.data.layout import SequenceLayout
from interfere.explore import batched
from interfere.model.life_model import LifeTransformer


@dataclass(frozen=True)
class View:
    """A named cut of one hook's activation ``[batch, ...]``, applied while its chunk is alive."""

    key: str
    take: Callable[[torch.Tensor], torch.Tensor] = field(compare=False)


Want = tuple[str, View]  # (hook name, view)


def at_positions(key: str, positions: slice) -> View:
    """Residual-like activations ``[batch, pos, ...]`` at a block of positions (e.g. ``layout.board``)."""
    return View(key, lambda act: act[:, positions])


def target_rows(layout: SequenceLayout, key: str, keys: slice) -> View:
    """Attention patterns ``[batch, head, q, k]`` -> the t+1 target queries over the key span ``keys``."""
    return View(key, lambda p: p[:, :, layout.targets[0], keys])


def whole(key: str = "whole") -> View:
    return View(key, lambda act: act)


class Activations:
    """Hooked-forward activations of one model on one batch of token sequences, each computed once."""

    def __init__(self, model: LifeTransformer, tokens: torch.Tensor) -> None:
        self.model, self.tokens = model, tokens
        self.pending: dict[tuple[str, str], View] = {}
        self.store: dict[tuple[str, str], torch.Tensor] = {}
        self.forwards = 0  # how many chunked hooked forwards were run (tests check sharing)

    def want(self, wants: list[Want]) -> None:
        """Announce activations to compute in the next forward."""
        for name, view in wants:
            if (name, view.key) not in self.store:
                self.pending[(name, view.key)] = view

    def get(self, name: str, view: View) -> torch.Tensor:
        """``view`` of hook ``name`` for the whole batch (float32, CPU); computes what is pending if needed."""
        if (name, view.key) not in self.store:
            self.want([(name, view)])
            self.compute()
        return self.store[(name, view.key)]

    def compute(self) -> None:
        """One chunked hooked forward for everything announced and not yet computed."""
        if not self.pending:
            return
        wants = [(name, key, view.take) for (name, key), view in self.pending.items()]
        self.store.update(batched.cached_views(self.model, self.tokens, wants))
        self.pending.clear()
        self.forwards += 1


@dataclass
class Examples:
    """A seeded batch of prompts, every ground-truth quantity an analysis may want, and the model's
    activations on it (:class:`Activations`, shared by everything that runs on this batch)."""

    rules: torch.Tensor  # [N, 18] bool
    boards: torch.Tensor  # [N, H, W] int64, the state at t
    next_boards: torch.Tensor  # [N, H, W] int64, the simulator's t+1
    counts: torch.Tensor  # [N, H, W] int64, live neighbours at t
    tokens: torch.Tensor  # [N, T] int64, on the model's device
    acts: Activations | None = None

    def __len__(self) -> int:
        return len(self.boards)

    def head(self, n: int) -> Examples:
        """The first ``n`` examples, reading the same activations (cut to ``n``)."""
        return dataclasses.replace(self, rules=self.rules[:n], boards=self.boards[:n], next_boards=self.next_boards[:n],
                                   counts=self.counts[:n], tokens=self.tokens[:n])

    def act(self, name: str, view: View) -> torch.Tensor:
        """The model's activation ``name`` cut by ``view``, for these examples."""
        return self.acts.get(name, view)[: len(self)]

    @property
    def cases(self) -> torch.Tensor:
        """``[N, cells]``: each cell's case, the index of the rule bit that decides it (``S_count`` alive,
        ``B_count`` dead: :func:`interfere.ca.rules.governing_bit`)."""
        return governing_bit(self.boards.flatten(1), self.counts.flatten(1))


def cell_labels(ex: Examples) -> dict[str, torch.Tensor]:
    """Every per-cell label a probe reads, ``[boards, cells]`` each: ``own`` (the state at t), ``count`` (live
    neighbours), ``next`` (the state at t+1) and ``rule b`` (each rule bit, the same at every cell)."""
    n_cells = ex.boards[0].numel()
    return {"own": ex.boards.flatten(1), "count": ex.counts.flatten(1), "next": ex.next_boards.flatten(1),
            **{f"rule {b}": ex.rules[:, b : b + 1].expand(-1, n_cells) for b in range(ex.rules.shape[1])}}


def fast_auc(labels: torch.Tensor | np.ndarray, scores: torch.Tensor | np.ndarray) -> float:
    """ROC-AUC of binary ``labels`` against ``scores`` (ties count half, as sklearn's), by ranks: the same
    number as ``roc_auc_score`` without its per-call overhead; NaN with a single class."""
    y = np.asarray(labels).ravel().astype(bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=np.float64).ravel())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def linear_probes(x: torch.Tensor, labels: dict[str, torch.Tensor], test: torch.Tensor,
                  continuous: tuple[str, ...] = ("count",)) -> dict[str, float]:
    """Least-squares linear probes (a small ridge, one solve for every label) from activations ``x``
    ``[boards, cells, d]`` to each label ``[boards, cells]``, fitted on the boards outside ``test``
    (``[boards]`` bool) and scored on those: R2 for the ``continuous`` labels, ROC-AUC for the rest."""
    x = torch.cat([x.float(), torch.ones(*x.shape[:2], 1)], dim=-1)
    y = torch.stack([labels[k].float() for k in labels], dim=-1)
    xtr, xte, ytr, yte = x[~test].flatten(0, 1), x[test].flatten(0, 1), y[~test].flatten(0, 1), y[test].flatten(0, 1)
    mu, sd = xtr[:, :-1].mean(0), xtr[:, :-1].std(0) + 1e-6  # standardise (the bias column stays)
    xtr[:, :-1], xte[:, :-1] = (xtr[:, :-1] - mu) / sd, (xte[:, :-1] - mu) / sd
    w = torch.linalg.solve(xtr.T @ xtr + 1e-3 * len(xtr) * torch.eye(x.shape[-1]), xtr.T @ ytr)
    pred = xte @ w
    out = {}
    for i, key in enumerate(labels):
        if key in continuous:
            ss = ((yte[:, i] - yte[:, i].mean()) ** 2).sum().clamp_min(1e-12)
            out[key] = float(1 - ((pred[:, i] - yte[:, i]) ** 2).sum() / ss)
        else:
            out[key] = fast_auc(yte[:, i].numpy(), pred[:, i].numpy())
    return out


def jsonable(value: Any) -> Any:
    """Dataclasses, tensors and arrays as plain dicts, lists and numbers (NaN stays NaN, as json writes it)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, torch.Tensor | np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value
