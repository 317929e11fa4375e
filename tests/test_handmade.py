"""Hand-made models (issue 34): exact on every rule and board size, and saved as checkpoints every command reads
(the methods scored against their ground truth: tests/test_methods_vs_truth.py)."""

import pytest
import torch

from interfere.ca.patterns import place
from interfere.ca.rules import NAMED_RULES, get_rule
from interfere.ca.simulate import rollout, step
from interfere.commands import handmade as handmade_cli
from interfere.data.stream import random_boards
from interfere.model.checkpoint import find_checkpoint, load_checkpoint, model_from_checkpoint
from interfere.model.handmade import VARIANTS, build, ground_truth
from interfere.model.inference import rollout as model_rollout
from interfere.model.inference import target_logits


def predicted(model, rules, boards):
    return target_logits(model, model.encode_prompt(rules, boards)).argmax(-1).view_as(boards)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_is_exact_on_random_rules_at_8_16_and_64(variant):
    model, g = build(variant), torch.Generator().manual_seed(1)
    for side, n in ((8, 64), (16, 16), (64, 2)):
        with model.sized(side, side):
            rules = torch.rand(n, 18, generator=g) < 0.5
            boards = random_boards(n, side, side, 0.1, 0.9, g)
            assert torch.equal(predicted(model, rules, boards), step(boards, rules)), (variant, side)


GLIDER_STEPS = 64  # the glider crosses the 16x16 torus once: every offset of the window wraps


def test_every_variant_runs_the_named_rules_and_the_glider_exactly():
    g = torch.Generator().manual_seed(2)
    named = torch.stack([get_rule(name).bits for name in NAMED_RULES])
    boards = random_boards(len(named), 8, 8, 0.1, 0.9, g)
    glider = place("glider", 16, 16, 2, 2)
    conway = get_rule("B3/S23")
    for variant in VARIANTS:
        model = build(variant)
        assert torch.equal(predicted(model, named, boards), step(boards, named)), variant
        with model.sized(16, 16):
            ours = model_rollout(model, conway, glider[None], GLIDER_STEPS)[0]
        assert torch.equal(ours, rollout(glider, conway, GLIDER_STEPS)), variant


def test_a_hand_made_checkpoint_loads_like_a_run_and_is_never_discovered(tmp_path, capsys):
    path = handmade_cli.main(["--variant", "split", "--out", str(tmp_path / "handmade_split" / "latest.pt")])
    assert "8x8 100.000%, 16x16 100.000%" in capsys.readouterr().out
    ckpt = load_checkpoint(ckpt=path)
    assert ckpt["ground_truth"] == ground_truth("split") and ckpt["step"] == 0
    model, built = model_from_checkpoint(ckpt), build("split")
    tokens = built.encode_prompt(torch.zeros(1, 18, dtype=torch.bool), torch.ones(1, 8, 8, dtype=torch.long))
    assert torch.equal(model(tokens), built(tokens))
    with pytest.raises(Exception, match="No checkpoint found"):
        find_checkpoint(ckpt_dir=tmp_path)  # handmade_* runs are named, never discovered
    with pytest.raises(SystemExit):
        handmade_cli.main(["--variant", "split", "--heads", "lookup=9"])
    assert capsys.readouterr().err.strip() == "error: head lookup=9 is out of range: heads are 0..3"
