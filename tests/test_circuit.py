"""The circuit analysis (issues 12, 24): constructed cases where the truth is known, and the commands end to end."""

import json

import pytest
import torch

from interfere.ca.rules import BIT_NAMES
from interfere.config import compose, layout_of, sections
from interfere.data.layout import SequenceLayout
from interfere.data.stream import DataConfig, random_boards
from interfere.explore import batched, circuit
from interfere.explore.account import neurons
from interfere.explore.account.idealised import Weights, key_kinds, measured_weights, query_cases, template_rows
from interfere.explore.account.interchange import CELL_ROLES, Interchange, control_of, draw_donors, role_key
from interfere.explore.account.slots import unread_slots
from interfere.explore.analysis import whole
from interfere.explore.common import Context, examples_of
from interfere.explore.components import (
    Component,
    accuracy,
    all_components,
    importance,
    mean_ablation,
    minimal_circuit,
    parse_component,
    reference_outputs,
)
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint
from interfere.model.life_model import LifeTransformer


def _ctx(tiny_run, tmp_path):
    ckpt = load_checkpoint(ckpt=tiny_run["checkpoint"])
    model = model_from_checkpoint(ckpt)
    return Context(model=model, ckpt=ckpt, layout=model.layout, data=DataConfig(**ckpt["config"]["data"]),
                   out=tmp_path, seed=0, rule=None, command="test")


def _silence(model, component: Component) -> None:
    """Make a component do nothing: its output projection is zero."""
    with torch.no_grad():
        if component.head is None:
            model.blocks[component.layer].mlp.W_out.zero_()
            model.blocks[component.layer].mlp.b_out.zero_()
        else:
            model.blocks[component.layer].attn.W_O[component.head].zero_()


def _with_dead_component(tiny_run, tmp_path, dead: Component):
    """The tiny model with ``dead`` silenced, 32 examples, and every component's mean output."""
    ctx = _ctx(tiny_run, tmp_path)
    _silence(ctx.model, dead)
    ex, ref = ctx.examples(32), ctx.examples(32, seed_offset=5)
    means = {c: o.mean(0) for c, o in reference_outputs(ctx.model, ref.tokens, all_components(ctx.model)).items()}
    return ctx, ex, means


def test_ablating_a_component_that_does_nothing_changes_nothing(tiny_run, tmp_path):
    dead = Component(0, 1)
    ctx, ex, means = _with_dead_component(tiny_run, tmp_path, dead)
    assert importance(ctx.model, ex, means)[dead] == accuracy(ctx.model, ex)


def test_ablation_bites_where_the_built_model_computes_and_nowhere_else():
    """The hand-made split model: mean-ablating a head it never uses (L0H3, zero weights) keeps every cell, ablating
    the MLP that computes most cases' bit (MLP0) or the count head (L0H0) loses many: the silenced head of the test
    above is found dead because it is, not because ablation does nothing."""
    from interfere.model.handmade import build

    model = build("split")
    g = torch.Generator().manual_seed(3)
    ex = examples_of(model, torch.rand(24, 18, generator=g) < 0.5, random_boards(24, 8, 8, 0.1, 0.9, g))
    ref = examples_of(model, torch.rand(24, 18, generator=g) < 0.5, random_boards(24, 8, 8, 0.1, 0.9, g))
    means = {c: o.mean(0) for c, o in reference_outputs(model, ref.tokens, all_components(model)).items()}
    found = importance(model, ex, means)
    assert accuracy(model, ex) == 1.0 and found[Component(0, 3)] == 1.0
    assert found[Component(0)] < 0.8 and found[Component(0, 0)] < 0.8


