"""The hand-made variants: which route computes each case (and, for the hard ones, how many routes or heads), and
which head index plays which part (:class:`Heads`, a parameter, so a test can move a head and ask whether a method
follows it). :mod:`~interfere.model.handmade.build` sets the weights, :mod:`~interfere.model.handmade.truth` states
what each computes.

Routes (:data:`ROUTES`): ``rule`` (a layer-1 lookup head attends to the governing rule token), ``shared2`` (two heads do
it at half weight each: both needed), ``shared3`` (three heads at half weight: any two enough), ``board`` (MLP0 at the
board cells computes the governing bit, a copy head brings it to the target), ``targets`` (MLP0 at the targets),
``follow`` (MLP0 at the targets, then a layer-1 head whose attention follows that answer relays it) and ``last`` (the
read-out computes it). A case with two routes is computed twice, each alone enough (redundant).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from interfere.ca.rules import BIT_NAMES
from interfere.errors import UserError

ROUTES = ("rule", "shared2", "shared3", "board", "targets", "follow", "last")
LOOKUP_ROUTES = ("rule", "shared2", "shared3")  # routes whose lookup reads the governing rule token in layer 1
CASES = BIT_NAMES  # case j is the (state, count) whose rule bit is j: S0..S8 alive, B0..B8 dead
N_HEADS = 4


@dataclass(frozen=True)
class Variant:
    description: str
    routes: dict[str, tuple[str, ...]]  # case -> its route(s): two for a case computed twice
    packed: bool = False  # the one-hot case at the targets packed into fewer dimensions (superposed)
    noise: float = 0.0  # every weight perturbed by N(0, noise^2) (fixed seed), the model still exact


def _routes(**groups: str | tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Case -> routes from ``{"S0_S6": "board", "S2_S4": ("board", "rule")}``-style ranges (later keys win)."""
    out: dict[str, tuple[str, ...]] = {}
    for span, routes in groups.items():
        first, last = span.split("_") if "_" in span else (span, span)
        routes = (routes,) if isinstance(routes, str) else routes
        out.update({c: routes for c in CASES[CASES.index(first): CASES.index(last) + 1]})
    return {c: out[c] for c in CASES}


SPLIT = _routes(S0_S6="board", B0_B3="board", S7_S8="targets", B4_B8="rule")
VARIANTS: dict[str, Variant] = {
    "attention": Variant("every case looked up by a layer-1 head attending to its one governing rule token",
                         _routes(S0_B8="rule")),
    "board": Variant("every case looked up by MLP0 at the board cells (all 18 rule bits brought there by a layer-0 "
                     "head); a layer-1 head copies the answer from the cell's own position", _routes(S0_B8="board")),
    "targets": Variant("every case looked up by MLP0 at the targets (the rule bits brought there by a layer-0 head)",
                       _routes(S0_B8="targets")),
    "late": Variant("every case looked up by the read-out itself, MLP1 at the targets (the rule bits brought there by "
                    "a layer-0 head): a method that never names the last MLP a lookup gets every case wrong",
                    _routes(S0_B8="last")),
    "split": Variant("as issue 33's audit measured the seed-0 demo model trained on an AMD EPYC (6c5ca85a311c): "
                     "S0-S6 and B0-B3 by MLP0 at the board, S7-S8 by MLP0 at the targets, B4-B8 by a layer-1 head "
                     "attending to the governing rule token", SPLIT),
    "backup": Variant("S2-S4 computed twice, by MLP0 at the board (relayed by the copy head) and by the lookup head "
                      "reading the governing rule token, either alone enough; the other cases as in split",
                      _routes(S0_S6="board", B0_B3="board", S7_S8="targets", B4_B8="rule", S2_S4=("board", "rule"))),
    "shared": Variant("B4-B6 written by two lookup heads at half weight each (both needed), B7-B8 by three (any two "
                      "enough); the other cases by MLP0 at the board and the copy head",
                      _routes(S0_B3="board", B4_B6="shared2", B7_B8="shared3")),
    "follows": Variant("S0-S8 looked up by MLP0 at the targets and relayed to the read-out by a layer-1 head whose "
                       "attention follows that answer (one separator when alive, <BOS> when dead); B0-B8 by MLP0 at "
                       "the board and the copy head", _routes(S0_S8="follow", B0_B8="board")),
    "superposed": Variant("every case looked up by a layer-1 head, its one-hot case packed by MLP0 into 6 dimensions "
                          "(18 codes of 6 signs, any two differing in at least two) that the head's query reads",
                          _routes(S0_B8="rule"), packed=True),
    "noisy": Variant("split with every weight perturbed by N(0, 0.002^2) (those writing the residual MLP0's gates "
                     "read by N(0, 2e-6^2): the gates amplify it a hundredfold), a fixed seed, still exact: the "
                     "selectivities move off 0 and 1 (the shares of cells that follow a flip stay all or none)",
                     SPLIT, noise=0.002),
}


@dataclass(frozen=True)
class Heads:
    """Which head index plays which part: ``count``, ``own``, ``rules`` in layer 0; ``lookup``, ``copy``,
    ``follow`` and the three ``shared`` lookup heads (``shared2`` uses the last two) in layer 1."""

    count: int = 0
    own: int = 1
    rules: int = 2
    lookup: int = 2
    copy: int = 0
    follow: int = 3
    shared: tuple[int, int, int] = (1, 2, 3)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            for v in value if isinstance(value, tuple) else (value,):
                if not 0 <= v < N_HEADS:
                    raise UserError(f"head {name}={v} is out of range: heads are 0..{N_HEADS - 1}")

    def layer1(self, route: str) -> tuple[int, ...]:
        """The layer-1 heads a route uses."""
        return {"rule": (self.lookup,), "shared2": self.shared[1:], "shared3": self.shared, "board": (self.copy,),
                "follow": (self.follow,)}.get(route, ())

    def check(self, routes: set[str]) -> None:
        """Refuse two parts a variant uses (``routes``: the routes it has) on one head."""
        layer0 = [self.count, self.own] + ([self.rules] if routes & {"board", "targets", "follow", "last"} else [])
        parts = {h for r in routes if r in ("shared2", "shared3") for h in self.layer1(r)}
        layer1 = list(parts) + [h for r in routes if r not in ("shared2", "shared3") for h in self.layer1(r)]
        if len(set(layer0)) < len(layer0) or len(set(layer1)) < len(layer1):
            raise UserError(f"two parts this variant uses share a head in {self}: give each its own head")


def used_routes(variant: Variant) -> set[str]:
    return {r for routes in variant.routes.values() for r in routes}


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise UserError(f"unknown hand-made variant {name!r}: choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]
