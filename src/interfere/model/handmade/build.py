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
  lookup routes), or directly the governing bit ``rule_j [z == j]`` (the ReLUs gated by ``rule_j``) at the board cells
  (*board* route) or at the targets (*targets* and *follow* routes);
* **layer 1** at the targets: a *lookup* head whose query is the one-hot case and whose keys are the rule tokens'
  identities attends to the one governing rule token and copies its value (*rule* route; cases of other routes
  attend to ``<BOS>``, whose value is 0), or two or three such heads at half weight (*shared* routes); a *copy* head
  reads the governing bit from the cell's own board position (*board* route); a *follow* head attends to ``<SEP>``
  when the bit MLP0 wrote at the target is 1 and to ``<BOS>`` when it is 0, and so writes it again (*follow* route);
* **MLP1** at the targets is the read-out: ``answer = relu(4g - 2.5) - relu(4g - 3.5)`` of the summed governing bit
  ``g`` (1 for one route, 2 for two, 1.5 for three half heads, 0.5 for one: below the threshold), the only thing the
  unembedding reads.

A variant assigns each of the 18 cases to its route or routes (:mod:`~interfere.model.handmade.variants`); which head
index plays which part is a parameter (:class:`Heads`), so a test can move a head and ask whether a method follows it.
A packed variant writes the one-hot case as a 6-dimensional code; a noisy one adds small noise to every weight.
"""

from __future__ import annotations

import torch

from interfere.ca.rules import BIRTH_OFFSET, N_COUNTS, N_RULE_BITS
from interfere.data.layout import (
    ALIVE,
    BOS,
    SEG_BOARD,
    SEG_TARGET,
    SEP,
    SequenceLayout,
    rule_token,
    window_shifts,
)
from interfere.model.config import ModelConfig
from interfere.model.handmade.variants import CASES, LOOKUP_ROUTES, N_HEADS, ROUTES, Heads, get_variant, used_routes
from interfere.model.life_model import LifeTransformer

BIG = 40.0  # attention score gap between the keys a head reads and the rest: leakage about exp(-40) per key
GATE = 100.0  # an MLP neuron is switched off by this much where it does not apply (any z - c is at most 19)
LOGIT = 10.0  # the read-out's logit difference, +-LOGIT
WINDOW = 2  # a 5x5 window: the 3x3 stencil is the bias's choice, not the architecture's
D_MODEL, D_HEAD, D_MLP = 96, 24, 96
CODE_DIMS = 6  # a packed case: 6 signs, even parity, the first 18 such codes (any two differ in two signs or more)
NOISE_SEED = 0


class Dim:
    """Named residual directions (everything else stays zero)."""

    ONE, BOARD, TARGET, ALIVE, IS_RULE, IS_BOS, RULE_VAL, COUNT9, OWN, GOV, ANSWER = range(11)
    RULE_ID = 11  # + bit: which rule token this is
    RULE_BIT = RULE_ID + N_RULE_BITS  # + bit: the token's value, in the bit's own direction
    RULES = RULE_BIT + N_RULE_BITS  # + bit: the rule bits gathered at a cell by layer 0
    CASE = RULES + N_RULE_BITS  # + case: the one-hot case formed by MLP0 at a target
    GOV0 = CASE + N_RULE_BITS  # the governing bit MLP0 wrote at a target for the follow head's query
    IS_SEP = GOV0 + 1
    CODE = IS_SEP + 1  # + i: the packed case's signs
    END = CODE + CODE_DIMS


def handmade_config() -> ModelConfig:
    """The one shape every variant shares."""
    return ModelConfig(n_layers=2, d_model=D_MODEL, n_heads=N_HEADS, d_head=D_HEAD, d_mlp=D_MLP, act_fn="relu",
                       norm="none", positions="window", window=WINDOW, rotary_dim=None, seed=0)


def build(variant: str, heads: Heads | None = None, layout: SequenceLayout | None = None) -> LifeTransformer:
    """The variant's model, its weights set by code (:mod:`~interfere.model.handmade.variants`), in eval mode."""
    spec, heads = get_variant(variant), heads or Heads()
    heads.check(used_routes(spec))
    model = LifeTransformer(handmade_config(), layout or SequenceLayout(8, 8))
    by_route = {r: [CASES.index(c) for c, routes in spec.routes.items() if r in routes] for r in ROUTES}
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        _embed(model)
        _layer0(model, heads, by_route)
        _mlp0(model, by_route, spec.packed)
        _layer1(model, heads, by_route, spec.packed)
        _readout(model, by_route["last"])
        if spec.noise:
            _perturb(model, spec.noise)
    return model.eval()