def test_minimal_circuit_search_leaves_out_a_planted_dead_component(tiny_run, tmp_path):
    dead = Component(0, 0)
    ctx, ex, means = _with_dead_component(tiny_run, tmp_path, dead)
    clean = accuracy(ctx.model, ex)
    kept, acc, search = minimal_circuit(ctx.model, ex, means, clean)
    assert dead not in kept and acc >= clean and search.startswith("exhaustive over 8 subsets")
    for c in kept:  # smallest first: dropping any member of the circuit falls below the threshold
        others = [o for o in means if o not in kept or o == c]
        assert accuracy(ctx.model, ex, mean_ablation(means, others)) < clean, c.name


def test_hooks_in_a_later_block_start_the_forward_there_with_the_same_logits():
    data, model_cfg, _ = sections(compose("exp/life_smoke", ["model.n_layers=2"]))
    torch.manual_seed(0)
    model = LifeTransformer(model_cfg, layout_of(data))  # random init: the logits are what is compared
    g = torch.Generator().manual_seed(0)
    rules = torch.rand(32, 18, generator=g) < 0.5
    ex = examples_of(model, rules, random_boards(32, data.height, data.width, 0.2, 0.8, g))
    comps = all_components(model)
    means = {c: o.mean(0) for c, o in reference_outputs(model, ex.tokens, comps).items()}
    later, early = mean_ablation(means, [Component(1, 0), Component(1)]), mean_ablation(means, [Component(0, 1)])
    assert (batched.first_hooked_block(later), batched.first_hooked_block(early)) == (1, 0)
    resid = ex.act("blocks.1.hook_resid_pre", whole("resid"))
    full = batched.target_logits(model, ex.tokens, later)
    assert torch.allclose(batched.target_logits(model, ex.tokens, later, (1, resid)), full, atol=1e-5)
    # the residual given is the one used (a wrong one gives other logits), and accuracy uses it
    assert not torch.allclose(batched.target_logits(model, ex.tokens, later, (1, torch.zeros_like(resid))), full)
    block0_runs = []
    handle = model.blocks[0].register_forward_hook(lambda *_: block0_runs.append(1))
    try:
        acc, runs_for_resid = accuracy(model, ex, later), len(block0_runs)  # the residual is cached already
        accuracy(model, ex, early)
    finally:
        handle.remove()
    assert runs_for_resid == 0 and len(block0_runs) > 0
    pred = full[:, : model.layout.n_cells].argmax(-1)  # the same accuracy, up to a cell at a near-tie
    assert abs(acc - float((pred == ex.next_boards.flatten(1)).float().mean())) <= 1 / pred.numel()


def test_donors_agree_on_the_key_and_uncovered_cells_are_marked():
    pool = torch.tensor([3, 1, 3, 7, 1, 3])
    query = torch.tensor([1, 3, 5, 7, 3, 1])
    index, covered = draw_donors(query, pool, torch.Generator().manual_seed(0))
    assert covered.tolist() == [True, True, False, True, True, True]
    assert torch.equal(pool[index][covered], query[covered])


def _examples(layout, n, seed, rules=None):
    g = torch.Generator().manual_seed(seed)
    boards = (torch.rand(n, layout.height, layout.width, generator=g) < 0.5).long()
    rules = rules if rules is not None else torch.rand(n, 18, generator=g) < 0.5
    from interfere.ca.simulate import neighbour_counts, step
    from interfere.explore.analysis import Examples

    return Examples(rules, boards, step(boards, rules), neighbour_counts(boards), layout.encode(rules, boards).tokens)


