"""Strict interchange-intervention training (issue 41): the counterfactuals it trains to, its metrics against models
whose algorithm is known (a hand-made model passes its own algorithm's and fails another's), and a run that carries
the ground truth."""

import pytest
import torch

from interfere.config import compose, sections
from interfere.data.stream import random_boards
from interfere.model.handmade import Heads, build
from interfere.train import siit


def compose_data():
    return sections(compose("exp/cpu_demo"))[0]


def cells(model, n: int, seed: int) -> siit.Cells:
    g = torch.Generator().manual_seed(seed)
    return siit.Cells.of(model, torch.rand(n, 18, generator=g) < 0.5, random_boards(n, 8, 8, 0.1, 0.9, g))


def test_the_counterfactual_is_the_sources_bit_where_both_cells_are_the_nodes_and_the_base_answer_elsewhere():
    node = siit.Node(0, None, "board", ((3, siit.BIT), (12, siit.BIT)))
    rules = torch.zeros(2, 18, dtype=torch.bool)
    rules[1, 3] = True  # the source's rule: S3 on
    base = siit.Cells(None, torch.tensor([[3, 12, 5]]), torch.tensor([[0, 0, 1]]), rules[:1])
    source = siit.Cells(None, torch.tensor([[3, 7, 12]]), torch.tensor([[1, 1, 0]]), rules[1:])
    label, counted = siit.counterfactual(node, base, source)
    assert label[0, 0] == 1 and counted[0, 0]  # the source's S3 bit
    assert not counted[0, 1]  # the source cell (case B... 7: S7) is not the node's: no counterfactual defined
    assert label[0, 2] == 1 and counted[0, 2]  # a base cell the node does not serve keeps its next state
    case_node = siit.Node(0, None, "targets", ((5, siit.CASE), (3, siit.CASE)))
    base = siit.Cells(None, torch.tensor([[5]]), torch.tensor([[0]]), rules[1:])  # base rule: S3 on, S5 off
    source = siit.Cells(None, torch.tensor([[3]]), torch.tensor([[0]]), rules[:1])
    label, counted = siit.counterfactual(case_node, base, source)
    assert label[0, 0] == 1 and counted[0, 0]  # the base rule's bit of the source cell's case


def test_a_hand_made_model_passes_its_own_algorithms_interchanges_and_fails_another():
    split = build("split")
    nodes, outside = siit.circuit("split", Heads(), 4)
    assert [n.name for n in outside] == ["L0H3@board", "L0H3@targets", "L1H1@targets", "L1H3@targets"]
    got = siit.metrics(split, nodes, outside, cells(split, 24, 1), cells(split, 24, 2))
    assert got["siit_iia"] == 1.0 and got["siit_strict"] == 1.0, got
    attention = build("attention")  # computes every case by the lookup head: MLP0 at the board holds no bit
    got = siit.metrics(attention, nodes, outside, cells(attention, 24, 1), cells(attention, 24, 2))
    assert got["siit_iia_per_node"]["MLP0@board"] < 0.1 and got["siit_iia_per_node"]["L1H2@targets"] == 1.0, got


def test_by_need_the_strict_loss_draws_the_component_that_fell_short_at_the_last_validation():
    nodes, outside = siit.circuit("split", Heads(), 4)
    run = siit.SiitRun("split", nodes, outside, torch.Generator().manual_seed(0), by_need=True)
    assert run.need is None  # uniform until the first validation
    attention = build("attention")  # split's outside components: the ones it leaves idle, some of them used here
    per = run.validation(attention, compose_data(), seed=0, boards=24)["siit_strict_per_component"]
    assert run.need.tolist() == pytest.approx([1 - per[o.name] + siit.NEED_FLOOR for o in outside])
    run.need = torch.tensor([0.01, 0.01, 0.9, 0.01])
    g = torch.Generator().manual_seed(1)
    drawn = [siit.draw(outside, g, run.need).name for _ in range(400)]
    assert drawn.count(outside[2].name) > 300 and len(set(drawn)) > 1  # mostly the short one, never only it
    uniform = [siit.draw(outside, g).name for _ in range(400)]
    assert max(uniform.count(o.name) for o in outside) < 140


