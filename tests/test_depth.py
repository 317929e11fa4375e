"""H4 at any depth (issue 35): the controls are what they say, and H4 tells a model that gathers then classifies from
its random initialisation and from itself with its late layers never trained."""

import pytest
import torch

from interfere.commands import depth
from interfere.data.stream import random_boards
from interfere.explore import registry
from interfere.model.handmade import build
from interfere.thresholds import load_thresholds

SAMPLES = {a.key: min(24, a.quick) for a in registry.ANALYSES}  # the registry's --quick counts, on the 24 boards drawn


def test_the_controls_keep_the_early_layers_and_replace_the_late_ones():
    model = build("split")
    fresh, late = depth.controls(model).values()
    for layer, keeps in ((0, True), (1, False)):
        same = all(torch.equal(a, b) for a, b in zip(model.blocks[layer].state_dict().values(),
                                                       late.blocks[layer].state_dict().values()))
        assert same == keeps
        assert all(torch.equal(a, b) for a, b in zip(fresh.blocks[1].state_dict().values(),
                                                     late.blocks[1].state_dict().values()))
    assert not torch.equal(fresh.blocks[0].attn.W_Q, model.blocks[0].attn.W_Q)
    # a size-free model's window bias lives outside its blocks: the late layers' slices are the fresh ones too
    assert torch.equal(late.W_rel[0], model.W_rel[0]) and torch.equal(late.W_rel[1], fresh.W_rel[1])
    assert not torch.equal(late.W_rel[1], model.W_rel[1])


def test_h4_separates_a_model_that_gathers_then_classifies_from_its_controls():
    model, th = build("split"), load_thresholds()
    g = torch.Generator().manual_seed(8)
    rules, boards = torch.rand(24, 18, generator=g) < 0.5, random_boards(24, 8, 8, 0.1, 0.9, g)
    verdicts = {name: depth.profile(m, rules, boards, th, SAMPLES)["verdict"]
                for name, m in {"built": model, **depth.controls(model)}.items()}
    assert verdicts == {"built": "supported", "random init": "not supported",
                        "layers 1-1 never trained": "not supported"}, verdicts


def test_a_model_of_another_board_size_too_few_boards_or_a_model_twice_are_one_line_errors(tiny_run, tmp_path, capsys):
    """The tiny run plays 5x5 boards, the hand-made model 8x8: the same boards cannot feed both; a model given as its
    own --compare would overwrite its own row."""
    from interfere.commands.handmade import checkpoint
    from interfere.model.checkpoint import atomic_save
    from interfere.model.handmade import Heads

    hand = tmp_path / "hand.pt"
    atomic_save(checkpoint("split", Heads()), hand)
    with pytest.raises(SystemExit):
        depth.main(["--ckpt", str(hand), "--compare", tiny_run["checkpoint"], "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs 5x5 boards, the model 8x8" in err[0], err
    for flags, message in ((["--samples", "2"], "--samples must be at least 8, got 2"),
                           (["--compare", str(hand)], "is a model already drawn")):
        with pytest.raises(SystemExit):
            depth.main(["--ckpt", str(hand), *flags, "--out", str(tmp_path / "e")])
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_h4_is_not_supported_where_the_built_model_classifies_in_layer_0():
    """`targets` looks every case up with MLP0 at the targets: the next state is readable after layer 0 and no later
    layer is left to classify, so H4 (later layers classify) must come out not supported, as built."""
    g = torch.Generator().manual_seed(8)
    rules, boards = torch.rand(24, 18, generator=g) < 0.5, random_boards(24, 8, 8, 0.1, 0.9, g)
    found = depth.profile(build("targets"), rules, boards, load_thresholds(), SAMPLES)
    assert found["verdict"] == "not supported" and found["next_auc"][0] == pytest.approx(1.0), found["why"]
