"""Where the algorithm's variables live: own, count, case and the governing bit aligned to the network by
interchange interventions on learned linear subspaces (distributed alignment search), each claim next to the
full-vector interchange, a control causal model and the randomly initialised model.

    python -m interfere abstraction [--run-id ID | --ckpt PATH] [--samples 256] [--variables count,bit]
                                    [--sites resid_pre.1@targets,...]

The stages are in :mod:`interfere.explore.alignment`. Pairs are drawn on training rules for the fits and on the
held-out test rules for every number reported; IIA is measured on *changed* pairs (where the counterfactual label
differs from the base cell's next state), beside the base rate. The map (``variables``) gives, per variable, every
searched site with its case group, rank, IIA and controls, the earliest site that holds it (``located``) and, per case,
the earliest site that holds it for that case (``by_case``; sites at the rule tokens carry the input and are never
``located``, nor is the residual at a target after the last attention for the bit: a model right on a cell holds its
answer there by construction; the cases held only there are ``only_at_the_answer``). Thresholds: the
``abstraction`` section of the thresholds file, passed in.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from interfere.ca.rules import BIT_NAMES, rule_codes
from interfere.data.stream import DataConfig, distinct_random_rules, heldout_rules, random_boards, validation_rules
from interfere.errors import UserError
from interfere.explore.account.card import case_span
from interfere.explore.alignment import figures
from interfere.explore.alignment.causal import VARIABLES, HighLevel
from interfere.explore.alignment.das import Batch
from interfere.explore.alignment.heads import all_heads_aligned
from interfere.explore.alignment.joint import joint_iia
from interfere.explore.alignment.search import Budget, Data, search_site
from interfere.explore.alignment.sites import Site, all_sites, holds_the_answer
from interfere.explore.analysis import Examples, Want
from interfere.explore.common import Context, add_samples_arg, examples_of, parser, run_main
from interfere.explore.probes import random_twin
from interfere.model.life_model import LifeTransformer

NAME = "abstraction"
CONTROL_SEED = 7  # the control causal model's random bit of (rule, case)
CONTROL_RULES = 256  # fresh rules (one board each) the control model is measured on
HEADS_UP_TO = 2  # deeper models are searched at the residual stream, the attention's and the MLP's outputs


@dataclass
class Params:
    thresholds: dict  # the whole thresholds file; its abstraction section is applied
    samples: int = 256  # held-out boards (over the test rules, boards_per_rule each)
    train_rules: int = 128  # training rules (neither test nor validation rules) the fits are drawn on
    boards_per_rule: int = 4
    variables: tuple[str, ...] = VARIABLES
    sites: tuple[str, ...] | None = None  # None: every readable site
    heads: bool | None = None  # each head's z among the sites (None: for models of at most HEADS_UP_TO layers)
    density: tuple[float, float] = (0.1, 0.9)
    heldout: tuple[int, int] = (64, 1234)  # the data's test rules: (count, seed)
    excluded: tuple[int, ...] = ()  # rule codes never drawn for training (the validation rules)
    seed: int = 0
    budget: Budget = field(default_factory=Budget)
    aligned_heads: bool = True  # also every head idealised at once with the aligned bit (explore.alignment.heads)
    random_init: bool = True  # also each claim's IIA on the randomly initialised model


@dataclass
class Result:
    variables: dict  # variable -> {"located", "by_case", "sites": [entries]}
    joint: dict | None  # the bit at every site that holds it for some cases, intervened at once (alignment.joint)
    all_heads_aligned: float | None  # held-out accuracy, every head idealised with the aligned bit (heads.py)
    heads: dict  # the same with input-only case-conditional templates, and the answer-following heads
    sites: list[str]
    thresholds: dict
    seconds: float


def wants(model: LifeTransformer, params: Params | None) -> list[Want]:
    return []  # every fit runs its own interventions


def batch_of(model: LifeTransformer, rules: torch.Tensor, params: Params, seed: int) -> Batch:
    """``boards_per_rule`` fresh boards for every rule (consecutive examples share a rule)."""
    g = torch.Generator().manual_seed(seed)
    rules = rules.repeat_interleave(params.boards_per_rule, 0)
    boards = random_boards(len(rules), model.layout.height, model.layout.width, *params.density, g)
    return Batch(model, examples_of(model, rules, boards), torch.arange(len(rules)) // params.boards_per_rule)


def data_of(model: LifeTransformer, params: Params) -> Data:
    test_rules = heldout_rules(*params.heldout)
    n_test = max(2, params.samples // params.boards_per_rule)
    test_rules = test_rules[torch.randperm(len(test_rules), generator=torch.Generator().manual_seed(params.seed))]
    test_rules = test_rules.repeat((n_test + len(test_rules) - 1) // len(test_rules), 1)[:n_test]
    excluded = set(params.excluded) | set(rule_codes(heldout_rules(*params.heldout)).tolist())
    fresh = distinct_random_rules(params.train_rules + CONTROL_RULES, params.seed + 1, excluded)
    train_rules, control_rules = fresh[:params.train_rules], fresh[params.train_rules:]
    twin = random_twin(model, params.seed) if params.random_init else None
    return Data(train=batch_of(model, train_rules, params, params.seed + 2),
                test=batch_of(model, test_rules, params, params.seed + 3),
                control_test=batch_of(model, control_rules, dataclasses.replace(params, boards_per_rule=1),
                                      params.seed + 4),
                random_train=batch_of(twin, train_rules, params, params.seed + 2) if twin else None,
                random_test=batch_of(twin, test_rules, params, params.seed + 3) if twin else None,
                real=HighLevel.real(), control=HighLevel.control(CONTROL_SEED),
                seed=params.seed, budget=params.budget)


def sites_for(model: LifeTransformer, variable: str, names: tuple[str, ...] | None, heads: bool | None = None
              ) -> list[Site]:
    """The sites a variable is searched at: its governing rule token only for the bit; each head's output where
    ``heads`` (default: for models of at most :data:`HEADS_UP_TO` layers) or where ``names`` names it."""
    where = ("board", "targets", "rule") if variable == "bit" else ("board", "targets")
    heads = model.cfg.n_layers <= HEADS_UP_TO if heads is None else heads
    sites = all_sites(model, where, heads=heads or names is not None)
    return sites if names is None else [s for s in sites if s.name in names]


def located(entries: list[dict], forced: Callable[[Site], bool] = lambda site: False
            ) -> tuple[str | None, dict[str, dict], list[str]]:
    """The earliest site that holds the variable, per case the earliest site that holds it for that case with its
    rank, and the cases held only at ``forced`` sites. Rule-token sites (they carry the input) and ``forced`` ones
    (for the bit: :func:`holds_the_answer`) are never earliest."""
    holding = sorted(((Site.from_name(e["site"]), e) for e in entries if e.get("failed") is None and "rank" in e),
                     key=lambda se: se[0])
    holding = [(s, e) for s, e in holding if s.where != "rule"]
    by_case: dict[str, dict] = {}
    for site, e in holding:
        for case in e["cases"]:
            if not forced(site):
                by_case.setdefault(case, {"site": site.name, "rank": e["rank"]})
    only_forced = sorted({c for s, e in holding if forced(s) for c in e["cases"]} - set(by_case), key=BIT_NAMES.index)
    first = next((s.name for s, _ in holding if not forced(s)), None)
    return first, {c: by_case[c] for c in BIT_NAMES if c in by_case}, only_forced


AT_THE_ANSWER = "only where the answer is (the residual at the target after the last attention: forced, not located)"


def cases_by_site(by_case: dict[str, dict]) -> dict[str, tuple[list[str], int]]:
    """A variable's ``by_case`` (case -> its earliest site and rank) grouped: site -> (its cases, their rank)."""
    out: dict[str, tuple[list[str], int]] = {}
    for case, at in by_case.items():
        out.setdefault(at["site"], ([], at["rank"]))[0].append(case)
    return out


