"""Model components (attention heads, MLPs) and what can be done to their outputs, by hooks.

A component's output is ``blocks.{l}.attn.hook_z[:, :, h]`` for head h (its contribution to the
residual is that times ``W_O``, so replacing ``z`` replaces the head's output) or
``blocks.{l}.hook_mlp_out`` for an MLP. Two replacements:

* **mean ablation**: the output replaced, at every position, by its mean over a reference batch
  (per position), which removes what the component computes from the input while keeping its
  average contribution;
* **conditional replacement**: at the board and target positions, the output replaced by its mean
  over the reference batch *given a variable* of the cell (e.g. its own state, or the rule bits),
  which keeps exactly what the component carries about that variable and nothing else. A role
  claim "component C carries V" is falsified when the model's accuracy falls under it.

Every function runs the model through its own hooks (``run_with_hooks``), with the extra hooks here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from interfere.errors import UserError
from interfere.explore import batched
from interfere.explore.batched import Hook, Hooks
from interfere.explore.common import Examples
from interfere.model.life_model import LifeTransformer


@dataclass(frozen=True)
class Component:
    layer: int
    head: int | None = None  # None: the layer's MLP

    def __lt__(self, other: Component) -> bool:  # layer by layer, the heads before the MLP
        return (self.layer, self.head is None, self.head or 0) < (other.layer, other.head is None, other.head or 0)

    @property
    def name(self) -> str:
        return f"MLP{self.layer}" if self.head is None else f"L{self.layer}H{self.head}"

    @property
    def hook(self) -> str:
        return f"blocks.{self.layer}.hook_mlp_out" if self.head is None else f"blocks.{self.layer}.attn.hook_z"

    def get(self, act: torch.Tensor) -> torch.Tensor:
        """This component's slice of its hook's activation: ``[batch, pos, ...]``."""
        return act if self.head is None else act[:, :, self.head]


def all_components(model: LifeTransformer) -> list[Component]:
    cfg = model.cfg
    return [Component(l, h) for l in range(cfg.n_layers) for h in [*range(cfg.n_heads), None]]


def parse_component(name: str, model: LifeTransformer) -> Component:
    """``L0H1`` or ``MLP0`` -> a component of ``model`` (a clear error otherwise)."""
    for c in all_components(model):
        if c.name == name.upper():
            return c
    raise UserError(f"unknown component {name!r}: use LxHy for heads or MLPx, with x < {model.cfg.n_layers} "
                     f"and y < {model.cfg.n_heads}")


@torch.no_grad()
def reference_outputs(model: LifeTransformer, tokens: torch.Tensor, components: Iterable[Component]
                      ) -> dict[Component, torch.Tensor]:
    """Each component's output ``[batch, pos, ...]`` on ``tokens`` (float32, on the model's device)."""
    components = list(components)
    cache = batched.cached(model, tokens, sorted({c.hook for c in components}))
    return {c: c.get(cache[c.hook]).to(model.cfg.device) for c in components}


def replace_hooks(replacements: dict[Component, Callable[[torch.Tensor], torch.Tensor]]) -> list[Hook]:
    """Hooks that set each component's output to ``fn(clean output)``; components share a hook per name."""
    by_hook: dict[str, list[tuple[Component, Callable]]] = {}
    for c, fn in replacements.items():
        by_hook.setdefault(c.hook, []).append((c, fn))

    def make(items: list[tuple[Component, Callable]]) -> Callable:
        def hook(act: torch.Tensor, hook) -> torch.Tensor:
            act = act.clone()
            for c, fn in items:
                if c.head is None:
                    act = fn(act).to(act.dtype)
                else:
                    act[:, :, c.head] = fn(act[:, :, c.head]).to(act.dtype)
            return act
        return hook

    return [(name, make(items)) for name, items in by_hook.items()]


def mean_ablation(means: dict[Component, torch.Tensor], components: Iterable[Component]) -> list[Hook]:
    """Hooks replacing each component's output by its per-position reference mean ``[pos, ...]``."""
    return replace_hooks({c: (lambda out, m=means[c]: m[: out.shape[1]].expand_as(out)) for c in components})


@torch.no_grad()
def accuracy(model: LifeTransformer, ex: Examples, hooks: Hooks | None = None) -> float:
    """t+1 cell accuracy of the hooked model (argmax over dead/alive) on the examples, in chunks."""
    pred = batched.target_logits(model, ex.tokens, hooks)[:, : model.layout.n_cells].argmax(-1)
    return float((pred == ex.next_boards.flatten(1)).float().mean())


