"""Strict interchange-intervention training (SIIT; Gupta et al. 2024, arXiv 2407.14494): a model trained to compute by
a known algorithm, so that its weights are learned (not crisp) and its algorithm is still known: ground truth for the
methods where computation is not crisp (docs/design.md, "Models trained to a known algorithm").

The algorithm is a hand-made variant's (:mod:`interfere.model.handmade.variants`): each case's route says which
component computes its governing bit (MLP0 at the board or the targets, a layer-1 lookup head at the targets) and
which relays it (the copy head), and MLP0 at the targets forms the case the lookup head reads. Those components are
the circuit's *nodes*; the components no route uses are outside it. Each step adds to the behaviour loss:

* the **interchange loss**: a node's output at its positions taken from a source batch; each base cell whose case the
  node serves is trained to the high-level counterfactual (the source cell's governing bit, or for the case node the
  base rule's bit of the source cell's case) where the source cell's case is one the node serves the same way, and
  every other base cell to its own next state (the node must not matter to it);
* the **strict loss**: a component outside the circuit taken from the source: every base cell keeps its next state.
  The component is drawn uniformly, or (``train.siit_strict_sampling=need``) in proportion to how far it fell short
  at the last validation (the stop rule reads the mean over the components, and one component the model keeps using
  holds that mean below 0.99 while the others are at 1).

The interchange loss's node is drawn uniformly, or (``train.siit_iit_sampling=need``) in proportion to how far its
interchange accuracy fell short at the last validation.

The weights follow InterpBench's defaults (behaviour 1, interchange 1, strict 0.4). Validation measures each node's
interchange accuracy on the cells whose counterfactual differs from their next state (``siit_iia``: the worst node)
and the strict accuracy (``siit_strict``: the mean over the components outside the circuit), which ``train.stop_when``
reads as ``iia`` and ``strict_acc``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from interfere.ca.rules import N_RULE_BITS, governing_bit
from interfere.ca.simulate import neighbour_counts, step
from interfere.data.stream import random_boards, validation_rules
from interfere.errors import UserError
from interfere.model.handmade.truth import ground_truth
from interfere.model.handmade.variants import Heads, get_variant
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer

CASE, BIT = "case", "bit"
NEED_FLOOR = 0.01  # by need, a component that already keeps every cell is still drawn now and then


@dataclass(frozen=True)
class Node:
    """A component (``head`` None: the layer's MLP) at a group of positions, serving some cases with a variable."""

    layer: int
    head: int | None
    group: str  # board | targets
    serves: tuple[tuple[int, str], ...] = ()  # (case, variable) pairs; empty: outside the circuit

    @property
    def name(self) -> str:
        return f"{'MLP' if self.head is None else f'L{self.layer}H'}{self.layer if self.head is None else self.head}" \
               f"@{self.group}"

    @property
    def hook(self) -> str:
        return act_name("mlp_out" if self.head is None else "z", self.layer)


def circuit(variant: str, heads: Heads, n_heads: int) -> tuple[list[Node], list[Node]]:
    """(the nodes the interchange loss trains, the components outside the circuit) for a variant's algorithm on a
    two-layer model of ``n_heads`` heads per layer."""
    spec = get_variant(variant)
    if any(len(r) > 1 or r[0] not in ("rule", "board", "targets") for r in spec.routes.values()):
        raise UserError(f"SIIT trains one route per case among rule, board and targets: {variant!r} has others "
                        "(use split, attention, board or targets)")
    by_route: dict[str, list[int]] = {}
    for case, (route,) in spec.routes.items():
        by_route.setdefault(route, []).append(list(spec.routes).index(case))
    serves: dict[tuple[int, int | None, str], list[tuple[int, str]]] = {}
    for j in by_route.get("board", []):
        serves.setdefault((0, None, "board"), []).append((j, BIT))
        serves.setdefault((1, heads.copy, "targets"), []).append((j, BIT))
    for j in by_route.get("targets", []):
        serves.setdefault((0, None, "targets"), []).append((j, BIT))
    for j in by_route.get("rule", []):
        serves.setdefault((0, None, "targets"), []).append((j, CASE))
        serves.setdefault((1, heads.lookup, "targets"), []).append((j, BIT))
    nodes = [Node(*key, tuple(v)) for key, v in serves.items()]
    layer0 = {heads.count, heads.own} | ({heads.rules} if by_route.keys() & {"board", "targets"} else set())
    inside = set(serves) | {(0, h, g) for h in layer0 for g in ("board", "targets")} | {(1, None, "targets")}
    readable = [(layer, h, g) for layer in (0, 1) for h in [*range(n_heads), None] for g in ("board", "targets")
                if not (layer == 1 and g == "board")]  # layer 1 at the board: nothing reads it
    return nodes, [Node(*key) for key in readable if key not in inside]


@dataclass
class Cells:
    """What the losses need of a batch: tokens, each cell's case, next state and the rules."""

    tokens: torch.Tensor
    case: torch.Tensor  # [N, cells]
    next: torch.Tensor  # [N, cells]
    rules: torch.Tensor  # [N, 18]

    @classmethod
    def of(cls, model: LifeTransformer, rules: torch.Tensor, boards: torch.Tensor) -> Cells:
        return cls(model.encode_prompt(rules, boards), governing_bit(boards, neighbour_counts(boards)).flatten(1),
                   step(boards, rules).flatten(1), rules)


def counterfactual(node: Node, base: Cells, source: Cells) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, counted) ``[N, cells]``: the high-level model's output with the node's value from the source."""
    variable = torch.full((N_RULE_BITS,), -1, dtype=torch.long)
    for case, v in node.serves:
        variable[case] = 0 if v == BIT else 1
    vb, vs = variable[base.case], variable[source.case]
    bit_source = torch.gather(source.rules.long(), 1, source.case)
    base_rule_of_source_case = torch.gather(base.rules.long(), 1, source.case)
    label = torch.where(vb == 0, bit_source, torch.where(vb == 1, base_rule_of_source_case, base.next))
    counted = (vb < 0) | (vb == vs)
    return label, counted


def source_values(model: LifeTransformer, nodes: list[Node], source: Cells) -> dict[str, torch.Tensor]:
    """The nodes' hooks' activations on the source, one forward."""
    names = {n.hook for n in nodes}
    with torch.no_grad():
        _, cache = model.run_with_cache(source.tokens, names_filter=lambda n: n in names)
    return {name: cache[name] for name in names}


def patched_logits(model: LifeTransformer, node: Node, base: Cells, source: Cells,
                   values: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """``[N, cells, 2]`` t+1 logits of the base with the node's output at its positions taken from the source (its
    activations ``values`` if already computed)."""
    group = model.layout.board if node.group == "board" else model.layout.targets[0]
    value = (values or source_values(model, [node], source))[node.hook]

    def swap(act: torch.Tensor, hook: object) -> torch.Tensor:
        act = act.clone()
        if node.head is None:
            act[:, group] = value[:, group]
        else:
            act[:, group, node.head] = value[:, group, node.head]
        return act
    logits = model.run_with_hooks(base.tokens, fwd_hooks=[(node.hook, swap)])
    return model.layout.first_step(model.target_logits(logits))


def draw(components: list[Node], g: torch.Generator, need: torch.Tensor | None = None) -> Node:
    """One of ``components`` (the nodes, or those outside the circuit): uniformly, or in proportion to ``need``."""
    if need is None:
        return components[int(torch.randint(len(components), (1,), generator=g))]
    return components[int(torch.multinomial(need, 1, generator=g))]


def losses(model: LifeTransformer, nodes: list[Node], outside: list[Node], base: Cells, source: Cells,
           g: torch.Generator, need: torch.Tensor | None = None, node_need: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(interchange loss on a random node, strict loss on a random component outside the circuit: each drawn
    uniformly, or in proportion to ``node_need`` and ``need``, one weight per component)."""
    node = draw(nodes, g, node_need)
    other = draw(outside, g, need) if outside else None
    values = source_values(model, [node] + ([other] if other else []), source)
    label, counted = counterfactual(node, base, source)
    iit = F.cross_entropy(patched_logits(model, node, base, source, values)[counted], label[counted])
    strict = torch.zeros(())
    if other is not None:
        strict = F.cross_entropy(patched_logits(model, other, base, source, values).flatten(0, 1), base.next.flatten())
    return iit, strict