def test_interchange_of_an_output_that_is_a_function_of_the_case():
    """A component whose board output is table[case]: the 'case' role gives back exactly that output at
    every cell; the coarser 'own' does not; 'none' is the mean."""
    layout = SequenceLayout(5, 5)
    donors, ex = _examples(layout, 64, 0), _examples(layout, 8, 1)
    table = torch.randn(18, 3, generator=torch.Generator().manual_seed(2))
    c = Component(0, 0)
    out = torch.zeros(len(donors), layout.seq_len, 3)
    out[:, layout.board] = table[role_key("case", donors, "board", layout)]
    swap = Interchange(type("M", (), {"layout": layout})(), donors, {c: out}, seed=0)
    truth = table[role_key("case", ex, "board", layout)]
    case = swap.replacement(c, "board", "case", ex)
    assert case.covered.all() and torch.allclose(case.values, truth)
    own = swap.replacement(c, "board", "own", ex)  # a donor of the same own state: any of its state's nine cases
    own_state = role_key("own", ex, "board", layout).flatten()
    rows = own.values.flatten(0, 1)
    for state in (0, 1):
        allowed = table[9 * state: 9 * (state + 1)]  # the case key is own * 9 + count: nine rows per state
        at = rows[own_state == state]
        assert ((at[:, None, :] - allowed[None]).abs().amax(-1) < 1e-6).any(-1).all(), state
    assert not torch.allclose(own.values, truth)  # and not always the cell's own case
    none = swap.replacement(c, "board", "none", ex)
    assert torch.allclose(none.values, out[:, layout.board].mean(0).expand_as(truth))
    mean = swap.conditional_mean(c, "board", "case", ex)
    assert mean.covered.all() and torch.allclose(mean.values, truth, atol=1e-6)


def test_roles_never_read_the_answer():
    """Keys are functions of the board at t and the rule only: scrambling the next state changes none."""
    layout = SequenceLayout(5, 5)
    ex = _examples(layout, 6, 3)
    scrambled = type(ex)(ex.rules, ex.boards, 1 - ex.next_boards, ex.counts, ex.tokens)
    for role in CELL_ROLES[1:]:
        for group in ("board", "targets"):
            assert torch.equal(role_key(role, ex, group, layout), role_key(role, scrambled, group, layout)), role
    # the scramble is visible to a key that reads the answer (the control's): the roles above would have seen it
    assert not torch.equal(role_key("own+next", ex, "board", layout), role_key("own+next", scrambled, "board", layout))


def test_physics_donors_sit_at_the_same_position_with_the_same_rule():
    layout = SequenceLayout(5, 5)
    rules = torch.rand(4, 18, generator=torch.Generator().manual_seed(4)) < 0.5
    donors, ex = _examples(layout, 16, 5, rules.repeat(4, 1)), _examples(layout, 4, 6, rules)
    c = Component(0, 1)
    out = torch.randn(len(donors), layout.seq_len, 2)
    swap = Interchange(type("M", (), {"layout": layout})(), donors, {c: out}, seed=1)
    rep = swap.replacement(c, "physics", "rule", ex)
    phys = layout.physics_index
    ok = [any(torch.equal(rep.values[n, j], out[m, phys[j]]) and torch.equal(donors.rules[m], ex.rules[n])
              for m in range(len(donors))) for n in range(len(ex)) for j in range(len(phys))]
    assert rep.covered.all() and all(ok)


def test_templates_are_the_written_patterns():
    """Own cell, rule tokens and the governing token (case-gated) as written; every row sums to one over what the
    query may see."""
    layout = SequenceLayout(5, 5)
    ex = _examples(layout, 3, 7)
    kinds, case = key_kinds(type("M", (), {"layout": layout})(), ex, "targets"), query_cases(ex)
    allowed = layout.attention_mask()[layout.targets[0]].float()
    table = torch.rand(18, 62, generator=torch.Generator().manual_seed(0))
    weights = Weights(table, table.mean(0), torch.ones(18, dtype=torch.bool))
    own = template_rows("own cell", weights, kinds, case, allowed)
    assert torch.equal(own.argmax(-1), (layout.board.start + torch.arange(25)).expand(3, -1))
    rule = template_rows("rule tokens", weights, kinds, case, allowed)
    assert torch.allclose(rule[..., layout.rule], torch.full((3, 25, 18), 1 / 18))
    gated = template_rows("governing token", weights, kinds, case, allowed, gated=list(range(18)))
    assert torch.equal(gated.argmax(-1), layout.rule.start + case) and torch.allclose(gated.max(-1).values,
                                                                                      torch.ones(3, 25))
    for rows in (own, rule, gated):
        assert torch.allclose(rows.sum(-1), torch.ones(3, 25)) and (rows[allowed.expand_as(rows) == 0] == 0).all()
    unseen = Weights(table, table.mean(0), torch.arange(18) != int(case[0, 0]))  # a case the reference never saw
    left = template_rows("case-conditional", unseen, kinds, case, allowed)
    assert torch.isnan(left[case == case[0, 0]]).all() and not torch.isnan(left[case != case[0, 0]]).any()


