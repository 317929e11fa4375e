"""The high-level causal model of one cell's next state, and the interchange pairs it is aligned on.

For each cell: ``own`` (its state at t), ``count`` (live neighbours, 0-8), ``case`` = (own, count) as the index of
the rule bit that governs it (:func:`interfere.ca.rules.governing_bit`), ``bit`` = that rule bit, and ``next`` =
``bit``; the 18 rule bits are inputs. An *interchange* sets one variable of a base cell to its value in a source cell
and recomputes what depends on it:

* ``own``:   next' = rule_base[case(own_source, count_base)]   (pairs with the same count)
* ``count``: next' = rule_base[case(own_base, count_source)]   (pairs with the same own state)
* ``case``:  next' = rule_base[case_source]
* ``bit``:   next' = bit_source

A pair is *changed* when next' differs from the base cell's own next state: only there does an intervention that
does nothing fail, so interchange-intervention accuracy (IIA) is reported on changed pairs, beside the base rate
(the share of the more frequent label among them: what a site that knows nothing but the label's frequency gets).

The *control* model (Hewitt and Liang's control tasks) is the same graph with the rule's lookup replaced by a random
bit per (rule, case), fixed by a seed: nothing in the network computes it, so a search that reaches its labels finds
structure that is not there. (A permuted case-to-bit table was tried first: over the few dozen held-out rules two of
their bits agree by chance often enough that a site holding the true bit of a two-case group passed it at 0.62.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interfere.ca.rules import governing_bit, rule_codes

VARIABLES = ("own", "count", "case", "bit")
SAME = {"own": "count", "count": "own"}  # the variable a pair must share for the interchange to be well posed


@dataclass(frozen=True)
class Cells:
    """The high-level model's variables at every cell of a batch, ``[N, cells]`` int64 each, and the rules."""

    rules: torch.Tensor  # [N, 18] bool
    own: torch.Tensor
    count: torch.Tensor

    @classmethod
    def of(cls, rules: torch.Tensor, boards: torch.Tensor, counts: torch.Tensor) -> Cells:
        return cls(rules, boards.flatten(1).long(), counts.flatten(1).long())

    @property
    def case(self) -> torch.Tensor:
        return governing_bit(self.own, self.count)

    def get(self, name: str) -> torch.Tensor:
        return self.case if name == "case" else getattr(self, name)

    def part(self, keep: torch.Tensor) -> Cells:
        """The cells of the pairs in ``keep`` (``[P]`` bool)."""
        return Cells(self.rules[keep], self.own[keep], self.count[keep])


@dataclass(frozen=True)
class HighLevel:
    """``next = rule[case]`` (the real model, ``seed`` None) or a random bit of (rule, case) (a control)."""

    seed: int | None = None

    @classmethod
    def real(cls) -> HighLevel:
        return cls(None)

    @classmethod
    def control(cls, seed: int) -> HighLevel:
        return cls(seed)

    def next_state(self, rules: torch.Tensor, case: torch.Tensor) -> torch.Tensor:
        """``[n, m]`` next states for ``[n, 18]`` rules and ``[n, m]`` cases."""
        if self.seed is None:
            return torch.gather(rules.long(), 1, case)
        return random_bit(rule_codes(rules)[:, None], case, self.seed)

    def counterfactual(self, variable: str, base: Cells, source: Cells) -> torch.Tensor:
        """next' of each base cell with ``variable`` set to its value in the same cell of the source (module
        docstring); ``base`` and ``source`` index the same pairs, ``[P, m]`` each."""
        if variable == "bit":
            return self.next_state(source.rules, source.case)
        own = source.own if variable in ("own", "case") else base.own
        count = source.count if variable in ("count", "case") else base.count
        return self.next_state(base.rules, governing_bit(own, count))


def random_bit(code: torch.Tensor, case: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed pseudo-random bit of (rule code, case, seed): an integer hash (splitmix64's finaliser, in int64 with
    wrap-around), its top bit."""
    x = code * 2654435761 + case * 40503 + seed * 97 + 0x9E3779B9
    for shift, mult in ((30, -4658895280553007687), (27, -7723592293110705685)):
        x = (x ^ (x >> shift)) * mult
    return ((x ^ (x >> 31)) >> 62) & 1


def base_rate(labels: torch.Tensor) -> float:
    """The share of the more frequent label (NaN without labels)."""
    if labels.numel() == 0:
        return float("nan")
    p = float(labels.float().mean())
    return max(p, 1 - p)