@torch.no_grad()
def metrics(model: LifeTransformer, nodes: list[Node], outside: list[Node], base: Cells, source: Cells) -> dict:
    """Each node's interchange accuracy on the cells whose counterfactual differs from their next state, the worst
    (``siit_iia``), and the strict accuracy per outside component and their mean (``siit_strict``)."""
    per_node, values = {}, source_values(model, nodes + outside, source)
    for node in nodes:
        label, counted = counterfactual(node, base, source)
        hit = patched_logits(model, node, base, source, values).argmax(-1) == label
        changed = counted & (label != base.next)
        per_node[node.name] = float(hit[changed].float().mean()) if changed.any() else float("nan")
    strict = {o.name: float((patched_logits(model, o, base, source, values).argmax(-1) == base.next).float().mean())
              for o in outside}
    return {"siit_iia": min(per_node.values()), "siit_strict": sum(strict.values()) / max(1, len(strict)),
            "siit_iia_per_node": per_node, "siit_strict_per_component": strict}


@dataclass
class SiitRun:
    """A run's SIIT: its circuit, its generator, and the ground truth its checkpoints carry."""

    variant: str
    nodes: list[Node]
    outside: list[Node]
    g: torch.Generator
    by_need: bool = False  # train.siit_strict_sampling=need: draw the strict loss's component by its last shortfall
    need: torch.Tensor | None = None  # per outside component: 1 - its last strict accuracy, plus a floor
    nodes_by_need: bool = False  # train.siit_iit_sampling=need: draw the interchange loss's node by its shortfall
    node_need: torch.Tensor | None = None  # per node: 1 - its last interchange accuracy, plus a floor

    @classmethod
    def of(cls, tc: object, model: LifeTransformer, seed: int, dd: object) -> SiitRun:
        if getattr(dd, "enabled", False):
            raise UserError("train.siit runs in one process (its patched forwards are not distributed): drop torchrun")
        if model.cfg.n_layers != 2:
            raise UserError(f"train.siit imposes a two-layer algorithm: set model.n_layers=2, not "
                            f"{model.cfg.n_layers}")
        nodes, outside = circuit(tc.siit, Heads(), model.cfg.n_heads)
        return cls(tc.siit, nodes, outside, torch.Generator().manual_seed(seed + 7),
                   tc.siit_strict_sampling == "need", nodes_by_need=tc.siit_iit_sampling == "need")

    def backward(self, model: LifeTransformer, batch: object, source: object, tc: object) -> None:
        """The interchange and strict losses of one step, their gradients added to the behaviour loss's."""
        base, src = (Cells.of(model, b.rules, b.boards[:, 0]) for b in (batch, source))
        iit, strict = losses(model, self.nodes, self.outside, base, src, self.g, self.need, self.node_need)
        (tc.siit_iit * iit + tc.siit_strict * strict).backward()

    def validation(self, model: LifeTransformer, data: object, seed: int, boards: int = 256) -> dict:
        """:func:`metrics` on pairs of boards of the validation rules (their own seed)."""
        g = torch.Generator().manual_seed(seed + 31)
        rules = validation_rules(data)
        halves = []
        for _ in range(2):
            picked = rules[torch.randint(len(rules), (boards,), generator=g)]
            halves.append(Cells.of(model, picked, random_boards(boards, data.height, data.width, data.density_min,
                                                                data.density_max, g)))
        result = metrics(model, self.nodes, self.outside, *halves)
        if self.by_need and self.outside:
            per = result["siit_strict_per_component"]
            self.need = torch.tensor([1 - per[o.name] + NEED_FLOOR for o in self.outside])
        if self.nodes_by_need:  # a node with no changed cell (NaN) has no shortfall to show
            iia = result["siit_iia_per_node"]
            self.node_need = torch.tensor([(0.0 if math.isnan(iia[n.name]) else 1 - iia[n.name]) + NEED_FLOOR
                                           for n in self.nodes])
        return result

    def state(self) -> dict:
        """What a resumed run needs to draw as the straight run would: the generator and the last shortfalls."""
        return {"g": self.g.get_state(), "need": self.need, "node_need": self.node_need}

    def load(self, state: dict) -> None:
        self.g.set_state(state["g"].cpu())
        self.need, self.node_need = state["need"], state.get("node_need")

    def ground_truth(self) -> dict:
        """What the checkpoint's algorithm is: the variant's routes and where its variables live (the roles of the
        components SIIT does not train are not known, and not stated)."""
        truth = ground_truth(self.variant)
        return {**{k: truth[k] for k in ("variant", "description", "heads", "routes", "variables")},
                "trained_by": "SIIT", "nodes": {n.name: [c for c, _ in n.serves] for n in self.nodes},
                "outside": [n.name for n in self.outside]}