def importance(model: LifeTransformer, ex: Examples, means: dict[Component, torch.Tensor]) -> dict[Component, float]:
    """Accuracy with each component mean-ablated alone."""
    return {c: accuracy(model, ex, mean_ablation(means, [c])) for c in means}


def minimal_circuit(model: LifeTransformer, ex: Examples, means: dict[Component, torch.Tensor],
                    threshold: float, screen: Examples | None = None, single: dict[Component, float] | None = None,
                    exhaustive_up_to: int = 12) -> tuple[list[Component], float, str]:
    """The smallest set of components that keeps accuracy >= ``threshold`` with all others mean-ablated.

    With ``single`` (accuracy with each component ablated alone), the components whose ablation
    alone already fails are taken as necessary and only the others are searched, which assumes
    that ablating more never restores accuracy. Up to ``exhaustive_up_to`` searched components:
    every subset, smallest first (candidates screened on ``screen``, a smaller batch, then
    confirmed on ``ex``), a true minimum under that assumption. Beyond: greedy backward elimination
    (drop the component whose ablation costs least while the rest stays above the threshold).
    Returns (circuit, its accuracy, the search used).
    """
    comps = sorted(means)
    screen = screen or ex
    necessary = [c for c in comps if single is not None and single[c] < threshold]
    optional = [c for c in comps if c not in necessary]
    pruned = f"{len(necessary)} necessary alone, " if single is not None else ""

    def keeps(kept: list[Component], on: Examples) -> float:
        return accuracy(model, on, mean_ablation(means, [c for c in comps if c not in kept]))

    if len(optional) <= exhaustive_up_to:
        for size in range(len(optional) + 1):
            for extra in itertools.combinations(optional, size):
                kept = sorted(necessary + list(extra))
                if keeps(kept, screen) >= threshold and (full := keeps(kept, ex)) >= threshold:
                    return kept, full, f"{pruned}exhaustive over {2 ** len(optional)} subsets of the rest"
        return comps, keeps(comps, ex), f"{pruned}exhaustive: no proper subset suffices"
    kept = list(comps)
    while True:
        trials = [(keeps([k for k in kept if k != c], screen), c) for c in kept if c in optional]
        trials = [t for t in trials if t[0] >= threshold]
        if not trials:
            return kept, keeps(kept, ex), f"{pruned}greedy backward elimination"
        kept.remove(max(trials)[1])


# --- conditional replacement ---------------------------------------------------------------
@dataclass
class CellVariable:
    """A per-cell variable: ``values(ex)`` gives ``[batch, H*W]`` int64 categories (a lookup table is
    fitted per category), or, with ``linear``, ``[batch, H*W, k]`` float features (a linear fit)."""

    name: str
    words: str
    values: Callable[[Examples], torch.Tensor]
    linear: bool = False


def conditional_means(out: torch.Tensor, positions: slice, variable: CellVariable, ex: Examples
                      ) -> Callable[[Examples], torch.Tensor]:
    """Fit ``E[out | variable]`` at ``positions`` (a grid block) on reference outputs ``out``;
    returns a function giving the fitted values ``[batch, H*W, ...]`` for other examples."""
    y = out[:, positions].flatten(0, 1)  # [batch * cells, ...]
    flat = y.flatten(1)
    if variable.linear:
        x = variable.values(ex).flatten(0, 1).to(y.device, torch.float32)
        x = torch.cat([x, torch.ones(len(x), 1, device=y.device)], dim=1)
        coef = torch.linalg.lstsq(x, flat).solution  # [k + 1, features]

        def predict(new: Examples) -> torch.Tensor:
            z = variable.values(new).to(y.device, torch.float32)
            z = torch.cat([z, torch.ones(*z.shape[:2], 1, device=y.device)], dim=-1)
            return (z @ coef).unflatten(-1, y.shape[1:])
        return predict
    v = variable.values(ex).flatten().to(y.device)
    n = int(v.max()) + 1
    sums = torch.zeros(n, flat.shape[1], device=y.device).index_add_(0, v, flat)
    counts = torch.bincount(v, minlength=n).float()[:, None]
    table = torch.where(counts > 0, sums / counts.clamp_min(1), flat.mean(0))  # unseen values: the mean

    def lookup(new: Examples) -> torch.Tensor:
        w = variable.values(new).to(y.device).clamp_max(n - 1)
        return table[w].unflatten(-1, y.shape[1:])
    return lookup