# The weights that write the residual stream MLP0's gates read (x 100, GATE): noise there is amplified a hundredfold
# and breaks the triangles from about 5e-5 on, so they get a thousandth of the noise the rest gets.
FRAGILE = ("W_seg", "embed.W_E", "blocks.0.attn.W_K", "blocks.0.attn.b_K", "blocks.0.attn.W_V", "blocks.0.attn.b_V",
           "blocks.0.attn.W_O", "blocks.0.attn.b_O", "blocks.0.mlp.W_out", "blocks.0.mlp.b_out")


def _perturb(model: LifeTransformer, sigma: float) -> None:
    """Every weight plus N(0, sigma^2) (:data:`FRAGILE` ones N(0, (sigma / 1000)^2)), from a fixed seed."""
    g = torch.Generator().manual_seed(NOISE_SEED)
    for name, p in model.named_parameters():
        p.add_(sigma * (1e-3 if name in FRAGILE else 1.0) * torch.randn(p.shape, generator=g))


def _embed(model: LifeTransformer) -> None:
    e, seg = model.embed.W_E, model.W_seg
    seg[:, Dim.ONE] = 1
    seg[SEG_BOARD, Dim.BOARD] = 1
    seg[SEG_TARGET, Dim.TARGET] = 1
    e[ALIVE, Dim.ALIVE] = 1
    e[BOS, Dim.IS_BOS] = 1
    e[SEP, Dim.IS_SEP] = 1
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
    if not any(by_route[r] for r in ("board", "targets", "follow", "last")):
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


def codes() -> torch.Tensor:
    """``[18, CODE_DIMS]`` +-1: the packed cases (:data:`CODE_DIMS`)."""
    bits = [[(n >> i) & 1 for i in range(CODE_DIMS)] for n in range(2**CODE_DIMS)]
    even = [b for b in bits if sum(b) % 2 == 0][:N_RULE_BITS]
    return 2 * torch.tensor(even, dtype=torch.float) - 1


def _mlp0(model: LifeTransformer, by_route: dict[str, list[int]], packed: bool) -> None:
    """The case (one-hot or packed) at the targets for the lookup routes, the governing bit at the board or the
    targets (``GOV0`` for the follow route, which a head relays)."""
    w_out, n = model.blocks[0].mlp.W_out, 0
    looked_up = sorted({j for r in LOOKUP_ROUTES for j in by_route[r]})
    if looked_up:
        first = n
        for k in range(-1, N_RULE_BITS + 1):  # relu(z - k) for k = -1..18, shared by the triangles
            _neuron(model, n, k, (Dim.TARGET,))
            n += 1
        for j in looked_up:
            write = codes()[j] if packed else torch.ones(1)
            dims = slice(Dim.CODE, Dim.CODE + CODE_DIMS) if packed else slice(Dim.CASE + j, Dim.CASE + j + 1)
            for k, weight in ((j - 1, 1.0), (j, -2.0), (j + 1, 1.0)):
                w_out[first + k + 1, dims] += weight * write
    for route, where, gov in (("board", Dim.BOARD, Dim.GOV), ("targets", Dim.TARGET, Dim.GOV),
                              ("follow", Dim.TARGET, Dim.GOV0)):
        for j in by_route[route]:  # rule_j [z == j]: the triangle's neurons gated by the rule bit
            for c, weight in ((j - 1, 1.0), (j, -2.0), (j + 1, 1.0)):
                _neuron(model, n, c, (where, Dim.RULES + j))
                w_out[n, gov] = weight
                n += 1


