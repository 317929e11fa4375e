"""One model for any board size (model.positions=window): equal forwards, size independence, evaluation."""

import json

import pytest
import torch

from interfere.ca.rules import get_rule
from interfere.commands.evaluate import main as eval_main
from interfere.config import compose, sections
from interfere.data.layout import SequenceLayout, window_shifts
from interfere.explore import attn_maps
from interfere.model import window
from interfere.model.life_model import LifeTransformer, ModelConfig
from interfere.train.loop import target_loss, train

CONWAY = get_rule("B3/S23")


def _window_model(window: int = 2, n_layers: int = 2, size: int = 8) -> LifeTransformer:
    model = LifeTransformer(ModelConfig(positions="window", window=window, n_layers=n_layers, d_model=32,
                                        n_heads=2, seed=3), SequenceLayout(size, size))
    with torch.no_grad():  # a trained model's bias is not zero: make the test see it
        model.W_rel.normal_(generator=torch.Generator().manual_seed(0))
    return model.eval()


def _logits(model: LifeTransformer, boards: torch.Tensor, fast: bool = True) -> torch.Tensor:
    tokens = model.encode_prompt(CONWAY, boards)
    out = model.fast_target_logits(tokens) if fast else model.target_logits(model(tokens))
    return out.view(len(boards), *boards.shape[1:], 2)


@pytest.mark.parametrize("size,dense", [(5, True), (8, True), (11, True), (8, False), (11, False)])
def test_window_fast_path_equals_hooked_forward_and_gradients(size, dense, monkeypatch):
    """Both ways the fast path attends (dense up to DENSE_MAX_CELLS, tiles above; 11 is no multiple of TILE)."""
    monkeypatch.setattr(window, "DENSE_MAX_CELLS", 1024 if dense else 0)
    model = _window_model()
    g = torch.Generator().manual_seed(size)
    with model.sized(size, size):
        boards = (torch.rand(3, size, size, generator=g) < 0.4).long()
        labels = (torch.rand(3, size * size, generator=g) < 0.5).long()
        grads = []
        for fast in (True, False):
            model.zero_grad()
            logits = _logits(model, boards, fast)
            target_loss(logits.flatten(1, 2), labels)[0].backward()
            grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        torch.testing.assert_close(_logits(model, boards, True), _logits(model, boards, False), atol=1e-5, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys() and "W_rel" in grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_same_logits_under_a_toroidal_shift():
    model = _window_model()
    with model.sized(10, 10):
        board = (torch.rand(1, 10, 10, generator=torch.Generator().manual_seed(1)) < 0.4).long()
        shifted = _logits(model, board.roll((3, -4), dims=(1, 2)))
        torch.testing.assert_close(_logits(model, board).roll((3, -4), dims=(1, 2)), shifted, atol=1e-5, rtol=0)


def test_a_cell_depends_on_its_neighbourhood_not_on_the_board_size():
    """The same 13x13 patch on a 13x13 and a 24x24 board: cells whose receptive field (radius
    window x layers = 4) stays inside the patch without wrapping get the same logits."""
    model = _window_model()
    patch = (torch.rand(13, 13, generator=torch.Generator().manual_seed(2)) < 0.4).long()
    big = torch.zeros(24, 24, dtype=torch.long)
    big[5:18, 5:18] = patch
    with model.sized(13, 13):
        small_logits = _logits(model, patch[None])[0]
    with model.sized(24, 24):
        big_logits = _logits(model, big[None])[0]
    torch.testing.assert_close(big_logits[9:14, 9:14], small_logits[4:9, 4:9], atol=1e-5, rtol=0)
    assert not torch.allclose(big_logits[5:9, 5:9], small_logits[0:4, 0:4], atol=1e-3)  # these do see the wrap


def test_outputs_do_not_depend_on_other_sizes_in_a_step():
    """A training step's micro-batches of other sizes leave a board's logits as they were, and each
    board's logits are the same alone or batched."""
    model = _window_model()
    boards = (torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(4)) < 0.4).long()
    before = _logits(model, boards)
    with model.sized(16, 16):
        _logits(model, torch.ones(2, 16, 16, dtype=torch.long))
    torch.testing.assert_close(_logits(model, boards), before, atol=0, rtol=0)
    torch.testing.assert_close(_logits(model, boards[2:3])[0], before[2], atol=1e-6, rtol=0)


