"""Transformers written by hand: :class:`LifeTransformer` weights set by code, no training, that compute the next
board exactly for every life-like rule on any board, each by an algorithm that is known and stated in machine-readable
form (its *ground truth*), so that every analysis can be scored against it (docs/design.md, "Models written by hand").

Every variant is a size-free model (``model.positions: window``, a 5x5 window whose bias keeps a head to the 3x3
stencil or to its own cell) without LayerNorm (``model.norm: none``) and with ReLU MLPs, so the arithmetic is exact up
to float rounding and softmax leakage of ``exp(-BIG)``. Two layers, four heads each:

* **layer 0** gathers evidence at the board cells and the targets: a *count* head averages the 3x3 block
  (``count9 / 9``), an *own* head reads the cell itself, a *rules* head averages the 18 rule tokens' bits (18
  dimensions, one per rule bit; only where a route needs them);
* **MLP0** forms the case ``z``, the index of the governing bit (``count`` alive, ``9 + count`` dead: the order of
  :mod:`interfere.ca.rules`), from ``9 * count9/9 - 10 * own + 9`` with
  triangles of ReLUs, ``relu(z-j+1) - 2 relu(z-j) + relu(z-j-1) = [z == j]``: a one-hot case at the targets (for the
  *rule* route), or directly the governing bit ``rule_j [z == j]`` (the ReLUs gated by ``rule_j``) at the board cells
  (*board* route) or at the targets (*targets* route);
* **layer 1** at the targets: a *lookup* head whose query is the one-hot case and whose keys are the rule tokens'
  identities attends to the one governing rule token and copies its value (*rule* route; cases of other routes
  attend to ``<BOS>``, whose value is 0); a *copy* head reads the governing bit from the cell's own board position
  (*board* route);
* **MLP1** at the targets is the read-out: ``answer = relu(2g - 0.5) - relu(2g - 1.5)``, the only thing the
  unembedding reads.

A variant assigns each of the 18 cases to a route (:data:`VARIANTS`); which head index plays which part is a
parameter (:class:`Heads`), so a test can move the lookup head and ask whether a method follows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from interfere.ca.rules import BIRTH_OFFSET, BIT_NAMES, N_COUNTS, N_RULE_BITS
from interfere.data.layout import (
    ALIVE,
    BOS,
    SEG_BOARD,
    SEG_TARGET,
    SequenceLayout,
    rule_token,
    window_shifts,
)
from interfere.errors import UserError
from interfere.model.config import ModelConfig
from interfere.model.life_model import LifeTransformer

BIG = 40.0  # attention score gap between the keys a head reads and the rest: leakage about exp(-40) per key
GATE = 100.0  # an MLP neuron is switched off by this much where it does not apply (any z - c is at most 19)
LOGIT = 10.0  # the read-out's logit difference, +-LOGIT
WINDOW = 2  # a 5x5 window: the 3x3 stencil is the bias's choice, not the architecture's
ROUTES = ("rule", "board", "targets", "last")
CASES = BIT_NAMES  # case j is the (state, count) whose rule bit is j: S0..S8 alive, B0..B8 dead
N_HEADS, D_MODEL, D_HEAD, D_MLP = 4, 96, 24, 96


def _routes(**groups: str) -> dict[str, str]:
    """Case -> route from ``{"S0-S6": "board", ...}``-style ranges (keyword names ``S0_S6``)."""
    out = {}
    for span, route in groups.items():
        first, last = span.split("_") if "_" in span else (span, span)
        out.update({c: route for c in CASES[CASES.index(first): CASES.index(last) + 1]})
    return out


VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "attention": ("every case looked up by a layer-1 head attending to its one governing rule token",
                  _routes(S0_B8="rule")),
    "board": ("every case looked up by MLP0 at the board cells (all 18 rule bits brought there by a layer-0 head); "
              "a layer-1 head copies the answer from the cell's own position", _routes(S0_B8="board")),
    "targets": ("every case looked up by MLP0 at the targets (the rule bits brought there by a layer-0 head)",
                _routes(S0_B8="targets")),
    "late": ("every case looked up by the read-out itself, MLP1 at the targets (the rule bits brought there by a "
             "layer-0 head): a method that never names the last MLP a lookup gets every case wrong",
             _routes(S0_B8="last")),
    "split": ("as issue 33's audit measured the seed-0 demo model trained on an AMD EPYC (6c5ca85a311c): S0-S6 "
              "and B0-B3 by MLP0 at the board, S7-S8 by MLP0 at the targets, B4-B8 by a layer-1 head attending to "
              "the governing rule token",
              _routes(S0_S6="board", B0_B3="board", S7_S8="targets", B4_B8="rule")),
}


@dataclass(frozen=True)
class Heads:
    """Which head index plays which part: ``count``, ``own``, ``rules`` in layer 0; ``lookup``, ``copy`` in layer 1."""

    count: int = 0
    own: int = 1
    rules: int = 2
    lookup: int = 2
    copy: int = 0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0 <= value < N_HEADS:
                raise UserError(f"head {name}={value} is out of range: heads are 0..{N_HEADS - 1}")

    def check(self, routes: set[str]) -> None:
        """Refuse two parts a variant uses (``routes``: the routes it has) on one head."""
        layer0 = [self.count, self.own] + ([self.rules] if routes & {"board", "targets", "last"} else [])
        layer1 = ([self.lookup] if "rule" in routes else []) + ([self.copy] if "board" in routes else [])
        if len(set(layer0)) < len(layer0) or len(set(layer1)) < len(layer1):
            raise UserError(f"two parts this variant uses share a head in {self}: give each its own head")


class Dim:
    """Named residual directions (everything else stays zero)."""

    ONE, BOARD, TARGET, ALIVE, IS_RULE, IS_BOS, RULE_VAL, COUNT9, OWN, GOV, ANSWER = range(11)
    RULE_ID = 11  # + bit: which rule token this is
    RULE_BIT = RULE_ID + N_RULE_BITS  # + bit: the token's value, in the bit's own direction
    RULES = RULE_BIT + N_RULE_BITS  # + bit: the rule bits gathered at a cell by layer 0
    CASE = RULES + N_RULE_BITS  # + case: the one-hot case formed by MLP0 at a target
    END = CASE + N_RULE_BITS


def handmade_config() -> ModelConfig:
    """The one shape every variant shares."""
    return ModelConfig(n_layers=2, d_model=D_MODEL, n_heads=N_HEADS, d_head=D_HEAD, d_mlp=D_MLP, act_fn="relu",
                       norm="none", positions="window", window=WINDOW, rotary_dim=None, seed=0)


def build(variant: str, heads: Heads | None = None, layout: SequenceLayout | None = None) -> LifeTransformer:
    """The variant's model, its weights set by code (:data:`VARIANTS`), in eval mode."""
    if variant not in VARIANTS:
        raise UserError(f"unknown hand-made variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    heads, routes = heads or Heads(), VARIANTS[variant][1]
    heads.check(set(routes.values()))
    model = LifeTransformer(handmade_config(), layout or SequenceLayout(8, 8))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        _embed(model)
        by_route = {r: [CASES.index(c) for c, rr in routes.items() if rr == r] for r in ROUTES}
        _layer0(model, heads, by_route)
        _mlp0(model, by_route)
        _layer1(model, heads, by_route)
        _readout(model, by_route["last"])
    return model.eval()


def _embed(model: LifeTransformer) -> None:
    e, seg = model.embed.W_E, model.W_seg
    seg[:, Dim.ONE] = 1
    seg[SEG_BOARD, Dim.BOARD] = 1
    seg[SEG_TARGET, Dim.TARGET] = 1
    e[ALIVE, Dim.ALIVE] = 1
    e[BOS, Dim.IS_BOS] = 1
    for bit in range(N_RULE_BITS):
        for value in (0, 1):
            row = e[rule_token(bit, value)]
            row[Dim.IS_RULE] = row[Dim.RULE_ID + bit] = 1
            row[Dim.RULE_VAL] = row[Dim.RULE_BIT + bit] = value


def _stencil(offsets: str) -> torch.Tensor:
    """The window bias of a head that reads the 3x3 block (``"3x3"``), its own cell (``"own"``) or no board cell."""
    bias = torch.full((len(window_shifts(WINDOW)),), -BIG)
    for i, (dr, dc) in enumerate(window_shifts(WINDOW)):
        if offsets == "3x3" and max(abs(dr), abs(dc)) <= 1 or offsets == "own" and dr == dc == 0:
            bias[i] = 0.0
    return bias


def _board_reader(model: LifeTransformer, layer: int, head: int, offsets: str, read: int, write: int) -> None:
    """A head that averages direction ``read`` over the board cells of its stencil into ``write``."""
    attn, scale = model.blocks[layer].attn, BIG * D_HEAD**0.5
    attn.W_Q[head, Dim.ONE, 0] = scale  # every board key scores BIG above the physics tokens and the target itself
    attn.W_K[head, Dim.BOARD, 0] = 1
    attn.W_V[head, read, 0] = 1
    attn.W_O[head, 0, write] = 1
    model.W_rel[layer, :, head] = _stencil(offsets)


def _layer0(model: LifeTransformer, heads: Heads, by_route: dict[str, list[int]]) -> None:
    _board_reader(model, 0, heads.count, "3x3", Dim.ALIVE, Dim.COUNT9)
    _board_reader(model, 0, heads.own, "own", Dim.ALIVE, Dim.OWN)
    if not by_route["board"] and not by_route["targets"] and not by_route["last"]:
        return  # the rule bits are needed at no cell: the head stays zero (unused)
    attn = model.blocks[0].attn
    attn.W_Q[heads.rules, Dim.ONE, 0] = BIG * D_HEAD**0.5
    attn.W_K[heads.rules, Dim.IS_RULE, 0] = 1
    for bit in range(N_RULE_BITS):  # the mean over 18 tokens, times 18: each bit in its own direction
        attn.W_V[heads.rules, Dim.RULE_BIT + bit, bit] = 1
        attn.W_O[heads.rules, bit, Dim.RULES + bit] = N_RULE_BITS
    model.W_rel[0, :, heads.rules] = _stencil("none")


def _neuron(model: LifeTransformer, n: int, offset: float, gates: tuple[int, ...], layer: int = 0) -> None:
    """An MLP neuron ``n``: ``relu(z - offset)`` with ``z`` the case index, switched off unless every gate is 1."""
    w_in, b_in = model.blocks[layer].mlp.W_in, model.blocks[layer].mlp.b_in
    # z = count + BIRTH_OFFSET * (1 - own), the index of the governing bit (ca.rules), with count = 9 * COUNT9 - own
    w_in[Dim.COUNT9, n], w_in[Dim.OWN, n] = float(N_COUNTS), -1.0 - BIRTH_OFFSET
    for gate in gates:
        w_in[gate, n] = GATE
    b_in[n] = BIRTH_OFFSET - offset - GATE * len(gates)


def _mlp0(model: LifeTransformer, by_route: dict[str, list[int]]) -> None:
    """The case one-hot at the targets (rule route) and the governing bit at the board or the targets."""
    w_out, n = model.blocks[0].mlp.W_out, 0
    if by_route["rule"]:
        first = n
        for k in range(-1, N_RULE_BITS + 1):  # relu(z - k) for k = -1..18, shared by the triangles
            _neuron(model, n, k, (Dim.TARGET,))
            n += 1
        for j in by_route["rule"]:
            for k, weight in ((j - 1, 1.0), (j, -2.0), (j + 1, 1.0)):
                w_out[first + k + 1, Dim.CASE + j] = weight
    for route, where in (("board", Dim.BOARD), ("targets", Dim.TARGET)):
        for j in by_route[route]:  # rule_j [z == j]: the triangle's neurons gated by the rule bit
            for c, weight in ((j - 1, 1.0), (j, -2.0), (j + 1, 1.0)):
                _neuron(model, n, c, (where, Dim.RULES + j))
                w_out[n, Dim.GOV] = weight
                n += 1


def _layer1(model: LifeTransformer, heads: Heads, by_route: dict[str, list[int]]) -> None:
    attn, scale = model.blocks[1].attn, BIG * D_HEAD**0.5
    if by_route["rule"]:
        null = N_RULE_BITS  # a query of another route's case reads <BOS>, whose value is 0
        attn.W_Q[heads.lookup, Dim.ONE, null] = scale
        attn.W_K[heads.lookup, Dim.IS_BOS, null] = 1
        for j in by_route["rule"]:
            attn.W_Q[heads.lookup, Dim.CASE + j, j] = scale
            attn.W_Q[heads.lookup, Dim.CASE + j, null] = -scale
            attn.W_K[heads.lookup, Dim.RULE_ID + j, j] = 1
        attn.W_V[heads.lookup, Dim.RULE_VAL, 0] = 1
        attn.W_O[heads.lookup, 0, Dim.GOV] = 1
    if by_route["board"]:
        _board_reader(model, 1, heads.copy, "own", Dim.GOV, Dim.GOV)


def _readout(model: LifeTransformer, last: list[int]) -> None:
    """MLP1 at the targets: the answer from the governing bit the routes brought, and for the cases of the *last*
    route the lookup itself (``rule_j [z == j]`` straight into the answer, from the rule bits layer 0 brought)."""
    mlp = model.blocks[1].mlp
    n = 2
    for j in last:
        for c, weight in ((j - 1, 1.0), (j, -2.0), (j + 1, 1.0)):
            _neuron(model, n, c, (Dim.TARGET, Dim.RULES + j), layer=1)
            mlp.W_out[n, Dim.ANSWER] = weight
            n += 1
    for n, (offset, sign) in enumerate(((0.5, 1.0), (1.5, -1.0))):  # relu(2g - 0.5) - relu(2g - 1.5)
        mlp.W_in[Dim.GOV, n], mlp.W_in[Dim.TARGET, n] = 2.0, GATE
        mlp.b_in[n] = -offset - GATE
        mlp.W_out[n, Dim.ANSWER] = sign
    model.unembed.W_U[Dim.ANSWER, 1] = 2 * LOGIT
    model.unembed.b_U[1] = -LOGIT


# --- the ground truth ------------------------------------------------------------------------------
UNREAD = "unread"  # a slot whose output nothing downstream reads (layer 1 away from the targets): no finding


def ground_truth(variant: str, heads: Heads | None = None) -> dict:
    """What the variant computes, in the schema of the account's ``algorithm`` block: ``components`` (every head and
    MLP at the board, the targets and the physics tokens, with the coarsest input variables its output is read for:
    ``none`` where nothing reads it, ``unread`` where nothing could, ``computed`` for the read-out) and ``routes`` (per
    case: where the governing bit enters, which component looks it up, which relay it, the read-out)."""
    heads, routes = heads or Heads(), VARIANTS[variant][1]
    used = set(routes.values())
    return {"variant": variant, "description": VARIANTS[variant][0], "heads": asdict(heads),
            "components": _component_truth(heads, used),
            "routes": {case: _route_truth(route, heads) for case, route in routes.items()}}


def _route_truth(route: str, heads: Heads) -> dict:
    lookup = {"rule": f"L1H{heads.lookup}@targets", "board": "MLP0@board", "targets": "MLP0@targets",
              "last": "MLP1@targets"}[route]
    return {"enters": "targets" if route == "last" else route, "layer": 1, "lookup": lookup,
            "relays": [f"L1H{heads.copy}@targets"] if route == "board" else [], "readout": ["MLP1@targets"]}


def _component_truth(heads: Heads, used: set[str]) -> list[dict]:
    at_board, at_targets = "board" in used, bool(used & {"rule", "targets", "last"})
    layer0 = {heads.count: "count9", heads.own: "own", heads.rules: "rule"}
    uses: dict[tuple[str, str], str] = {}
    for h in range(N_HEADS):
        role = layer0.get(h, "none")
        uses[(f"L0H{h}", "board")] = role if at_board else "none"
        rules_at_targets = bool(used & {"targets", "last"})
        uses[(f"L0H{h}", "targets")] = role if at_targets and (role != "rule" or rules_at_targets) else "none"
        uses[(f"L0H{h}", "physics")] = "none"
        layer1 = {heads.lookup: "rule" in used, heads.copy: "board" in used}.get(h, False)
        uses[(f"L1H{h}", "targets")] = "case+rule" if layer1 else "none"
        uses[(f"L1H{h}", "board")] = uses[(f"L1H{h}", "physics")] = UNREAD
    uses[("MLP0", "board")] = "case+rule" if at_board else "none"
    uses[("MLP0", "targets")] = "case+rule" if "targets" in used else "case" if "rule" in used else "none"
    uses[("MLP0", "physics")] = "none"
    uses[("MLP1", "targets")] = "computed"
    uses[("MLP1", "board")] = uses[("MLP1", "physics")] = UNREAD
    return [{"component": c, "positions": g, "uses": u} for (c, g), u in sorted(uses.items())]
