"""The methods scored against models written by hand (issue 34): the lookup map finds every variant's routes case by
case (and a lookup head moved to another index, where it was moved), the account its roles, the idealised heads
their templates, and H1-H4 their verdicts; each test fails when a method gets a variant wrong."""

import pytest
import torch

from interfere.ca.rules import BIT_NAMES
from interfere.data.stream import random_boards
from interfere.explore import circuit
from interfere.explore.account import routes
from interfere.explore.account.truth import route_key, score
from interfere.explore.analysis import jsonable
from interfere.explore.common import examples_of
from interfere.model.handmade import Heads, build, ground_truth
from interfere.thresholds import load_thresholds

TH = load_thresholds()


def covering(model, seed: int = 92):
    """Five boards at densities 0.08-0.95 whose cells cover every one of the 18 cases (at least 6 cells each)."""
    g = torch.Generator().manual_seed(seed)
    boards = torch.cat([random_boards(1, 8, 8, d, d, g) for d in (0.08, 0.3, 0.55, 0.8, 0.95)])
    return examples_of(model, torch.rand(len(boards), 18, generator=g) < 0.5, boards)


@pytest.mark.parametrize("variant, heads", [("attention", Heads(lookup=3, copy=1)), ("board", Heads()),
                                            ("targets", Heads(count=2, own=0, rules=3)), ("split", Heads()),
                                            ("late", Heads())])
def test_the_lookup_map_recovers_every_case_of_every_variant(variant, heads):
    """The routes the map finds are the ones built, case by case; a lookup head moved to another index is found
    there (attention: L1H3); a lookup in the read-out itself (late) is named, not assumed away."""
    model = build(variant, heads)
    flips = routes.flip_map(model, covering(model))
    found = routes.routes(routes.summarise(flips), 2, TH["circuit"])
    truth = ground_truth(variant, heads)["routes"]
    assert {c: route_key(found[c]) for c in BIT_NAMES} == {c: route_key(truth[c]) for c in BIT_NAMES}
    assert all(found[c]["follow"] == 1.0 for c in BIT_NAMES)
    if variant == "attention":
        assert {found[c]["lookup"] for c in BIT_NAMES} == {"L1H3@targets"}


def test_without_selectivity_the_map_would_name_the_raw_rule_reader():
    """What makes the lookup the lookup: the layer-0 head that brings every rule bit to the board carries each flip
    too, but moves as much at every cell of the state; a map that skipped selectivity would name it."""
    model = build("board")
    summary = routes.summarise(routes.flip_map(model, covering(model)))
    careless = routes.routes(summary, 2, {**TH["circuit"], "lookup_selectivity": float("-inf")})
    assert {careless[c]["lookup"] for c in BIT_NAMES} == {"L0H2@board"}
    assert max(summary[c]["slots"]["L0H2@board"]["selectivity"] for c in BIT_NAMES) < 0.05


def test_the_account_on_the_split_variant_is_the_one_built():
    """Roles, routes and idealised heads as built; the copy head passes its answer-carrying control (it relays the
    answer MLP0 made at the board) and the count head does not."""
    model = build("split")
    ex = examples_of(model, *_rules_and_boards(32, 3))
    result = jsonable(circuit.measure(model, ex, circuit.Params(thresholds=TH, samples=32, donors_per_rule=12,
                                                                map_boards=8, reference_boards=24)))
    found = score(ground_truth("split"), result)
    assert found["routes"]["mismatches"] == [] and found["roles"]["mismatches"] == []
    assert result["roles"]["L1H0@targets"]["control"]["passes"]
    assert not result["roles"]["L0H0@targets"]["control"]["passes"]
    assert result["idealised"]["all_named"] == 1.0 and result["verdict"] == "supported"
    assert {h["template"] for h in result["idealised"]["heads"].values()} >= {"governing token", "own cell"}


def _rules_and_boards(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 18, generator=g) < 0.5, random_boards(n, 8, 8, 0.1, 0.9, g)


def test_h1_to_h4_come_out_as_built():
    """The split model has a head that averages the 3x3 block (H1), the count and the next state written linearly
    (H2), rule tokens it reads causally (H3), and layers that gather then classify (H4): all four supported."""
    from interfere.report_sections import Timer, analyse, hypothesis_params
    from interfere.verdicts import all_verdicts

    model = build("split")
    ex = examples_of(model, *_rules_and_boards(36, 4))
    samples = {"h1": 16, "h2": 24, "h3": 36, "lens": 32, "layers": 16}
    run = jsonable(analyse(model, ex, hypothesis_params(samples, TH, 0), Timer(), "test"))
    verdicts = all_verdicts([run], TH)
    assert {h: v.verdict for h, v in verdicts.items()} == {h: "supported" for h in ("H1", "H2", "H3", "H4")}, verdicts
    assert "aggregating head L0H0" in verdicts["H1"].per_seed[0]  # the count head, where it was built
