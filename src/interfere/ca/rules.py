"""Life-like rules: parsing, canonical printing, the 18-bit encoding and the named-rule table.

A rule is 18 bits in the order ``S0..S8, B0..B8``: bit ``c`` says whether a live cell with ``c``
live neighbours survives, bit ``9 + c`` whether a dead cell with ``c`` live neighbours is born.
This module is the only place that knows that order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from interfere.errors import UserError

N_COUNTS = 9  # a cell has 0..8 live Moore neighbours
N_RULE_BITS = 2 * N_COUNTS
SURVIVE_OFFSET = 0
BIRTH_OFFSET = N_COUNTS
BIT_NAMES: tuple[str, ...] = tuple(f"S{c}" for c in range(N_COUNTS)) + tuple(
    f"B{c}" for c in range(N_COUNTS)
)


def governing_bit(alive: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The index of the rule bit that decides each cell's next state: ``S_count`` for a live cell,
    ``B_count`` for a dead one (``alive`` 0/1 and ``counts`` of the same shape)."""
    return torch.where(alive == 1, SURVIVE_OFFSET + counts, BIRTH_OFFSET + counts)


def is_survival(bit: torch.Tensor) -> torch.Tensor:
    """Whether rule bit(s) ``bit`` decide live cells (``S``) rather than dead ones (``B``)."""
    return bit < BIRTH_OFFSET


_PART = re.compile(r"([BS])([0-8]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Rule:
    """A life-like rule: the neighbour counts on which cells are born and on which they survive."""

    born: frozenset[int]
    survive: frozenset[int]

    def __post_init__(self) -> None:
        for name, counts in (("born", self.born), ("survive", self.survive)):
            bad = sorted(c for c in counts if not 0 <= c < N_COUNTS)
            if bad:
                raise ValueError(f"Rule {name} counts must lie in 0..8, got {bad}")

    @property
    def bits(self) -> torch.Tensor:
        """The 18-bit encoding ``S0..S8, B0..B8`` as a bool tensor."""
        bits = torch.zeros(N_RULE_BITS, dtype=torch.bool)
        for c in self.survive:
            bits[SURVIVE_OFFSET + c] = True
        for c in self.born:
            bits[BIRTH_OFFSET + c] = True
        return bits

    @classmethod
    def from_bits(cls, bits: torch.Tensor | list[bool]) -> Rule:
        """Inverse of :attr:`bits`."""
        b = torch.as_tensor(bits).bool().flatten().tolist()
        if len(b) != N_RULE_BITS:
            raise ValueError(f"A rule has {N_RULE_BITS} bits, got {len(b)}")
        return cls(
            born=frozenset(c for c in range(N_COUNTS) if b[BIRTH_OFFSET + c]),
            survive=frozenset(c for c in range(N_COUNTS) if b[SURVIVE_OFFSET + c]),
        )

    def __str__(self) -> str:
        born = "".join(str(c) for c in sorted(self.born))
        survive = "".join(str(c) for c in sorted(self.survive))
        return f"B{born}/S{survive}"

    @property
    def name(self) -> str | None:
        """The LifeWiki name of this rule, if it is in :data:`NAMED_RULES`."""
        return _NAME_BY_RULE.get(str(self))


def parse_rule(s: str) -> Rule:
    """Parse ``B3/S23``, ``S23/B3``, ``b36/s23``, ``B2/S`` style strings (Golly/LifeWiki B/S form)."""
    if not isinstance(s, str):
        raise UserError(f"Rule must be a string like 'B3/S23', got {s!r}")
    parts = s.strip().split("/")
    if len(parts) != 2:
        raise UserError(f"Bad rule string {s!r}: expected two parts 'B<digits>/S<digits>', e.g. 'B3/S23'")
    found: dict[str, frozenset[int]] = {}
    for part in parts:
        m = _PART.fullmatch(part.strip())
        if m is None:
            raise UserError(
                f"Bad rule string {s!r}: part {part!r} is not 'B' or 'S' followed by digits 0-8"
            )
        letter, digits = m.group(1).upper(), m.group(2)
        if letter in found:
            raise UserError(f"Bad rule string {s!r}: part {letter!r} appears twice")
        if len(set(digits)) != len(digits):
            raise UserError(f"Bad rule string {s!r}: a neighbour count is repeated in {part!r}")
        found[letter] = frozenset(int(d) for d in digits)
    return Rule(born=found["B"], survive=found["S"])


NAMED_RULES: dict[str, Rule] = {
    name: parse_rule(rule)
    for name, rule in {
        "Conway's Life": "B3/S23",
        "HighLife": "B36/S23",
        "Seeds": "B2/S",
        "Day & Night": "B3678/S34678",
        "Life without Death": "B3/S012345678",
        "Replicator": "B1357/S1357",
        "Maze": "B3/S12345",
        "Diamoeba": "B35678/S5678",
        "2x2": "B36/S125",
        "Morley": "B368/S245",
        "Anneal": "B4678/S35678",
    }.items()
}
_NAME_BY_RULE = {str(rule): name for name, rule in NAMED_RULES.items()}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("&", "and"))


_RULE_BY_SLUG = {_slug(name): rule for name, rule in NAMED_RULES.items()}
_RULE_BY_SLUG["life"] = _RULE_BY_SLUG["gameoflife"] = _RULE_BY_SLUG["conway"] = NAMED_RULES[
    "Conway's Life"
]


def get_rule(name_or_rule: str | Rule) -> Rule:
    """A named rule (case, spaces and punctuation ignored: ``"day and night"``) or a rule string."""
    if isinstance(name_or_rule, Rule):
        return name_or_rule
    if not isinstance(name_or_rule, str) or not name_or_rule.strip():
        raise UserError(f"Empty rule {name_or_rule!r}: give a rule string like 'B3/S23' or a named rule")
    slug = _slug(name_or_rule)
    if slug in _RULE_BY_SLUG:
        return _RULE_BY_SLUG[slug]
    if "/" in name_or_rule:
        return parse_rule(name_or_rule)
    raise UserError(
        f"Unknown rule {name_or_rule!r}: give a rule string like 'B3/S23' or one of "
        + ", ".join(repr(n) for n in NAMED_RULES)
    )


def named_rule_bits() -> torch.Tensor:
    """The named rules stacked as a ``[n_named, 18]`` bool tensor, in :data:`NAMED_RULES` order."""
    return torch.stack([rule.bits for rule in NAMED_RULES.values()])


def rule_codes(bits: torch.Tensor) -> torch.Tensor:
    """Pack ``[..., 18]`` rule bits into integers (bit r has weight 2**r), for set membership."""
    weights = 2 ** torch.arange(N_RULE_BITS, device=bits.device, dtype=torch.int64)
    return (bits.long() * weights).sum(-1)


def bits_from_codes(codes: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rule_codes`: ``[...]`` int64 -> ``[..., 18]`` bool."""
    return (codes[..., None] >> torch.arange(N_RULE_BITS, device=codes.device)) & 1 == 1