def test_a_measured_template_weighs_a_kind_over_the_keys_a_query_can_see():
    """A head that puts 0.9 on the query's own target position and 0.1 on its own board cell gets that template back.
    A target query sees one of the 25 target positions, all of one kind: averaged over hidden keys too, the own
    target's weight was measured at 0.9/25 and the template gave the board cell most of the attention."""
    layout = SequenceLayout(5, 5)
    ex = _examples(layout, 3, 7)
    kinds, case = key_kinds(type("M", (), {"layout": layout})(), ex, "targets"), query_cases(ex)
    allowed = layout.attention_mask()[layout.targets[0]].float()
    cells = torch.arange(25)
    rows = torch.zeros(3, 25, layout.seq_len)
    rows[:, cells, layout.targets[0].start + cells] = 0.9
    rows[:, cells, layout.board.start + cells] = 0.1
    template = template_rows("case-conditional", measured_weights(rows, kinds, case, allowed), kinds, case, allowed)
    assert torch.allclose(template, rows, atol=1e-6)


def test_the_answer_carrying_control_shares_the_answer_never_the_role():
    assert control_of("case+rule") == "case+next" and control_of("count9") == "next" and control_of("none") is None
    layout = SequenceLayout(5, 5)
    ex = _examples(layout, 4, 8)
    key = role_key(control_of("case+rule"), ex, "board", layout)
    flipped = type(ex)(ex.rules, ex.boards, 1 - ex.next_boards, ex.counts, ex.tokens)
    assert not torch.equal(key, role_key(control_of("case+rule"), flipped, "board", layout))


def test_a_last_layer_slot_away_from_the_targets_is_unread_by_construction(tiny_run, tmp_path):
    model = _ctx(tiny_run, tmp_path).model  # one layer: only its targets are read
    assert {s.name for s in unread_slots(model)} == {f"{c}@{g}" for c in ("L0H0", "L0H1", "MLP0")
                                                     for g in ("board", "physics")}


def test_lookup_patching_is_the_hooked_models_and_empty_sets_carry_nothing(tiny_run, tmp_path):
    ctx = _ctx(tiny_run, tmp_path)
    ex = ctx.examples(8)
    flips = neurons.collect(ctx.model, ex, seed=0)
    clean = neurons.predictions(ctx.model, flips, flips.clean)
    wrong = (clean == 1 - flips.truth).float().mean().item()
    assert neurons.carry_and_leak(ctx.model, flips, torch.tensor([], dtype=torch.long)) == (wrong, 0.0)
    some = torch.arange(0, flips.clean.shape[-1], 3)
    direct = neurons.carry_and_leak(ctx.model, flips, some)[0]
    hooked = neurons.hooked_predictions(ctx.model, ex, flips, some)
    assert direct == pytest.approx(float((hooked == 1 - flips.truth).float().mean()), abs=1e-6)


def test_components_parse_and_sort(tiny_run, tmp_path):
    model = _ctx(tiny_run, tmp_path).model
    assert [c.name for c in sorted(all_components(model))] == ["L0H0", "L0H1", "MLP0"]
    assert parse_component("mlp0", model) == Component(0, None)
    from interfere.explore.account.slots import Slot, all_slots

    assert all(Slot.from_name(s.name) == s for s in all_slots(model))  # names are parsed back in one place
    with pytest.raises(ValueError, match="not a slot name"):
        Slot.from_name("L0H0@nowhere")
    with pytest.raises(ValueError, match="unknown component 'L3H0'"):
        parse_component("L3H0", model)


