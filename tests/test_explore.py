import json

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from interfere.ca.rules import get_rule
from interfere.ca.simulate import moore_neighbourhood, rollout, step
from interfere.data.layout import SequenceLayout
from interfere.explore import (
    attn_contrib_vector,
    attn_maps,
    embed_scatter,
    layers,
    logit_lens,
    physics_bits,
    probes,
    rule_vectors,
)
from interfere.explore.attn_maps import board_attention, relative_maps, stencil_shares
from interfere.explore.physics_bits import (
    flip_bits,
    flip_scores,
    governed_metric,
    head_patching,
)
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint
from interfere.thresholds import load_thresholds
from interfere.viz.animate import comparison_frames, write_frames
from interfere.viz.style import WRONG_COLOR


def _run(tool, tiny_run, tmp_path, *flags):
    out = tmp_path / tool.NAME
    numbers = tool.main(["--ckpt", tiny_run["checkpoint"], "--out", str(out), *flags])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoint"] == tiny_run["checkpoint"]
    assert summary["train_seed"] == 0 and summary["boards_seed"] == 0
    assert summary["files"] and all((out / f).is_file() for f in summary["files"])
    assert all(f.endswith((".png", ".gif", ".mp4")) for f in summary["files"])
    assert "command" in summary and summary["step"] == 60
    return numbers, summary


def test_attn_maps_end_to_end(tiny_run, tmp_path):
    numbers, summary = _run(attn_maps, tiny_run, tmp_path, "--layer", "0", "--head", "1", "--query", "1,2",
                            "--sweep", "heads", "--samples", "8")
    assert np.array(numbers["stencil_share"]).shape == (1, 2)
    assert any(f.endswith(".gif") for f in summary["files"])


def test_probes_end_to_end(tiny_run, tmp_path):
    numbers, _ = _run(probes, tiny_run, tmp_path, "--samples", "16")
    assert set(numbers["results"]) == {"target", "board"}
    assert len(numbers["results"]["board"]["trained"]) == 2  # layer 0 and the final residual


def test_physics_bits_end_to_end(tiny_run, tmp_path):
    numbers, _ = _run(physics_bits, tiny_run, tmp_path, "--samples", "18", "--rule", "B3/S23")
    assert len(numbers["flip"]["precision"]) == 18
    patching = numbers["patching"]
    assert patching["no_effect"] == (abs(patching["effect_logit"]) < patching["effect_floor"])
    if not patching["no_effect"]:
        assert patching["all_heads"] == pytest.approx(1.0, abs=1e-3)
    assert set(numbers["rule_path"]) == {"clean_acc", "ablated_acc", "rule_blind_best", "rule_use"}


def _unit_diagonal(cosine) -> bool:
    return np.allclose(np.diag(np.array(cosine)), 1.0, atol=1e-5)


@pytest.mark.parametrize("tool,flags,expected", [
    (embed_scatter, ["--layer", "1", "--color", "next", "--samples", "8"],
     lambda n: (n["layer"], n["hook"], n["color"], n["points"], len(n["xy"])) == (1, "blocks.0.hook_resid_post",
                                                                                  "next", 8 * 25, 8 * 25)),
    (attn_contrib_vector, ["--layer", "0", "--head", "0", "--query", "0,4", "--samples", "4"],
     lambda n: (n["layer"], n["head"], n["query"], n["samples"], np.array(n["mean_board_field"]).shape)
     == (0, 0, [0, 4], 4, (5, 5))),
    (rule_vectors, ["--source", "resid0", "--samples", "8"],
     lambda n: n["source"] == "resid0" and np.array(n["cosine"]).shape == (18, 18) and _unit_diagonal(n["cosine"])),
    (rule_vectors, [], lambda n: n["source"] == "embed" and _unit_diagonal(n["cosine"])),
])
def test_other_tools_end_to_end(tool, flags, expected, tiny_run, tmp_path):
    """Each flag reaches the numbers (the layer, head, query, source and board count asked for), which are what
    the analysis measures (a cosine table has a unit diagonal)."""
    numbers, _ = _run(tool, tiny_run, tmp_path, *flags)
    assert expected(numbers), {k: v for k, v in numbers.items() if not isinstance(v, list)}


