"""The circuit analysis (issue 12): constructed cases where the truth is known, and the commands end to end."""

import json

import pytest
import torch

from interfere import universality
from interfere.data.layout import SequenceLayout
from interfere.data.stream import DataConfig
from interfere.explore import circuit
from interfere.explore.common import Context
from interfere.explore.components import (
    CellVariable,
    Component,
    accuracy,
    all_components,
    conditional_means,
    importance,
    mean_ablation,
    mean_relative_pattern,
    minimal_circuit,
    parse_component,
    reference_outputs,
)
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint


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


def test_minimal_circuit_search_leaves_out_a_planted_dead_component(tiny_run, tmp_path):
    dead = Component(0, 0)
    ctx, ex, means = _with_dead_component(tiny_run, tmp_path, dead)
    clean = accuracy(ctx.model, ex)
    kept, acc, search = minimal_circuit(ctx.model, ex, means, clean)
    assert dead not in kept and acc >= clean and search.startswith("exhaustive over 8 subsets")
    for c in kept:  # smallest first: dropping any member of the circuit falls below the threshold
        others = [o for o in means if o not in kept or o == c]
        assert accuracy(ctx.model, ex, mean_ablation(means, others)) < clean, c.name


def test_conditional_replacement_of_an_output_that_is_the_variable_is_exact():
    layout = SequenceLayout(4, 4)
    g = torch.Generator().manual_seed(0)
    boards = (torch.rand(8, 4, 4, generator=g) < 0.5).long()
    ex = type("Ex", (), {"boards": boards})()
    table = torch.randn(2, 3, generator=g)
    out = torch.zeros(8, layout.seq_len, 3)
    out[:, layout.board] = table[boards.flatten(1)]  # a component that writes f(own state) at the board
    own = CellVariable("own", "", lambda e: e.boards.flatten(1))
    assert torch.allclose(conditional_means(out, layout.board, own, ex)(ex), out[:, layout.board])
    weights = torch.randn(16, 3, generator=g)
    out[:, layout.board] = boards.flatten(1).float()[:, :, None] * weights.sum(0) + 0.5  # linear in the cell
    lin = CellVariable("lin", "", lambda e: e.boards.flatten(1)[..., None].float(), linear=True)
    assert torch.allclose(conditional_means(out, layout.board, lin, ex)(ex), out[:, layout.board], atol=1e-5)


def test_a_content_free_pattern_is_its_own_idealisation():
    layout = SequenceLayout(5, 5)
    n = layout.n_cells
    rel = torch.softmax(torch.randn(n), 0) * 0.7  # 0.7 on the board by offset, 0.3 on the first key (BOS)
    rows = torch.zeros(n, layout.seq_len)
    for q in range(n):
        r, c = divmod(q, 5)
        for d in range(n):
            rows[q, layout.board.start + ((r + d // 5) % 5) * 5 + (c + d % 5) % 5] = rel[d]
    rows[:, 0] = 0.3
    batch = rows.expand(3, -1, -1)
    assert torch.allclose(mean_relative_pattern(batch, layout.board.start, layout.board, 5, 5), rows, atol=1e-6)


def test_components_parse_and_sort(tiny_run, tmp_path):
    model = _ctx(tiny_run, tmp_path).model
    assert [c.name for c in sorted(all_components(model))] == ["L0H0", "L0H1", "MLP0"]
    assert parse_component("mlp0", model) == Component(0, None)
    with pytest.raises(ValueError, match="unknown component 'L3H0'"):
        parse_component("L3H0", model)


def test_circuit_end_to_end_and_bad_flags(tiny_run, tmp_path, capsys):
    out = tmp_path / "c"
    numbers = circuit.main(["--ckpt", tiny_run["checkpoint"], "--out", str(out), "--samples", "16"])
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["roles"]) == {"L0H0", "L0H1", "MLP0"} and summary["card"][-1].startswith("All roles")
    assert numbers["verdict"] in ("supported", "inconclusive", "not supported")
    assert all((out / f).is_file() for f in summary["files"])
    with pytest.raises(SystemExit):
        circuit.main(["--ckpt", tiny_run["checkpoint"], "--out", str(tmp_path / "x"), "--samples", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --samples must be at least 2, got 1"] and not (tmp_path / "x").exists()


def test_universality_compares_roles_up_to_head_order():
    a = {"roles": {"L0H0": "case", "L0H1": "rule", "MLP0": "next"}, "circuit": ["L0H0", "L0H1", "MLP0"]}
    b = {"roles": {"L0H0": "rule", "L0H1": "case", "MLP0": "next"}, "circuit": ["L0H0", "L0H1", "MLP0"]}
    c = {"roles": {"L0H0": "rule", "L0H1": "own", "MLP0": "next"}, "circuit": ["L0H0", "MLP0"]}
    assert universality.compare({0: a, 1: b}).startswith("the same roles in every seed (circuit size 3)")
    verdict = universality.compare({0: a, 1: b, 2: c})
    assert verdict.startswith("different algorithms (circuit sizes 2-3)") and "seed 2 L0 heads" in verdict


def test_universality_end_to_end_on_two_tiny_seeds(tmp_path):
    result = universality.main(["--config-name", "exp/life_smoke", "--seeds", "0", "1", "--ckpt-dir",
                                str(tmp_path / "ck"), "--samples", "8", "--out", str(tmp_path / "u")])
    assert set(result["results"]) == {0, 1} and (tmp_path / "u/universality.md").is_file()
    assert (tmp_path / "ck/universality_life_smoke_seed1/latest.pt").is_file()


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


def test_no_snapshots_when_disabled_and_a_clear_error(tiny_run, capsys, tmp_path):
    from pathlib import Path

    from interfere.explore import dynamics

    assert not (Path(tiny_run["checkpoint"]).parent / "snapshots").exists()
    with pytest.raises(SystemExit):
        dynamics.main(["--ckpt", tiny_run["checkpoint"], "--out", str(tmp_path / "x")])
    assert "has no snapshots" in capsys.readouterr().err