@pytest.mark.parametrize("h,w", [(5, 5), (8, 12), (32, 32)])
def test_window_offsets_follow_window_shifts(h, w):
    layout = SequenceLayout(h, w)
    offsets = layout.window_offsets(2)
    row, col = 1, w - 1  # a query near two edges: its window wraps
    query = layout.target_position(row, col)
    for index, (dr, dc) in enumerate(window_shifts(2)):
        key = layout.board_position((row + dr) % h, (col + dc) % w)
        assert offsets[query, key] == index
    assert (offsets[query] >= 0).sum() == 25 and (offsets[layout.rule] == -1).all()
    mask = layout.attention_mask(window=2)
    assert mask[query].sum() == 25 + len(layout.physics_index) + 1  # window, physics, itself
    assert not mask[layout.bos, layout.board].any()  # the rule never reads the board


def test_size_errors_are_one_line():
    rope = LifeTransformer(ModelConfig(n_layers=1, d_model=32, n_heads=2), SequenceLayout(6, 6))
    with pytest.raises(ValueError, match="fixed-size model.*cannot run 12x12.*exp/cpu_any"):
        rope.resize(12, 12)
    with pytest.raises(ValueError, match="smaller than the model's 5x5 attention window"):
        _window_model().resize(4, 4)
    with pytest.raises(ValueError, match="data.sizes.*model.positions=window"):
        sections(compose("exp/life_smoke", ["data.sizes=[6,8]"]))
    with pytest.raises(ValueError, match="rotary_dim applies to model.positions=rope"):
        ModelConfig(positions="window", rotary_dim=8)


def test_mixed_size_training_and_evaluation_at_untrained_sizes(smoke_cfg, tmp_path, capsys):
    cfg = smoke_cfg(tmp_path, "train.run_id=any", "train.steps=6", "train.final_eval=false",
                    "model.positions=window", "model.window=1", "data.sizes=[5,7]")
    result = train(cfg)
    out = capsys.readouterr().out
    assert "5x5, 7x7 boards" in out
    eval_main(["--ckpt", result["checkpoint"], "--sizes", "6", "9", "--boards", "64", "--no-rollouts"])
    printed = capsys.readouterr().out
    assert "6x6" in printed and "9x9" in printed
    saved = json.loads((tmp_path / "runs" / "any" / "eval_sizes.json").read_text())
    assert set(saved["sizes"]) == {"6", "9"}
    assert saved["sizes"]["9"]["heldout"]["cells"] == 51 * 81  # the cells of 64 8x8 boards: 51 9x9 boards
    assert (tmp_path / "runs" / "any" / "rollout_glider_9.gif").is_file()


def test_analyses_run_a_size_free_checkpoint_at_other_sizes(smoke_cfg, tmp_path, capsys):
    result = train(smoke_cfg(tmp_path, "train.run_id=w", "train.steps=2", "train.final_eval=false",
                             "model.positions=window", "model.window=1"))
    for flags, size in ((["--size", "7"], 7), (["--config-name", "exp/cpu_demo"], 8)):
        out = tmp_path / f"maps{size}"
        attn_maps.main(["--ckpt", result["checkpoint"], "--out", str(out), "--layer", "0", "--head", "0",
                        "--samples", "2", *flags])
        assert f"running {size}x{size} boards" in capsys.readouterr().err
        assert json.loads((out / "summary.json").read_text())["board"] == f"{size}x{size}"


def test_checkpoints_older_than_the_window_keys_still_match_their_config():
    from interfere.config import to_plain
    from interfere.model.checkpoint import config_mismatches

    wanted = to_plain(compose("exp/cpu_demo"))
    old = {**wanted, "data": dict(wanted["data"]), "model": dict(wanted["model"])}
    del old["data"]["sizes"], old["model"]["positions"], old["model"]["window"]
    assert config_mismatches(old, wanted) == []
    old["model"]["d_model"] = 32
    assert config_mismatches(old, wanted) == ["model.d_model: checkpoint 32 vs config 64"]


def test_the_newest_size_free_checkpoint_is_found_and_a_broken_one_skipped_saying_why(tiny_run, tiny_window_run,
                                                                                     tmp_path, capsys):
    import os
    import shutil

    from interfere.model.checkpoint import newest_size_free

    for name, source in (("a_window", tiny_window_run), ("b_rope", tiny_run)):
        (tmp_path / name).mkdir()
        shutil.copy(source["checkpoint"], tmp_path / name / "latest.pt")
    (tmp_path / "c_broken").mkdir()
    (tmp_path / "c_broken" / "latest.pt").write_bytes(b"not a checkpoint")
    for i, name in enumerate(("a_window", "b_rope", "c_broken")):  # c_broken newest, a_window oldest
        os.utime(tmp_path / name / "latest.pt", (1_000_000 + i, 1_000_000 + i))
    assert newest_size_free(tmp_path) == tmp_path / "a_window" / "latest.pt"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: skipping {tmp_path / 'c_broken' / 'latest.pt'}: not a readable checkpoint (RuntimeError)"]
    assert newest_size_free(tmp_path / "nothing here") is None