def test_circuit_end_to_end_and_bad_flags(tiny_run, tmp_path, capsys):
    out = tmp_path / "c"
    circuit.main(["--ckpt", tiny_run["checkpoint"], "--out", str(out), "--samples", "16"])
    summary = json.loads((out / "summary.json").read_text())
    algorithm = summary["algorithm"]
    read = {(c["component"], c["positions"]) for c in algorithm["components"]}
    assert read == {(c, "targets") for c in ("L0H0", "L0H1", "MLP0")}  # a one-layer model is read at its targets
    assert set(algorithm["unread"]) == {f"{c}@{g}" for c in ("L0H0", "L0H1", "MLP0") for g in ("board", "physics")}
    uses = {(c["component"], c["positions"]): c["uses"] for c in algorithm["components"]}
    assert uses[("MLP0", "targets")] == "computed" and list(uses.values()).count("computed") == 1
    assert set(algorithm["routes"]) == set(BIT_NAMES) and algorithm["readout_neurons"]["component"] == "MLP0"
    assert any(line.startswith("All roles at once") for line in summary["card"])
    assert summary["files"] == ["circuit_map.png", "circuit_importance.png", "circuit_probes.png"]
    assert all((out / f).is_file() for f in summary["files"])
    with pytest.raises(SystemExit):
        circuit.main(["--ckpt", tiny_run["checkpoint"], "--out", str(tmp_path / "x"), "--samples", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --samples must be at least 2, got 1"] and not (tmp_path / "x").exists()


# --- dynamics (issue 13) ---------------------------------------------------------------------
def test_first_reaching_on_synthetic_curves():
    from interfere.explore.dynamics import first_crossing, first_reaching

    steps = [1, 2, 4, 8, 16]
    assert first_reaching(steps, [0.5, 0.6, 0.9, 0.99, 1.0], 0.9) == 8  # monotone: 0.99 is 98% of the way
    assert first_reaching(steps, [0.5, 0.96, 0.6, 0.97, 1.0], 0.9) == 2  # noisy: the first crossing counts
    assert first_reaching(steps, [1.0, 0.8, 0.5, 0.2, 0.0], 0.5) == 4  # a falling measure (e.g. the loss)
    assert first_reaching(steps, [0.3, 0.3, 0.3, 0.3, 0.3], 0.9) is None  # never changes
    assert first_crossing(steps, [0.5, 0.6, 0.7, 0.8, 0.85], 0.9) is None  # never reaches the level
    assert first_crossing(steps, [0.5, 0.6, 0.95, 0.8, 0.99], 0.9) == 4


def test_layer_roles_say_when_each_layer_took_its_role():
    """Layer 0 becomes local by step 4, layer 1 reads the next state by step 16 and never becomes local."""
    from interfere.explore.dynamics import layer_roles

    steps = [1, 2, 4, 8, 16]
    local = [[0.1, 0.1], [0.2, 0.1], [0.8, 0.1], [0.85, 0.1], [0.85, 0.1]]
    readable = [[0.5, 0.5], [0.6, 0.5], [0.7, 0.55], [0.7, 0.6], [0.7, 1.0]]
    measures = [{"neighbour_share": a, "rule_attention": [0.0, 0.5], "next_auc_by_layer": b}
                for a, b in zip(local, readable)]
    rows = layer_roles(steps, measures, 0.9)
    assert [(r["locality_forms"], r["next_auc_forms"], r["rule_attention_forms"]) for r in rows] == [
        (4, 4, None), (None, 16, None)]
    assert [r["next_auc"] for r in rows] == [0.7, 1.0] and [r["locality"] for r in rows] == [0.85, 0.1]


def test_snapshots_planned_written_loadable_and_resumed_without_repeats(tmp_path, smoke_cfg):
    from interfere.explore import dynamics
    from interfere.model.checkpoint import list_snapshots
    from interfere.train.loop import train
    from interfere.train.optim import snapshot_steps

    common = ["train.run_id=s", "train.steps=30", "train.snapshots=4", "train.final_eval=false"]
    train(smoke_cfg(tmp_path, "train.stop_at=9", *common))
    train(smoke_cfg(tmp_path, "train.resume=true", *common))
    snaps = list_snapshots(tmp_path / "checkpoints/s")
    assert [int(p.stem.split("_")[1]) for p in snaps] == snapshot_steps(30, 4) == [1, 3, 10, 30]
    for p in snaps:
        assert set(torch.load(p, weights_only=True)) >= {"model", "step", "config"}
    log = [json.loads(line) for line in open(tmp_path / "runs/s/log.jsonl")]
    assert sorted(r["step"] for r in log if "snapshot" in r) == [1, 3, 10, 30]  # none twice
    assert torch.load(tmp_path / "checkpoints/s/latest.pt", weights_only=True)["step"] == 30
    numbers = dynamics.main(["--ckpt", str(tmp_path / "checkpoints/s/latest.pt"), "--samples", "16",
                             "--out", str(tmp_path / "d")])
    assert numbers["steps"] == [1, 3, 10, 30] and len(numbers["measures"]) == 4
    assert set(numbers["accuracy_first_crosses"]) == {"50%", "90%", "99%", "99.9%"}
    assert (tmp_path / "d/dynamics_what_forms_when.png").is_file()
    assert [r["layer"] for r in numbers["by_layer"]] == [0]  # one row per layer of the smoke model


def test_no_snapshots_when_disabled_and_a_clear_error(tiny_run, capsys, tmp_path):
    from pathlib import Path

    from interfere.explore import dynamics

    assert not (Path(tiny_run["checkpoint"]).parent / "snapshots").exists()
    with pytest.raises(SystemExit):
        dynamics.main(["--ckpt", tiny_run["checkpoint"], "--out", str(tmp_path / "x")])
    assert "has no snapshots" in capsys.readouterr().err


def test_the_map_figure_draws_a_case_without_cells(tmp_path):
    """A case with no cell on the map's boards is 'unmeasured' (no claim): the figure names it instead of raising
    (it raised KeyError on 'unmeasured' before, about one map in ten with 8 boards)."""
    from interfere.explore.account import routes
    from interfere.explore.account.figures import map_figure
    from interfere.explore.common import examples_of
    from interfere.model.handmade import build
    from interfere.thresholds import load_thresholds

    model = build("split")
    boards = torch.zeros(2, 8, 8, dtype=torch.long)  # all dead: every cell is B0, the other 17 cases have no cell
    summary = routes.summarise(routes.flip_map(model, examples_of(model, torch.ones(2, 18, dtype=torch.bool), boards)))
    found = routes.routes_of(summary, 2, load_thresholds()["circuit"])
    assert found["S3"].enters == routes.UNMEASURED and found["B0"].enters == "board"
    assert map_figure(summary, found, tmp_path, "test").is_file()


def test_ground_truth_names_one_head_that_is_both_lookup_and_copy_where_only_one_part_is_used():
    """Heads.check lets the lookup and the copy share an index when a variant uses only one of them: the truth keeps
    the used part's role (the copy's default entry overwrote the lookup's before)."""
    from interfere.model.handmade import Heads, ground_truth

    for variant, heads in (("attention", Heads(lookup=1, copy=1)), ("board", Heads(lookup=0, copy=0))):
        roles = {c["component"]: c["uses"] for c in ground_truth(variant, heads)["components"]
                 if c["positions"] == "targets" and c["component"].startswith("L1")}
        assert roles == {f"L1H{h}": "case+rule" if h == 1 - (variant == "board") else "none" for h in range(4)}, roles
