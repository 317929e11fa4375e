import math

import pytest
import torch

from interfere.data.layout import SequenceLayout
from interfere.data.stream import BatchStream, DataConfig
from interfere.model import LifeTransformer, ModelConfig
from interfere.model.rope2d import apply_rope, rope_angles


def _model(h=5, w=6, k=1, **kw):
    layout = SequenceLayout(h, w, k)
    model = LifeTransformer(ModelConfig(**{"n_layers": 2, "d_model": 32, "n_heads": 2, **kw}), layout)
    batch = BatchStream(DataConfig(height=h, width=w, multi_steps=k, batch_size=4), seed=0).next()
    return model, layout, batch


def _rope(kind, h, w, dim=16):
    layout = SequenceLayout(h, w)
    angles = rope_angles(layout.pos2d(), kind, dim, h, w)
    return layout, angles.cos(), angles.sin()


@pytest.mark.parametrize("kind", ["toroidal", "standard"])
def test_rope_preserves_norm_and_depends_on_offset_only(kind):
    layout, cos, sin = _rope(kind, 7, 9)
    g = torch.Generator().manual_seed(0)
    q0, k0 = torch.randn(16, generator=g), torch.randn(16, generator=g)
    x = q0.expand(1, layout.seq_len, 1, 16)
    rq = apply_rope(x, cos, sin)[0, :, 0]
    rk = apply_rope(k0.expand(1, layout.seq_len, 1, 16), cos, sin)[0, :, 0]
    assert torch.allclose(rq.norm(dim=-1), q0.norm().expand(layout.seq_len), atol=1e-5)
    a = rq[layout.board_position(1, 2)] @ rk[layout.board_position(3, 5)]
    b = rq[layout.board_position(2, 1)] @ rk[layout.board_position(4, 4)]  # same offset (2, 3)
    c = rq[layout.board_position(2, 1)] @ rk[layout.board_position(4, 5)]  # another offset
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, c, atol=1e-3)


def test_toroidal_offset_wraps_standard_does_not():
    for kind, wraps in [("toroidal", True), ("standard", False)]:
        layout, cos, sin = _rope(kind, 8, 8)
        q0, k0 = torch.randn(16), torch.randn(16)
        rq = apply_rope(q0.expand(1, layout.seq_len, 1, 16), cos, sin)[0, :, 0]
        rk = apply_rope(k0.expand(1, layout.seq_len, 1, 16), cos, sin)[0, :, 0]
        minus_one = rq[layout.board_position(3, 3)] @ rk[layout.board_position(2, 3)]
        h_minus_one = rq[layout.board_position(0, 3)] @ rk[layout.board_position(7, 3)]
        assert torch.allclose(minus_one, h_minus_one, atol=1e-5) == wraps


def test_partial_rotary_leaves_tail_unrotated():
    layout, cos, sin = _rope("toroidal", 4, 4, dim=8)
    x = torch.randn(2, layout.seq_len, 3, 16)
    out = apply_rope(x, cos, sin)
    assert torch.equal(out[..., 8:], x[..., 8:]) and not torch.allclose(out[..., :8], x[..., :8])


def test_hooks_fire_in_run_with_cache_and_survive_reset():
    model, layout, batch = _model()
    logits, cache = model.run_with_cache(batch.tokens)
    resid = cache["blocks.0.ln1.hook_normalized"]
    attn = model.blocks[0].attn
    unrotated = torch.einsum("bpm,hmd->bphd", resid, attn.W_Q) + attn.b_Q
    board = layout.board
    assert not torch.allclose(cache["blocks.0.attn.hook_q"][:, board], unrotated[:, board], atol=1e-4)
    assert torch.allclose(cache["blocks.0.attn.hook_q"], apply_rope(unrotated, model.rope_cos, model.rope_sin),
                          atol=1e-5)
    pattern = cache["blocks.1.attn.hook_pattern"]
    assert (pattern[..., layout.target_index[0], layout.target_index[1:]] == 0).all()
    model.reset_hooks()
    assert torch.allclose(model(batch.tokens), logits)
    seg = cache["hook_seg_embed"]
    assert torch.allclose(cache["hook_embed"] - model.embed.W_E[batch.tokens], seg.expand_as(cache["hook_embed"]),
                          atol=1e-6)


def test_no_1d_positions():
    model, _, _ = _model()
    assert not model.pos_embed.W_pos.requires_grad and (model.pos_embed.W_pos == 0).all()


def test_targets_see_only_context_and_themselves():
    model, layout, batch = _model(k=2)
    logits = model(batch.tokens)
    other = batch.tokens.clone()
    other[:, layout.target_index] = torch.randint(0, 2, (len(other), len(layout.target_index)))
    other_logits = model(other)
    ctx = ~layout.is_target()
    assert torch.allclose(logits[:, ctx], other_logits[:, ctx], atol=1e-5)  # context never sees targets
    # a target sees only itself among targets: change one target token, only its logit may move
    one = batch.tokens.clone()
    pos = layout.target_position(1, 1, 0)
    one[:, pos] = 1
    moved = (model(one) - logits).abs().amax(dim=(0, 2)) > 1e-6
    assert torch.nonzero(moved).flatten().tolist() in ([pos], [])


def test_labels_do_not_reach_the_model():
    _, layout, batch = _model()
    model = LifeTransformer(ModelConfig(n_layers=1, d_model=32, n_heads=2), layout)
    futures = batch.boards[:, 1:]
    a = layout.encode(batch.rules, batch.boards[:, 0], futures)
    b = layout.encode(batch.rules, batch.boards[:, 0], 1 - futures)
    assert torch.equal(model(a.tokens), model(b.tokens))


@pytest.mark.parametrize("k,kw", [(1, {}), (2, {"rope": "standard", "rotary_dim": 8}), (3, {"n_heads": 4})])
def test_fast_path_equals_hooked_forward(k, kw):
    model, _, batch = _model(k=k, **kw)
    hooked = model.target_logits(model(batch.tokens))
    fast = model.fast_target_logits(batch.tokens)
    assert torch.allclose(hooked, fast, atol=1e-5)


def test_predict_and_rollout_shapes():
    model, layout, batch = _model()
    assert model.predict(batch.rules, batch.boards[:, 0]).shape == (4, 5, 6)
    roll = model.rollout(batch.rules, batch.boards[:, 0], 3)
    assert roll.shape == (4, 4, 5, 6) and torch.equal(roll[:, 0], batch.boards[:, 0])
    assert set(roll.unique().tolist()) <= {0, 1}


def test_bad_model_config():
    with pytest.raises(ValueError, match="rotary_dim"):
        LifeTransformer(ModelConfig(d_model=32, n_heads=2, rotary_dim=6), SequenceLayout(4, 4))
    with pytest.raises(ValueError, match="rope"):
        LifeTransformer(ModelConfig(rope="spiral"), SequenceLayout(4, 4))
    assert math.isclose(ModelConfig(d_model=64, n_heads=4).resolved().d_head, 16)
