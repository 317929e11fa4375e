"""Slots: a component (a head's ``hook_z`` or an MLP's ``hook_mlp_out``) at one group of positions, and what can be
read or replaced there.

Groups of positions: ``board`` (the cells at t), ``targets`` (the t+1 targets) and ``physics`` (BOS, the rule tokens,
the separators) for components; between layers the residual stream is also split into ``rule`` (the 18 rule tokens)
and ``separators`` (BOS and the separators), so a flip of a rule bit can be followed out of the rule tokens.

A slot whose output nothing downstream reads (a last-layer component away from the targets: the targets are all the
model is read at) can only ever be "not needed": :func:`unread_slots` finds them by construction, walking back from
the targets through the attention mask (whatever the weights), so no analysis reports them as a finding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from interfere.data.layout import SequenceLayout
from interfere.explore.batched import Hook
from interfere.explore.components import Component, all_components, replace_hooks
from interfere.model.life_model import LifeTransformer

GROUPS = ("board", "targets", "physics")  # where a component's output is tested
RESID_GROUPS = ("rule", "separators", "board", "targets")  # where a rule-bit flip can sit between layers


def positions(layout: SequenceLayout, group: str) -> torch.Tensor:
    """The sequence positions of a group (:meth:`SequenceLayout.group_positions`)."""
    return layout.group_positions(group)


@dataclass(frozen=True, order=True)
class Slot:
    component: Component
    group: str

    @property
    def name(self) -> str:
        return f"{self.component.name}@{self.group}"

    @classmethod
    def from_name(cls, name: str) -> Slot:
        """The inverse of :attr:`name` (``L1H2@targets``)."""
        component, _, group = name.partition("@")
        if group not in GROUPS:
            raise ValueError(f"not a slot name: {name!r} (component@{'|'.join(GROUPS)})")
        return cls(Component.from_name(component), group)


def all_slots(model: LifeTransformer) -> list[Slot]:
    return [Slot(c, g) for c in all_components(model) for g in GROUPS]


@dataclass
class Replacement:
    """What one component outputs at one group of positions (a role's interchange, a mean): per example and
    position, where it applies."""

    values: torch.Tensor  # [N, len(group), ...] on the model's device
    covered: torch.Tensor  # [N, len(group)] bool: where the replacement applies


def put_hooks(model: LifeTransformer, values: dict[Slot, torch.Tensor | float | Replacement]
              ) -> Callable[[slice], list[Hook]]:
    """Hooks (per chunk ``part`` of the examples) setting each slot's output at its positions: to ``values[slot][part]``
    (a tensor ``[N, T, ...]`` over every position, of which the group's are used), to a :class:`Replacement` where it
    applies, or adding a number to it. The one place the account edits a slot."""
    where = {slot: positions(model.layout, slot.group) for slot in values}

    def for_part(part: slice) -> list[Hook]:
        def setter(slot: Slot) -> Callable[[torch.Tensor], torch.Tensor]:
            value, pos = values[slot], where[slot]

            def fn(out: torch.Tensor) -> torch.Tensor:  # [batch, pos, ...] of this component
                out = out.clone()
                if isinstance(value, int | float):
                    out[:, pos] += value
                elif isinstance(value, Replacement):
                    keep = value.covered[part].to(out.device)
                    keep = keep.view(*keep.shape, *([1] * (out.dim() - 2)))
                    out[:, pos] = torch.where(keep, value.values[part].to(out.device, out.dtype), out[:, pos])
                else:
                    out[:, pos] = value[part][:, pos].to(out.device, out.dtype)
                return out
            return fn

        by_component: dict[Component, list[Slot]] = {}
        for slot in values:
            by_component.setdefault(slot.component, []).append(slot)
        return replace_hooks({c: _chain([setter(s) for s in slots]) for c, slots in by_component.items()})
    return for_part


def _chain(fns: list[Callable[[torch.Tensor], torch.Tensor]]) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(out: torch.Tensor) -> torch.Tensor:
        for fn in fns:
            out = fn(out)
        return out
    return run


def needed_after(model: LifeTransformer) -> list[torch.Tensor]:
    """``[n_layers]`` of ``[T]`` bool: the positions whose residual after block ``l`` a path can carry to a target,
    whatever the weights. The model is read at the targets only, and block ``l`` reads, besides each position's own
    residual, the keys its queries may attend to (the mask)."""
    layout, n = model.layout, model.cfg.n_layers
    needed = torch.zeros(layout.seq_len, dtype=torch.bool)
    needed[positions(layout, "targets")] = True
    out = [needed]  # out[k]: positions read after block n-1-k
    for layer in reversed(range(1, n)):
        allowed = model.score_mask(layer, layout.seq_len, layout.seq_len)
        allowed = allowed if allowed.dtype == torch.bool else torch.isfinite(allowed).any(0)
        needed = needed | allowed.cpu()[needed].any(0)
        out.append(needed)
    return out[::-1]


def unread_slots(model: LifeTransformer) -> list[Slot]:
    """The slots whose output no path can carry to a target (:func:`needed_after`): a slot is unread when none of its
    positions is needed after its block (in our layouts: every last-layer slot away from the targets)."""
    after = needed_after(model)
    return [s for s in all_slots(model) if not after[s.component.layer][positions(model.layout, s.group)].any()]
