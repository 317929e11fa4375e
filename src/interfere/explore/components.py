"""Model components (attention heads, MLPs) and what can be done to their outputs, by hooks.

A component's output is ``blocks.{l}.attn.hook_z[:, :, h]`` for head h (its contribution to the
residual is that times ``W_O``, so replacing ``z`` replaces the head's output) or
``blocks.{l}.hook_mlp_out`` for an MLP. **Mean ablation** replaces the output, at every position, by its
mean over a reference batch (per position), which removes what the component computes from the input
while keeping its average contribution; importance and the minimal circuit rest on it. What a component
computes is tested by interchange (:mod:`interfere.explore.account.interchange`).

Every function runs the model through its own hooks (``run_with_hooks``), with the extra hooks here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from interfere.errors import UserError
from interfere.explore import batched
from interfere.explore.analysis import Examples, whole
from interfere.explore.batched import Hook, Hooks
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer

_NAME = re.compile(r"MLP(\d+)|L(\d+)H(\d+)")


@dataclass(frozen=True)
class Component:
    layer: int
    head: int | None = None  # None: the layer's MLP

    @property
    def step(self) -> tuple[int, bool]:
        """When it computes, the order of computation: its layer, then whether it is the MLP (after the layer's heads,
        which run in parallel)."""
        return self.layer, self.head is None

    def __lt__(self, other: Component) -> bool:  # in the order of computation; parallel heads by index
        return (self.step, self.head or 0) < (other.step, other.head or 0)

    @property
    def name(self) -> str:
        return f"MLP{self.layer}" if self.head is None else f"L{self.layer}H{self.head}"

    @classmethod
    def from_name(cls, name: str) -> Component:
        """The inverse of :attr:`name` (``L1H2`` or ``MLP0``); ValueError otherwise."""
        match = _NAME.fullmatch(name)
        if match is None:
            raise ValueError(f"not a component name: {name!r} (LxHy or MLPx)")
        mlp, layer, head = match.groups()
        return cls(int(mlp)) if mlp is not None else cls(int(layer), int(head))

    @property
    def hook(self) -> str:
        return act_name("mlp_out", self.layer) if self.head is None else act_name("z", self.layer)

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
    """t+1 cell accuracy of the hooked model (argmax over dead/alive) on the examples, in chunks. Hooks
    that touch only later blocks start the forward at the first of them, from the examples' clean
    residual there (computed once per batch, by this model): the blocks before it compute nothing a
    hook changes."""
    block = batched.first_hooked_block(hooks)
    start = None
    if block > 0 and ex.acts is not None and ex.acts.model is model:
        start = (block, ex.act(act_name("resid_pre", block), whole("resid")))
    pred = model.layout.first_step(batched.target_logits(model, ex.tokens, hooks, start)).argmax(-1)
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