@pytest.mark.parametrize("flags,message", [
    (["--layer", "3"], "--layer 3 is out of range: valid values are 0..0"),
    (["--head", "2"], "--head 2 is out of range: valid values are 0..1"),
    (["--query", "5,0"], "outside the 5x5 board"),
    (["--query", "x"], "--query must be ROW,COL"),
    (["--rule", "B9/S2"], "Bad rule string 'B9/S2'"),
    (["--rule", "nonsense"], "Unknown rule 'nonsense'"),
    (["--samples", "1"], "--samples must be at least 2"),
    (["--config-name", "exp/nope"], "Unknown config 'exp/nope'"),
    (["--size", "12"], "fixed-size model (model.positions=rope, 5x5 boards): it cannot run 12x12 boards"),
    (["--size", "1x"], "board size must be N or HxW"),
])
def test_bad_flags_give_one_line_errors(flags, message, tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        attn_maps.main(["--ckpt", tiny_run["checkpoint"], "--out", str(tmp_path / "x"), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        attn_maps.main(["--ckpt-dir", str(tmp_path / "none"), "--out", str(tmp_path / "x")])
    assert "Train one first" in capsys.readouterr().err


def test_output_folders_are_never_reused(tiny_run, tmp_path):
    for _ in range(2):
        rule_vectors.main(["--ckpt", tiny_run["checkpoint"], "--out", str(tmp_path / "same")])
    assert (tmp_path / "same").is_dir() and (tmp_path / "same-1").is_dir()


def _patterns_from_board_weights(layout: SequenceLayout, weights: torch.Tensor) -> torch.Tensor:
    """A [1, 1, T, T] pattern whose t+1 target rows put ``weights`` [HW, HW] on the board."""
    pattern = torch.zeros(1, 1, layout.seq_len, layout.seq_len)
    pattern[0, 0, layout.targets[0], layout.board] = weights
    return pattern


def test_stencil_share_is_one_for_the_stencil_and_baseline_for_uniform():
    layout = SequenceLayout(7, 8)
    hood = moore_neighbourhood(7, 8)
    stencil = torch.zeros(56, 56).scatter_(1, hood, 1 / 9)
    share, board = stencil_shares(board_attention(_patterns_from_board_weights(layout, stencil), layout), layout)
    assert share.item() == pytest.approx(1.0) and board.item() == pytest.approx(1.0)
    uniform = torch.full((56, 56), 0.5 / 56)  # half the mass elsewhere: board share 0.5
    share, board = stencil_shares(board_attention(_patterns_from_board_weights(layout, uniform), layout), layout)
    assert share.item() == pytest.approx(9 / 56) and board.item() == pytest.approx(0.5)
    rel = relative_maps(board_attention(_patterns_from_board_weights(layout, stencil), layout), layout)[0]
    assert rel[2:5, 3:6].sum().item() == pytest.approx(1.0)  # centred on (3, 4)


def test_probe_recovers_planted_feature_and_not_shuffled():
    rng = np.random.default_rng(0)
    n_boards, cells, d = 200, 16, 12
    count = rng.integers(0, 9, size=(n_boards, cells))
    prior = rng.integers(0, 2, size=(n_boards, cells))
    nxt = rng.integers(0, 2, size=(n_boards, cells))
    x = rng.normal(size=(n_boards, cells, d))
    x[..., 0] += 3 * count  # noise variance 1 vs signal 60: the best R² is ~0.98
    x[..., 1] += 3 * prior
    x[..., 2] += 3 * nxt
    labels = {"count": count, "prior": prior, "next": nxt}
    train, test = probes.board_split(n_boards, seed=0)
    real = probes.fit_probes(x, labels, train, test, seed=0)
    assert real["count_r2"] > 0.9 and real["count_acc"] > 0.6 and real["prior_auc"] > 0.95 and real["next_auc"] > 0.95
    fake = probes.fit_probes(x, probes.shuffled(labels, 0), train, test, seed=0)
    assert fake["count_r2"] < 0.1 and fake["prior_auc"] < 0.6 and fake["next_auc"] < 0.6


def test_flip_test_scores_perfectly_for_the_simulator():
    g = torch.Generator().manual_seed(0)
    rules = torch.rand(64, 18, generator=g) < 0.5
    boards = (torch.rand(64, 6, 6, generator=g) < 0.5).long()
    scores = flip_scores(lambda r, b: step(b, r), rules, boards)
    assert all(p == 1.0 for p in scores["precision"]) and all(r == 1.0 for r in scores["recall"])
    assert all(f == 0.0 for f in scores["false_flip_rate"]) and all(a == 1.0 for a in scores["flipped_acc"])
    never = flip_scores(lambda r, b: torch.zeros_like(b), rules, boards)
    assert all(np.isnan(p) for p in never["precision"])


def test_patching_every_head_restores_everything_and_tl_agrees(tiny_run):
    from transformer_lens import patching

    model = model_from_checkpoint(load_checkpoint(ckpt=tiny_run["checkpoint"]))
    g = torch.Generator().manual_seed(1)
    rules = torch.rand(36, 18, generator=g) < 0.5
    boards = (torch.rand(36, 5, 5, generator=g) < 0.5).long()
    flipped = flip_bits(rules, torch.arange(36) % 18)
    per_head, everything, effect = head_patching(model, rules, flipped, boards)
    assert everything == pytest.approx(1.0, abs=1e-4) and effect != 0
    assert per_head.shape == (1, 2)
    clean_tokens, flip_tokens = model.encode_prompt(rules, boards), model.encode_prompt(flipped, boards)
    metric = governed_metric(model, rules, flipped, boards)
    _, cache = model.run_with_cache(flip_tokens)
    clean_m = metric(model.target_logits(model(clean_tokens)))
    tl = patching.get_act_patch_attn_head_out_all_pos(
        model, clean_tokens, cache, lambda logits: (metric(model.target_logits(logits)) - clean_m) / effect)
    assert torch.allclose(per_head, tl.float().cpu(), atol=1e-4)


def test_a_failed_analysis_leaves_no_folder(tiny_run, tmp_path, monkeypatch):
    def broken(result, out, provenance):
        (out / "half.png").write_bytes(b"")  # something was written before the failure
        raise RuntimeError("boom")

    monkeypatch.setattr(attn_maps, "plot", broken)
    with pytest.raises(RuntimeError, match="boom"):
        attn_maps.main(["--ckpt", tiny_run["checkpoint"], "--out", str(tmp_path / "x")])
    assert list(tmp_path.iterdir()) == []


def _head_from_offsets(layout: SequenceLayout, weights: dict[tuple[int, int], float]) -> torch.Tensor:
    """[HW, HW] board attention putting ``weights[(dr, dc)]`` on each offset of every query."""
    h, w = layout.height, layout.width
    a = torch.zeros(layout.n_cells, layout.n_cells)
    for q in range(layout.n_cells):
        r, c = divmod(q, w)
        for (dr, dc), v in weights.items():
            a[q, ((r + dr) % h) * w + (c + dc) % w] += v
    return a


def test_constructed_heads_get_the_roles_they_were_built_with():
    from interfere.report.verdicts import AGGREGATES, PARTIAL, SELF_LOOKUP, head_roles

    layout = SequenceLayout(8, 8)
    offsets = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
    plus = {(0, 0): 0.44, **{o: 0.11 for o in ((-1, 0), (1, 0), (0, -1), (0, 1))},
            **{o: 0.03 for o in ((-1, -1), (-1, 1), (1, -1), (1, 1))}}
    heads = {"own cell only": {(0, 0): 1.0}, "uniform 3x3": {o: 1 / 9 for o in offsets}, "plus-shaped": plus}
    patterns = torch.cat([_patterns_from_board_weights(layout, _head_from_offsets(layout, w)) for w in heads.values()],
                         dim=1)  # [1, 3 heads, T, T]
    profile, board = attn_maps.stencil_profile(board_attention(patterns, layout), layout)
    measures = attn_maps.locality_measures(profile)
    assert measures["own_share"].tolist() == pytest.approx([1.0, 1 / 9, 0.44])
    assert measures["neighbour_evenness"][1].item() == pytest.approx(1.0)
    assert measures["effective_cells"][1].item() == pytest.approx(9.0) and measures["effective_cells"][0] < 1.01
    h1 = {k: [v.tolist()] for k, v in measures.items()}
    h1.update(board_share=[board.tolist()], uniform_baseline=9 / 64, neighbour_uniform_baseline=8 / 64)
    roles = [r.role for r in head_roles(h1, load_thresholds()["h1"])]
    assert roles == [SELF_LOOKUP, AGGREGATES, PARTIAL]


def test_a_model_that_cannot_read_the_rule_shows_no_effect(tiny_run, tmp_path):
    """Both values of every rule token embedded alike: the rule is invisible, so every effect is nil."""
    from interfere.data.layout import rule_token
    from interfere.data.stream import DataConfig
    from interfere.explore.common import Context

    ckpt = load_checkpoint(ckpt=tiny_run["checkpoint"])
    model = model_from_checkpoint(ckpt)
    with torch.no_grad():
        for bit in range(18):
            model.embed.W_E[rule_token(bit, 1)] = model.embed.W_E[rule_token(bit, 0)]
    ctx = Context(model=model, ckpt=ckpt, layout=model.layout, data=DataConfig(**ckpt["config"]["data"]),
                  out=tmp_path, seed=0, rule=None, command="test")
    result = physics_bits.measure(model, ctx.examples(36), physics_bits.Params(samples=36, patching="on",
                                                                                    thresholds=load_thresholds()))
    assert result.patching["no_effect"] and result.patching["restored_share"] is None
    path = result.rule_path
    assert path["ablated_acc"] == path["clean_acc"]  # nothing to remove
    assert path["rule_use"] is None or path["rule_use"] == pytest.approx(0.0)
    assert all(c == 0 for c in result.flip["changed_cells"])


def test_rule_blind_ceiling():
    g = torch.Generator().manual_seed(0)
    boards = (torch.rand(64, 8, 8, generator=g) < 0.4).long()
    conway = torch.zeros(18, dtype=torch.bool)
    conway[[2, 3, 12]] = True
    assert physics_bits.rule_blind_ceiling(boards, step(boards, conway)) == 1.0  # one rule: knowable without it
    rules = torch.rand(64, 18, generator=g) < 0.5
    ceiling = physics_bits.rule_blind_ceiling(boards, step(boards, rules))
    assert 0.5 <= ceiling < 0.7  # random rules: little better than a coin


def test_chunked_analyses_give_the_same_numbers(tiny_run, tmp_path, monkeypatch):
    """One sequence per hooked forward (as at the life32 shape) or all at once: the same numbers."""
    from interfere.data.stream import DataConfig
    from interfere.explore import batched, logit_lens
    from interfere.explore.analysis import jsonable
    from interfere.explore.common import Context
    from interfere.model import memory

    ckpt = load_checkpoint(ckpt=tiny_run["checkpoint"])
    model = model_from_checkpoint(ckpt)

    def numbers():
        ctx = Context(model=model, ckpt=ckpt, layout=model.layout, data=DataConfig(**ckpt["config"]["data"]),
                      out=tmp_path, seed=0, rule=None, command="test")
        ex = ctx.examples(6)
        return [jsonable(module.measure(model, ex, params)) for module, params in (
            (attn_maps, attn_maps.Params(samples=6)),
            (physics_bits, physics_bits.Params(samples=6, patching="on", thresholds=load_thresholds())),
            (logit_lens, logit_lens.Params(samples=6)))]

    whole = numbers()
    monkeypatch.setattr(memory, "CHUNK_MAX_BYTES", 1.0)  # every hooked and inference forward: one sequence
    assert batched.chunk_size(model, 6) == 1
    chunked = numbers()
    for key in ("stencil_share", "own_share", "neighbour_share", "board_share"):
        assert np.allclose(whole[0][key], chunked[0][key], atol=1e-6), key
    assert whole[1]["rule_path"] == pytest.approx(chunked[1]["rule_path"], abs=1e-9)
    assert np.allclose(whole[1]["rule_attention_mass"], chunked[1]["rule_attention_mass"], atol=1e-6)
    assert whole[1]["patching"]["effect_logit"] == pytest.approx(chunked[1]["patching"]["effect_logit"], abs=1e-5)
    assert whole[2]["acc"] == chunked[2]["acc"]


def test_sample_defaults_scale_with_the_board():
    from interfere.explore.batched import scaled_samples

    assert scaled_samples(64, 64, 2) == 64 and scaled_samples(64, 1024, 2) == 4 and scaled_samples(64, 4096, 2) == 2
    assert scaled_samples(256, 25, 8) == 256  # small boards keep the stated number


def test_a_rollout_gif_shows_its_frames_and_its_mistakes_in_red(tmp_path):
    start = torch.zeros(8, 8, dtype=torch.long)
    start[1, 2] = start[2, 3] = start[3, 1] = start[3, 2] = start[3, 3] = 1  # a glider
    truth = rollout(start, get_rule("B3/S23"), 12)
    ours = truth.clone()
    ours[6:, 7, 7] = 1 - ours[6:, 7, 7]  # the model gets one cell wrong from generation 6 on
    frames = comparison_frames(ours, truth, "B3/S23")
    path = write_frames(frames, tmp_path / "rollout", mp4=False)[0]
    back = [f[..., :3].astype(int) for f in imageio.mimread(path)]
    assert len(back) == len(frames) == 13
    assert max(np.abs(b - f).mean() for b, f in zip(back, frames)) < 1.0  # one palette, no visible loss
    red = np.array([int(WRONG_COLOR[i : i + 2], 16) for i in (1, 3, 5)])
    is_red = [bool((np.abs(b - red).sum(-1) < 30).any()) for b in back]
    assert is_red == [False] * 6 + [True] * 7


# --- known answers: the explorations on a model written by hand (interfere.model.handmade) -----------------------
def _handmade_examples(n: int = 16):
    from interfere.data.stream import random_boards
    from interfere.explore.common import examples_of
    from interfere.model.handmade import build

    model, g = build("split"), torch.Generator().manual_seed(6)
    return model, examples_of(model, torch.rand(n, 18, generator=g) < 0.5, random_boards(n, 8, 8, 0.1, 0.9, g))


def test_logit_lens_reads_the_answer_only_where_it_was_written():
    """The hand-made read-out is the only writer of the direction the unembedding reads: before it, every cell reads
    as dead (accuracy = the share of dead next states); after it, every cell is right."""
    model, ex = _handmade_examples()
    result = logit_lens.measure(model, ex, logit_lens.Params(samples=len(ex)))
    dead = float((ex.next_boards == 0).float().mean())
    assert result.acc[:2] == pytest.approx([dead, dead]) and result.acc[-1] == 1.0


def test_rule_vectors_of_written_embeddings():
    """<Rb_1> - <Rb_0> is (its value direction + the shared value direction) for every bit: norm sqrt(2), and every
    pair of bits at cosine 1/2."""
    model, ex = _handmade_examples(4)
    result = rule_vectors.measure(model, ex, rule_vectors.Params(samples=4, source="embed"))
    assert result.diff_norms == pytest.approx([2 ** 0.5] * 18)
    assert result.mean_abs_offdiag_cosine == pytest.approx(0.5) and result.mean_cosine_S_vs_B == pytest.approx(0.5)


def test_embed_scatter_of_the_board_embedding_is_one_axis_by_state():
    """Before layer 0 a board cell's residual is its token and segment: two points, live and dead, so the first
    principal component carries everything and separates the states."""
    model, ex = _handmade_examples(8)
    result = embed_scatter.measure(model, ex, embed_scatter.Params(samples=8, layer=0, at="board"))
    assert result.explained_variance[0] == pytest.approx(1.0, abs=1e-4)
    xs = torch.tensor(result.xy)[:, 0].round(decimals=4)
    values, sizes = torch.unique(xs, return_counts=True)
    alive = int(ex.boards.sum())
    assert len(values) == 2 and sorted(sizes.tolist()) == sorted([alive, ex.boards.numel() - alive])


def test_attn_contrib_vector_is_zero_for_a_head_the_unembedding_never_reads():
    """The hand-made copy head writes the governing bit where only the read-out MLP reads it: its direct
    contribution to the logit difference is exactly zero from every key."""
    model, ex = _handmade_examples(8)
    result = attn_contrib_vector.measure(model, ex, attn_contrib_vector.Params(samples=8, layer=1, head=0))
    assert result.mean_total_from_board == 0.0 and result.mean_total_from_prefix == 0.0


def test_layers_needed_by_a_model_written_by_hand():
    """Only the read-out MLP1 writes what the unembedding reads: removing it, or it and everything before, gives the
    same accuracy; every other layer's part is needed (counting, case, lookup, copy)."""
    model, ex = _handmade_examples()
    result = layers.measure(model, ex, layers.Params(samples=len(ex)))
    assert result.clean_acc == 1.0
    assert result.from_layer_removed[0] == result.from_layer_removed[1] == result.mlp_removed[1]
    assert max(result.attention_removed + result.mlp_removed) < 0.95, result

