"""When training stops: ``train.stop_when``, a target on the validation metrics, with ``train.steps`` the cap.

A target is a condition such as ``validation_acc >= 0.9999``, or several joined by ``and``
(``validation_acc >= 0.9999 and validation_exact >= 0.995``). It is checked at every validation
(every ``train.eval_every`` steps) on the validation rules, which are disjoint from the held-out
test rules and never trained on (:func:`interfere.data.stream.validation_rules`); the test rules are
measured only once training has stopped, so they never decide when it stops. ``named_acc`` is the
worst named rule's accuracy (``train.named_boards`` boards each, of the validation's seed), measured
once the rest of its target holds: the named rules are training rules, so it asks whether training is
done on them, not how the model generalises.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from interfere.errors import UserError

# name in train.stop_when -> key of the validation metrics (interfere.evaluate.rule_set_metrics and
# interfere.evaluate.named_check: the worst named rule, a training rule, on boards of the validation seed)
METRICS = {"validation_acc": "cell_acc", "validation_exact": "board_exact", "named_acc": "named_worst_acc",
           "iia": "siit_iia", "strict_acc": "siit_strict"}  # the last two: train.siit (interfere.train.siit)
OPERATORS = {">=": operator.ge, ">": operator.gt}
_CLAUSE = re.compile(r"^\s*(\w+)\s*(>=|>)\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Clause:
    metric: str
    op: str
    value: float

    def holds(self, metrics: dict) -> bool:
        """Whether the clause holds; a metric that was not measured does not."""
        key = METRICS[self.metric]
        return key in metrics and OPERATORS[self.op](metrics[key], self.value)

    def reading(self, metrics: dict) -> str:
        """The metric's value as the messages print it (the worst named rule named)."""
        if METRICS[self.metric] not in metrics:
            return f"{self.metric} not measured (the rest of the target was not met)"
        text = f"{self.metric} {metrics[METRICS[self.metric]]:.6f}"  # 6 places: 1 cell in 32,768 shows
        return f"{text} ({metrics['named_worst_rule']})" if self.metric == "named_acc" else text

    def describe(self, metrics: dict) -> str:
        return f"{self.reading(metrics)} {self.op} {self.value}"


def parse_stop_when(text: str, key: str = "train.stop_when") -> list[Clause]:
    """``"validation_acc >= 0.9999 [and ...]"`` -> its clauses; a one-line error naming the problem."""
    clauses = []
    for part in re.split(r"\band\b", text):
        match = _CLAUSE.match(part)
        if not match:
            raise UserError(f"{key}: cannot read {part.strip()!r}; write e.g. 'validation_acc >= 0.9999' "
                            f"(metrics: {', '.join(METRICS)}; joined by 'and')")
        metric, op, value = match.groups()
        if metric not in METRICS:
            raise UserError(f"{key}: unknown metric {metric!r}; choose from {', '.join(METRICS)}")
        clauses.append(Clause(metric, op, float(value)))
    return clauses


def needs_named(clauses: list[Clause], metrics: dict) -> bool:
    """Whether to measure the named rules now: a clause reads them and every other clause already holds
    (the named rules cost about as much as a validation, so they are measured only near the end)."""
    reads = any(c.metric == "named_acc" for c in clauses)
    return reads and all(c.holds(metrics) for c in clauses if c.metric != "named_acc")


def stop_reason(clauses: list[Clause], metrics: dict) -> str | None:
    """Why training should stop now (every clause holds), else None."""
    if clauses and all(c.holds(metrics) for c in clauses):
        return " and ".join(c.describe(metrics) for c in clauses)
    return None


def shortfall(clauses: list[Clause], metrics: dict) -> str:
    """What the last validation missed, for a run that reached its cap without its target."""
    return " and ".join(f"{c.reading(metrics)} (needs {c.op} {c.value})"
                        for c in clauses if not c.holds(metrics))
