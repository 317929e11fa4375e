"""How the model computes: importance, the minimal circuit, the lookup map, roles tested by interchange against an
answer-carrying control, idealised heads, the read-out at neuron level, and the algorithm card.

    python explorations/circuit.py [--run-id ID | --ckpt PATH] [--samples 128]
                                                 (also: python -m interfere.explore.circuit)

The stages of :mod:`interfere.explore.account`, in order, each a function of the ones before:

1. **Slots**: every component at the board, the targets and the physics tokens; the ones nothing downstream can read
   are left out by construction and listed once.
2. **Importance** and the **minimal circuit** (:mod:`interfere.explore.components`): accuracy with each head and MLP
   mean-ablated alone, and the smallest set that keeps ``sufficient_acc`` with the rest mean-ablated.
3. **The lookup map** (:mod:`~interfere.explore.account.routes`): one rule bit flipped at a time; per case, where the
   flip enters, which slot looks it up, which relay it, the read-out; recomputed on each half of the boards.
4. **Roles** (:mod:`~interfere.explore.account.roles`): each readable slot's coarsest input variables, by interchange
   with two donor draws, next to its answer-carrying control; the account with every role at once.
5. **Idealised heads** (:mod:`~interfere.explore.account.idealised`): templates written from the inputs and the map.
6. **The read-out at neuron level** (:mod:`~interfere.explore.account.neurons`).
7. **Where variables appear**: linear probes at the targets after every sublayer, with a random-init control.

The ``algorithm`` block of summary.json is the machine-readable account; the card and the report section are rendered
from it (:mod:`~interfere.explore.account.card`). Thresholds: the ``circuit`` section of the thresholds file, passed in.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from interfere.ca.rules import N_RULE_BITS
from interfere.data.stream import random_boards
from interfere.explore.account import card, idealised, kinds, neurons, roles, routes
from interfere.explore.account.figures import importance_figure, map_figure, probes_figure
from interfere.explore.account.interchange import Interchange
from interfere.explore.account.slots import GROUPS, all_slots, unread_slots
from interfere.explore.analysis import Examples, Want, at_positions, cell_labels, linear_probes
from interfere.explore.common import Context, add_samples_arg, examples_of, parser, run_main
from interfere.explore.components import accuracy, all_components, importance, minimal_circuit, reference_outputs
from interfere.explore.logit_lens import residual_points
from interfere.explore.probes import board_split, random_twin
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer

NAME = "circuit"


@dataclass(frozen=True)
class Draws:
    """What each random draw adds to ``Params.seed``, by name (fixed: the docs' numbers were drawn with these)."""

    swap: int = 0  # the interchange of donor draw d: swap + d
    control_swap: int = 2
    donors: int = 303  # donor draw d: donors + donor_step * d
    donor_step: int = 101
    control_rules: int = 505
    control_donors: int = 606
    reference_boards: int = 707


DRAWS = Draws()


@dataclass
class Params:
    thresholds: dict  # the whole thresholds file; its circuit section is applied
    samples: int = 128
    donors_per_rule: int = 24  # donor boards per rule of the examples and draw (interchange needs same-rule donors)
    control_rules: int = 64  # rules (none of the examples') of the answer-carrying control's donor pool
    map_boards: int = 32  # boards for the lookup map (18 flipped forwards and two patches per slot each)
    reference_boards: int = 64  # boards the idealised templates' constants are measured on
    lookup_boards: int = 64  # boards for the read-out's neurons
    density: tuple[float, float] = (0.1, 0.9)  # the donor boards' live-cell density range (the data's)
    seed: int = 0


@dataclass
class Result:
    samples: int
    donors: int
    clean_acc: float
    importance: dict[str, float]
    circuit: list[str]
    circuit_acc: float
    circuit_search: str
    unread: list[str]  # slots nothing downstream can read: left out by construction
    map: dict[str, routes.CaseFlips]  # case -> its flips: follow, boundary carries, every slot's effect
    routes: dict[str, routes.Route]  # case -> its route: kind, enters, layer, lookups, relays, read-out
    map_halves: routes.Halves  # the routes on each half of the boards, and the cases where they differ
    roles: dict[str, roles.Role]  # slot ("L0H0@board") -> its role
    account: roles.Account  # every role at once, the board roles alone, the second donor draw
    idealised: idealised.Idealised
    readout: neurons.Readout  # the read-out's neurons
    probes: dict
    probes_random_init: dict
    first_decodable: dict
    algorithm: dict
    card: list[str]
    verdict: str
    verdict_reason: str
    thresholds: dict


def wants(model: LifeTransformer, params: Params | None) -> list[Want]:
    """The probes' residuals at the targets (the same cut the logit lens and H2's probes read)."""
    view = at_positions("targets", model.layout.targets[0])
    return [(hook, view) for _, hook in probe_points(model.cfg.n_layers)]


def fresh_boards(model: LifeTransformer, rules: torch.Tensor, params: Params, seed: int) -> Examples:
    """A fresh board (their own seed, the data's densities) for each of ``rules``."""
    g = torch.Generator().manual_seed(seed)
    return examples_of(model, rules, random_boards(len(rules), model.layout.height, model.layout.width,
                                                   *params.density, g))


def donor_pool(model: LifeTransformer, rules: torch.Tensor, per_rule: int, params: Params, seed: int) -> Examples:
    """``per_rule`` fresh boards for every one of ``rules``."""
    return fresh_boards(model, torch.unique(rules, dim=0).repeat_interleave(per_rule, 0), params, seed)


def control_rules(ex: Examples, n: int, seed: int) -> torch.Tensor:
    """``n`` random rules none of the examples has (the answer-carrying control's donors have another rule)."""
    g = torch.Generator().manual_seed(seed)
    drawn = torch.rand(4 * n, N_RULE_BITS, generator=g) < 0.5
    seen = {tuple(r.tolist()) for r in ex.rules}
    return torch.stack([r for r in drawn if tuple(r.tolist()) not in seen][:n])


def swap_of(model: LifeTransformer, pool: Examples, seed: int) -> Interchange:
    return Interchange(model, pool, reference_outputs(model, pool.tokens, all_components(model)), seed)


def measure(model: LifeTransformer, ex: Examples, params: Params) -> Result:
    th = params.thresholds["circuit"]
    unread = unread_slots(model)
    slots = [s for s in all_slots(model) if s not in set(unread)]
    seed = params.seed
    pools = [donor_pool(model, ex.rules, params.donors_per_rule, params, seed + DRAWS.donors + DRAWS.donor_step * d)
             for d in (0, 1)]
    swaps = [swap_of(model, pool, seed + DRAWS.swap + d) for d, pool in enumerate(pools)]
    control_pool = donor_pool(model, control_rules(ex, params.control_rules, seed + DRAWS.control_rules), 8, params,
                              seed + DRAWS.control_donors)
    control = swap_of(model, control_pool, seed + DRAWS.control_swap)
    means = {c: o.mean(0) for c, o in swaps[0].outputs.items()}
    screen, confirm = ex.head(max(16, len(ex) // 8)), ex.head(max(32, len(ex) // 2))
    single = importance(model, ex, means)
    circuit, circuit_acc, search = minimal_circuit(model, ex, means, th["sufficient_acc"], screen, single)
    flips, summary, route_map = kinds.lookup_map(model, ex.head(min(len(ex), params.map_boards)), th, slots)
    found = roles.find_roles(model, swaps, control, slots, confirm, screen, th,
                             roles.redundant_partners(route_map, summary))
    account = roles.Account(all_at_once=roles.account_test(model, swaps[0], ex, found, GROUPS),
                            board_roles=roles.account_test(model, swaps[0], ex, found, ("board",)),
                            second_draw=roles.account_test(model, swaps[1], ex, found, GROUPS))
    picked = torch.randint(0, len(ex), (params.reference_boards,), generator=torch.Generator().manual_seed(params.seed))
    reference = fresh_boards(model, ex.rules[picked], params, seed + DRAWS.reference_boards)  # templates' constants
    ideal = idealised.idealise(model, ex, reference, slots, routes.lookups_by_slot(route_map), th["answer_tv"])
    readout = neurons.readout_set(model, ex.head(min(len(ex), params.lookup_boards)), params.seed, th)
    probes = variable_probes(model, ex, params.seed)
    twin = random_twin(model, params.seed)
    control_probes = variable_probes(twin, examples_of(twin, ex.rules, ex.boards), params.seed)
    decodable = first_decodable(probes, th)
    clean = accuracy(model, ex)
    halves = routes.halves_agree(flips, model.cfg.n_layers, th)
    verdict = card.card_verdict(account, route_map, readout, th, halves)
    lines = card.card_lines(found, [s.name for s in unread], route_map, account, ideal, readout, decodable, clean,
                            halves)
    return Result(
        samples=len(ex), donors=len(pools[0]), clean_acc=clean, importance={c.name: a for c, a in single.items()},
        circuit=[c.name for c in circuit], circuit_acc=circuit_acc, circuit_search=search,
        unread=[s.name for s in unread], map=summary, routes=route_map,
        map_halves=halves, roles=found, account=account, idealised=ideal,
        readout=readout, probes=probes, probes_random_init=control_probes, first_decodable=decodable,
        algorithm=card.algorithm_block(found, [s.name for s in unread], route_map, ideal, readout, account),
        card=lines, verdict=verdict[0], verdict_reason=verdict[1], thresholds=th)


# --- probes: where each variable becomes linearly decodable ----------------------------------------
def probe_points(n_layers: int) -> list[tuple[str, str]]:
    """(label, hook) after every sublayer: the embedding, then attention and MLP of each layer (the
    residual after a layer is read where the logit lens reads it, so one forward serves both)."""
    after = dict(residual_points(n_layers))
    points = [("embed", after["embed"])]
    for layer in range(n_layers):
        points += [(f"L{layer} attn", act_name("resid_mid", layer)), (f"L{layer} MLP", after[f"after L{layer}"])]
    return points


def variable_probes(model: LifeTransformer, ex: Examples, seed: int) -> dict[str, list[float]]:
    """Held-out linear probe scores at the targets per point (least squares, split by board): AUC for the
    own state, each rule bit and the next state, R2 for the count."""
    train, test = board_split(len(ex.boards), seed)
    labels = cell_labels(ex)
    out: dict[str, list[float]] = {k: [] for k in labels}
    for hook, view in wants(model, None):
        scores = linear_probes(ex.act(hook, view), labels, torch.from_numpy(test))
        for key, value in scores.items():
            out[key].append(value)
    return {"points": [p for p, _ in probe_points(model.cfg.n_layers)], **out}


def first_decodable(probes: dict[str, list[float]], th: dict) -> dict[str, str | None]:
    """The first probe point where each variable is decodable (AUC or, for the count, R2 at threshold)."""
    rules = np.array([probes[f"rule {b}"] for b in range(N_RULE_BITS)], dtype=float)
    series = {"own state": probes["own"], "neighbour count": probes["count"],
              "the rule bits on average": np.nanmean(rules, 0), "every rule bit": np.nanmin(rules, 0),
              "governing bit value (= next state)": probes["next"]}
    out = {}
    for name, values in series.items():
        need = th["decodable_r2"] if name == "neighbour count" else th["decodable_auc"]
        out[name] = next((p for p, v in zip(probes["points"], values) if v >= need), None)
    return out


def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    return [map_figure(result.map, result.routes, out, provenance(samples=result.samples)),
            importance_figure(result, out, provenance), probes_figure(result, out, provenance)]


def build_parser() -> argparse.ArgumentParser:
    p = parser("How the model computes: importance, the minimal circuit, the lookup map, roles tested by interchange "
               "against an answer-carrying control, idealised heads, the read-out's neurons, and an algorithm card.")
    add_samples_arg(p, 128, 8, "boards for every accuracy")
    return p


def params_from_args(args: argparse.Namespace, ctx: Context, thresholds: dict) -> Params:
    return Params(samples=args.samples, density=(ctx.data.density_min, ctx.data.density_max), seed=ctx.seed,
                  thresholds=thresholds)


def main(argv: list[str] | None = None) -> dict:
    numbers = run_main(__spec__.name, argv)
    print(f"verdict: {numbers['verdict']} ({numbers['verdict_reason']})")
    print("\n".join(["algorithm card:"] + [f"  {i + 1}. {line}" for i, line in enumerate(numbers["card"])]))
    return numbers


if __name__ == "__main__":
    main()
