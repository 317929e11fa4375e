"""The exact cellular-automaton core: rules, the batched simulator and known patterns."""

from interfere.ca.patterns import PATTERNS, pattern, place, stamp
from interfere.ca.rules import (
    BIT_NAMES,
    N_RULE_BITS,
    NAMED_RULES,
    Rule,
    get_rule,
    named_rule_bits,
    parse_rule,
    rule_codes,
)
from interfere.ca.simulate import moore_neighbourhood, neighbour_counts, rollout, step

__all__ = [
    "BIT_NAMES",
    "N_RULE_BITS",
    "NAMED_RULES",
    "PATTERNS",
    "Rule",
    "get_rule",
    "moore_neighbourhood",
    "named_rule_bits",
    "neighbour_counts",
    "parse_rule",
    "pattern",
    "place",
    "rollout",
    "rule_codes",
    "stamp",
    "step",
]