def forced_sites(variable: str, n_layers: int) -> Callable[[Site], bool]:
    """The sites where holding ``variable`` is forced by the architecture: the answer's residual, for the bit."""
    return (lambda site: holds_the_answer(site, n_layers)) if variable == "bit" else (lambda site: False)


def measure(model: LifeTransformer, ex: Examples | None, params: Params) -> Result:
    th, t0 = params.thresholds["abstraction"], time.perf_counter()
    data = data_of(model, params)
    plan = [(v, s) for v in params.variables for s in sites_for(model, v, params.sites, params.heads)]
    entries: dict[str, list[dict]] = {v: [] for v in params.variables}
    bases: dict[str, dict[str, torch.Tensor]] = {v: {} for v in params.variables}  # the claims' subspaces
    for variable, site in tqdm(plan, desc="abstraction", unit="site", leave=False):
        entry = search_site(data, variable, site, th)
        basis = entry.pop("basis", None)
        if entry.get("failed") is None and basis is not None:
            bases[variable][site.name] = basis
        entries[variable].append(entry)
    out = {}
    for variable, found in entries.items():
        first, by_case, at_answer = located(found, forced_sites(variable, model.cfg.n_layers))
        out[variable] = {"located": first, "by_case": by_case, "only_at_the_answer": at_answer, "sites": found}
    joint = joint_iia(data, out["bit"]["by_case"], bases["bit"]) if "bit" in out else None
    ideal = {"all_heads_aligned": None}
    if params.aligned_heads:
        ideal = all_heads_aligned(model, data.test.ex, data.train.ex, out.get("bit", {}).get("sites", []),
                                  params.thresholds["circuit"]["answer_tv"])
    return Result(variables=out, joint=joint, all_heads_aligned=ideal.pop("all_heads_aligned"), heads=ideal,
                  sites=sorted({s.name for _, s in plan}, key=lambda n: Site.from_name(n)),
                  thresholds=th, seconds=round(time.perf_counter() - t0, 1))