def test_by_need_the_interchange_loss_draws_the_node_that_fell_short_at_the_last_validation():
    nodes, outside = siit.circuit("split", Heads(), 4)
    run = siit.SiitRun("split", nodes, outside, torch.Generator().manual_seed(0), nodes_by_need=True)
    assert run.node_need is None and run.need is None  # uniform until the first validation; strict stays uniform
    attention = build("attention")  # every node of split but the lookup head falls short here
    iia = run.validation(attention, compose_data(), seed=0, boards=24)["siit_iia_per_node"]
    assert run.need is None
    assert run.node_need.tolist() == pytest.approx([1 - iia[n.name] + siit.NEED_FLOOR for n in nodes])
    run.node_need = torch.tensor([0.01, 0.01, 0.01, 0.9])
    g = torch.Generator().manual_seed(1)
    drawn = [siit.draw(nodes, g, run.node_need).name for _ in range(400)]
    assert drawn.count(nodes[3].name) > 300 and len(set(drawn)) > 1


def test_a_run_asked_to_draw_nodes_by_need_hands_their_shortfalls_to_the_losses(monkeypatch):
    from interfere.config import layout_of
    from interfere.data.stream import BatchStream
    from interfere.model.life_model import LifeTransformer

    def run_of(*overrides: str):
        data, model_cfg, tc = sections(compose("exp/life_smoke", ["model.n_layers=2", "model.n_heads=4",
                                                                  "train.siit=split", *overrides]))
        model = LifeTransformer(model_cfg, layout_of(data))
        return siit.SiitRun.of(tc, model, 0, None), model, data, tc

    assert not run_of()[0].nodes_by_need
    run, model, data, tc = run_of("train.siit_iit_sampling=need")
    assert run.nodes_by_need and not run.by_need
    run.node_need, seen = torch.tensor([0.01, 0.01, 0.01, 0.9]), {}

    def losses(*args: object) -> tuple[torch.Tensor, torch.Tensor]:
        seen["args"] = args
        return torch.zeros((), requires_grad=True), torch.zeros((), requires_grad=True)
    monkeypatch.setattr(siit, "losses", losses)
    batch = BatchStream(data, seed=0).next()
    run.backward(model, batch, batch, tc)
    assert seen["args"][-1] is run.node_need and seen["args"][-2] is run.need


def test_a_siit_run_trains_every_loss_and_its_checkpoint_carries_the_algorithm(smoke_cfg, tmp_path):
    from interfere.model.checkpoint import load_checkpoint
    from interfere.train.loop import train

    cfg = smoke_cfg(tmp_path, "train.run_id=siit", "train.steps=2", "train.eval_every=2", "train.final_eval=false",
                    "train.siit=split", "data.height=6", "data.width=6", "model.n_layers=2", "model.n_heads=4",
                    "train.eval_boards=16")
    result = train(cfg)
    ckpt = load_checkpoint(ckpt=result["checkpoint"])
    assert ckpt["ground_truth"]["trained_by"] == "SIIT" and ckpt["ground_truth"]["routes"]["B5"]["lookup"] == \
        "L1H2@targets"
    assert set(ckpt["metrics"]["siit_iia_per_node"]) == {"MLP0@board", "L1H0@targets", "MLP0@targets", "L1H2@targets"}
    # interrupted after step 1 and resumed: the interchange and strict draws go on as in the straight run
    args = ("train.run_id=siit_resumed", "train.steps=2", "train.eval_every=2", "train.final_eval=false",
            "train.siit=split", "data.height=6", "data.width=6", "model.n_layers=2", "model.n_heads=4",
            "train.eval_boards=16", "train.save_every=1")
    train(smoke_cfg(tmp_path, *args, "train.stop_at=1"))
    resumed = load_checkpoint(ckpt=train(smoke_cfg(tmp_path, *args, "train.resume=true"))["checkpoint"])
    for key, value in ckpt["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    with pytest.raises(Exception, match="two-layer algorithm"):
        train(smoke_cfg(tmp_path, "train.run_id=siit1", "train.steps=1", "train.siit=split", "model.n_heads=4"))