def _lookup_head(model: LifeTransformer, head: int, cases: list[int], weight: float, packed: bool) -> None:
    """A layer-1 head whose query is the case and whose keys are the rule tokens' identities: it attends to the
    governing token of its cases (others to ``<BOS>``, value 0) and writes its value, times ``weight``, as the bit."""
    attn, scale = model.blocks[1].attn, BIG * D_HEAD**0.5
    null = N_RULE_BITS
    attn.W_K[head, Dim.IS_BOS, null] = 1
    if packed:  # a case's code against each case's: 1 for its own, at most 1/3 for another; <BOS> at 1/2
        attn.W_Q[head, Dim.ONE, null] = scale / 2
        for j in cases:
            attn.W_Q[head, Dim.CODE:Dim.CODE + CODE_DIMS, j] = scale * codes()[j] / CODE_DIMS
    else:
        attn.W_Q[head, Dim.ONE, null] = scale
        for j in cases:
            attn.W_Q[head, Dim.CASE + j, j] = scale
            attn.W_Q[head, Dim.CASE + j, null] = -scale
    for j in cases:
        attn.W_K[head, Dim.RULE_ID + j, j] = 1
    attn.W_V[head, Dim.RULE_VAL, 0] = 1
    attn.W_O[head, 0, Dim.GOV] = weight


def _follow_head(model: LifeTransformer, head: int) -> None:
    """``<SEP>`` when the bit MLP0 wrote at the target (``GOV0``) is 1, ``<BOS>`` when 0: its value (``<SEP>``'s
    mark) is the bit again. Its attention follows the answer, as the trained models' heads do."""
    attn, scale = model.blocks[1].attn, BIG * D_HEAD**0.5
    attn.W_Q[head, Dim.ONE, 0] = scale
    attn.W_K[head, Dim.IS_BOS, 0] = 1
    attn.W_Q[head, Dim.GOV0, 1] = 2 * scale
    attn.W_K[head, Dim.IS_SEP, 1] = 1
    attn.W_V[head, Dim.IS_SEP, 0] = 1
    attn.W_O[head, 0, Dim.GOV] = 1
    model.W_rel[1, :, head] = _stencil("none")


def _layer1(model: LifeTransformer, heads: Heads, by_route: dict[str, list[int]], packed: bool) -> None:
    if by_route["rule"]:
        _lookup_head(model, heads.lookup, by_route["rule"], 1.0, packed)
    for h in heads.shared:
        cases = sorted({j for r in ("shared2", "shared3") if h in heads.layer1(r) for j in by_route[r]})
        if cases:
            _lookup_head(model, h, cases, 0.5, packed)
    if by_route["board"]:
        _board_reader(model, 1, heads.copy, "own", Dim.GOV, Dim.GOV)
    if by_route["follow"]:
        _follow_head(model, heads.follow)


def _readout(model: LifeTransformer, last: list[int]) -> None:
    """MLP1 at the targets: the answer from the governing bit the routes brought (one route 1, two 2, three half heads
    1.5, one half head 0.5: the threshold sits between 0.5 and 1), and for the cases of the *last* route the lookup
    itself (``rule_j [z == j]`` straight into the answer, from the rule bits layer 0 brought)."""
    mlp = model.blocks[1].mlp
    n = 2
    for j in last:
        for c, weight in ((j - 1, 1.0), (j, -2.0), (j + 1, 1.0)):
            _neuron(model, n, c, (Dim.TARGET, Dim.RULES + j), layer=1)
            mlp.W_out[n, Dim.ANSWER] = weight
            n += 1
    for n, (offset, sign) in enumerate(((2.5, 1.0), (3.5, -1.0))):  # relu(4g - 2.5) - relu(4g - 3.5)
        mlp.W_in[Dim.GOV, n], mlp.W_in[Dim.TARGET, n] = 4.0, GATE
        mlp.b_in[n] = -offset - GATE
        mlp.W_out[n, Dim.ANSWER] = sign
    model.unembed.W_U[Dim.ANSWER, 1] = 2 * LOGIT
    model.unembed.b_U[1] = -LOGIT