def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    return [figures.map_figure(result.variables, out, provenance())]


def build_parser() -> argparse.ArgumentParser:
    p = parser("Where the algorithm's variables (own, count, case, the governing bit) live, by distributed alignment "
               "search, with the full-vector, control-model and random-init controls.")
    add_samples_arg(p, 256, 16, "held-out boards")
    p.add_argument("--variables", default=",".join(VARIABLES), help="comma-separated, from " + ", ".join(VARIABLES))
    p.add_argument("--sites", default=None, help="comma-separated site names (default: every readable site), e.g. "
                                                 "resid_pre.1@targets,mlp_out.0@board,L1H2@targets")
    return p


def params_from_args(args: argparse.Namespace, ctx: Context, thresholds: dict) -> Params:
    variables = tuple(v.strip() for v in args.variables.split(",") if v.strip())
    unknown = [v for v in variables if v not in VARIABLES]
    if unknown or not variables:
        raise UserError(f"unknown variable(s) {', '.join(unknown) or '(none given)'}: choose from "
                        f"{', '.join(VARIABLES)}")
    sites = None
    if args.sites:
        sites = tuple(s.strip() for s in args.sites.split(",") if s.strip())
        known = {s.name for v in variables for s in sites_for(ctx.model, v, None)}
        bad = [s for s in sites if s not in known]
        if bad:
            raise UserError(f"site(s) {', '.join(bad)} are not readable sites of this model: e.g. "
                            f"{', '.join(sorted(known)[:4])} (python -m interfere abstraction --help)")
    return params_for(ctx.data, thresholds, ctx.seed, samples=args.samples, variables=variables, sites=sites)


def params_for(data: DataConfig, thresholds: dict, seed: int = 0, **given: object) -> Params:
    """The params for a model trained on ``data``: its board densities, its held-out test rules, its validation rules
    kept out of the fits; ``given`` sets the rest."""
    return Params(thresholds=thresholds, density=(data.density_min, data.density_max),
                  heldout=(data.n_heldout, data.heldout_seed), excluded=validation_codes(data), seed=seed, **given)


def validation_codes(data: DataConfig) -> tuple[int, ...]:
    """The validation rules' codes: never drawn as training rules for the fits."""
    return tuple(rule_codes(validation_rules(data)).tolist())


def main(argv: list[str] | None = None) -> dict:
    numbers = run_main(__spec__.name, argv)
    for variable, v in numbers["variables"].items():
        where = "; ".join(f"{case_span(c)} at {s} (rank {r})" for s, (c, r) in cases_by_site(v["by_case"]).items())
        where = where or "no site passes IIA and both controls"
        if v.get("only_at_the_answer"):
            where += f"; {case_span(v['only_at_the_answer'])} {AT_THE_ANSWER}"
        print(f"{variable}: {where}")
    joint = numbers.get("joint") or {}
    if joint.get("iia") is not None:
        print(f"the bit at {', '.join(joint['sites'])} at once: joint IIA {joint['iia']:.4f} "
              f"(random subspaces {joint['iia_random_subspaces']:.4f}, base rate {joint['base_rate']:.4f})")
    return numbers


if __name__ == "__main__":
    main()