def conditional_replacement(ref_out: dict[Component, torch.Tensor], claims: dict[Component, CellVariable],
                            ref: Examples, ex: Examples, grid: list[slice]) -> Callable[[slice], list[Hook]]:
    """Hooks (per chunk ``part`` of ``ex``) that replace each claimed component's output at the grid
    blocks (board and targets) by its reference conditional mean given the claimed variable."""
    fitted = {c: [(s, conditional_means(ref_out[c], s, v, ref)(ex)) for s in grid] for c, v in claims.items()}

    def make(c: Component, part: slice) -> Callable[[torch.Tensor], torch.Tensor]:
        def fn(out: torch.Tensor) -> torch.Tensor:
            out = out.clone()
            for s, values in fitted[c]:
                out[:, s] = values[part].to(out.dtype)
            return out
        return fn

    return lambda part: replace_hooks({c: make(c, part) for c in claims})


# --- fixed attention patterns ---------------------------------------------------------------
def relative_key_cells(height: int, width: int) -> torch.Tensor:
    """``[q, d]``: the cell at offset d (itself a row-major cell index of the offset) from cell q, on the torus."""
    n = height * width
    q_rows, q_cols = torch.arange(n) // width, torch.arange(n) % width
    return ((q_rows[:, None] + q_rows[None]) % height) * width + (q_cols[:, None] + q_cols[None]) % width


def mean_relative_pattern(rows: torch.Tensor, block_start: int, board: slice, height: int, width: int
                          ) -> torch.Tensor:
    """``[H*W, T]``: the content-free version of attention rows ``[batch, H*W, T]`` of one grid block.

    Board keys get the mean weight of their offset from the query (translation-invariant), the
    query's own position (a target's self key) its mean, every other key its mean over queries.
    """
    n = rows.shape[1]
    keycell = relative_key_cells(height, width).to(rows.device)
    mean = rows.mean(0)  # [q, T]
    out = mean.mean(0, keepdim=True).expand(n, -1).clone()  # keys that are the same for every query
    q = torch.arange(n, device=rows.device)
    out[:, board] = 0.0
    own = block_start + q
    if not (board.start <= block_start < board.stop):  # a target block: its self key
        out[:, block_start : block_start + n] = 0.0
        out[q, own] = mean[q, own].mean()
    rel = rows[:, :, board].gather(2, keycell[None].expand(rows.shape[0], -1, -1)).mean((0, 1))  # [d]
    out[q[:, None], board.start + keycell] = rel[None].expand(n, -1)
    return out


def fixed_pattern_hooks(model: LifeTransformer, patterns: dict[Component, torch.Tensor],
                        heads: Iterable[Component]) -> list[Hook]:
    """Hooks that give each head, at the board and t+1 target query rows, its mean relative pattern.

    ``patterns``: each head's reference ``hook_pattern`` slice ``[batch, T, T]``.
    """
    layout = model.layout
    blocks = [layout.board, layout.targets[0]]
    fixed = {c: [(b, mean_relative_pattern(patterns[c][:, b], b.start, layout.board, layout.height, layout.width))
                 for b in blocks] for c in heads}
    by_layer: dict[int, list[Component]] = {}
    for c in fixed:
        by_layer.setdefault(c.layer, []).append(c)

    def make(cs: list[Component]) -> Callable:
        def hook(pattern: torch.Tensor, hook) -> torch.Tensor:  # [batch, head, q, k]
            pattern = pattern.clone()
            for c in cs:
                for b, rows in fixed[c]:
                    pattern[:, c.head, b] = rows.to(pattern.dtype)
            return pattern
        return hook

    return [(f"blocks.{layer}.attn.hook_pattern", make(cs)) for layer, cs in by_layer.items()]


@torch.no_grad()
def reference_patterns(model: LifeTransformer, tokens: torch.Tensor, heads: Iterable[Component]
                       ) -> dict[Component, torch.Tensor]:
    heads = list(heads)
    cache = batched.cached(model, tokens, sorted({f"blocks.{c.layer}.attn.hook_pattern" for c in heads}))
    return {c: cache[f"blocks.{c.layer}.attn.hook_pattern"][:, c.head].to(model.cfg.device) for c in heads}
