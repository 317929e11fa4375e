import math
import os

import pytest
import torch

from interfere.data.layout import SequenceLayout
from interfere.data.stream import BatchStream, DataConfig
from interfere.model import LifeTransformer, ModelConfig, inference
from interfere.model.fast_path import TargetAttention
from interfere.model.lean import op_by_op_hooks
from interfere.model.rope2d import apply_rope, rope_angles

# The device-dependent tests (marked `device`) run on INTERFERE_TEST_DEVICE: `cpu` here, `cuda` in
# bench/gpu_check.sh (INTERFERE_TEST_DEVICE=cuda pytest -m device).
DEVICE = torch.device(os.environ.get("INTERFERE_TEST_DEVICE", "cpu"))


def _model(h=5, w=6, k=1, device=DEVICE, **kw):
    layout = SequenceLayout(h, w, k)
    model = LifeTransformer(ModelConfig(**{"n_layers": 2, "d_model": 32, "n_heads": 2, **kw}), layout, device)
    batch = BatchStream(DataConfig(height=h, width=w, multi_steps=k, batch_size=4), seed=0, device=device).next()
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
    plain = model(batch.tokens)
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
    assert torch.equal(model(batch.tokens), plain)
    assert torch.allclose(model.run_with_hooks(batch.tokens, fwd_hooks=op_by_op_hooks(model.cfg.n_layers)), logits)
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


@pytest.mark.parametrize("kw", [{}, {"n_heads": 4, "rope": "standard", "rotary_dim": 8},
                                {"positions": "window", "window": 1}])
def test_fused_ops_equal_transformer_lens_explicit_ones(kw):
    """With no hook inside them, attention and LayerNorm run fused: same logits, hook_z and gradients."""
    model, _, batch = _model(**kw)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    runs = []
    for hooks in ([], op_by_op_hooks(model.cfg.n_layers)):
        model.zero_grad(set_to_none=True)
        z: list[torch.Tensor] = []
        fwd = hooks + [("blocks.0.attn.hook_z", lambda act, hook, z=z: z.append(act.detach()))]
        logits = model.run_with_hooks(batch.tokens, fwd_hooks=fwd)
        logits.pow(2).sum().backward()
        runs.append({"logits": logits.detach(), "z": z[0],
                     **{n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}})
    fused, explicit = runs
    assert fused.keys() == explicit.keys() and len(fused) > 10
    grad_scale = max(g.abs().max() for name, g in explicit.items() if name not in ("logits", "z"))
    for name in fused:  # fp32 rounding: relative to the outputs' scale, or to the largest gradient's
        scale = explicit[name].abs().max() if name in ("logits", "z") else grad_scale
        assert (fused[name] - explicit[name]).abs().max() <= 1e-5 * scale, name


def test_hooks_inside_attention_and_layer_norm_still_act():
    """A hook that edits the scores changes the output; hooks on the pattern and the LayerNorm scale fire."""
    model, layout, batch = _model()
    seen = []
    logits = model.run_with_hooks(batch.tokens, fwd_hooks=[
        ("blocks.0.attn.hook_pattern", lambda p, hook: seen.append(p.shape)),
        ("blocks.1.attn.hook_pattern", lambda p, hook: seen.append(p.shape)),
        ("ln_final.hook_scale", lambda s, hook: seen.append(s.shape))])
    n, t = len(batch.tokens), layout.seq_len
    assert seen == [(n, 2, t, t), (n, 2, t, t), (n, t, 1)]
    rule = torch.arange(layout.seq_len)[layout.rule]
    no_rule = model.run_with_hooks(batch.tokens, fwd_hooks=[
        ("blocks.0.attn.hook_attn_scores", lambda s, hook: s.index_fill(-1, rule, -1e9))])
    assert not torch.allclose(logits, no_rule, atol=1e-3)
    assert torch.allclose(model(batch.tokens), logits, atol=1e-5)
    model.add_perma_hook("blocks.0.attn.hook_attn_scores", lambda s, hook: s.index_fill(-1, rule, -1e9))
    assert torch.allclose(model(batch.tokens), no_rule, atol=1e-5)  # a permanent hook of one's own acts too


@pytest.mark.device
@pytest.mark.parametrize("k,kw", [(1, {}), (2, {"rope": "standard", "rotary_dim": 8}), (3, {"n_heads": 4})])
def test_fast_path_equals_hooked_forward(k, kw):
    model, _, batch = _model(k=k, **kw)
    hooked = model.target_logits(model(batch.tokens))
    fast = model.fast_target_logits(batch.tokens)
    assert torch.allclose(hooked, fast, atol=1e-5)


@pytest.mark.device
@pytest.mark.parametrize("k,kw", [
    (1, {}), (2, {"rope": "standard", "rotary_dim": 8}), (3, {"n_heads": 4}),
    (1, {"n_layers": 1}), (2, {"n_layers": 3}),
])
def test_fast_path_equals_hooked_forward_and_gradients(k, kw):
    model, _, batch = _model(k=k, **kw)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # every parameter away from its initial value (biases start at zero)
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=g).to(p.device))
    grads = []
    for logits in (model.target_logits(model(batch.tokens)), model.fast_target_logits(batch.tokens)):
        model.zero_grad(set_to_none=True)
        (logits * torch.randn(logits.shape, generator=torch.Generator().manual_seed(2)).to(DEVICE)).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
        grads[-1]["logits"] = logits.detach()
    hooked, fast = grads
    assert hooked.keys() == fast.keys()
    for name in hooked:
        assert torch.allclose(hooked[name], fast[name], atol=1e-4, rtol=1e-4), name


def test_predict_and_rollout_shapes():
    model, layout, batch = _model()
    assert inference.predict(model, batch.rules, batch.boards[:, 0]).shape == (4, 5, 6)
    roll = inference.rollout(model, batch.rules, batch.boards[:, 0], 3)
    assert roll.shape == (4, 4, 5, 6) and torch.equal(roll[:, 0], batch.boards[:, 0])
    for k in range(3):  # each generation is the model's one-step prediction from the one before (autoregressive)
        assert torch.equal(roll[:, k + 1], inference.predict(model, batch.rules, roll[:, k]))
    # an untrained model may predict the same board from any input: an exact one shows the feedback
    from interfere.ca.patterns import place
    from interfere.ca.rules import get_rule
    from interfere.ca.simulate import rollout as simulated
    from interfere.model.handmade import build

    glider, conway = place("glider", 8, 8, 1, 1), get_rule("B3/S23")
    assert torch.equal(inference.rollout(build("split"), conway, glider[None], 4)[0], simulated(glider, conway, 4))


def test_bad_model_config():
    with pytest.raises(ValueError, match="rotary_dim"):
        LifeTransformer(ModelConfig(d_model=32, n_heads=2, rotary_dim=6), SequenceLayout(4, 4))
    with pytest.raises(ValueError, match="rope"):
        LifeTransformer(ModelConfig(rope="spiral"), SequenceLayout(4, 4))
    assert math.isclose(ModelConfig(d_model=64, n_heads=4).resolved().d_head, 16)


@pytest.mark.parametrize("batched_targets", [True, False])
def test_target_attention_gradcheck(batched_targets):
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    t_shape = (2, 3, 5, 4) if batched_targets else (3, 5, 4)
    q, k_t, v_t = rand(*t_shape), rand(*t_shape), rand(*t_shape)
    k_c, v_c = rand(2, 3, 6, 4), rand(2, 3, 6, 4)
    assert torch.autograd.gradcheck(lambda *a: TargetAttention.apply(*a, 0.5), (q, k_c, v_c, k_t, v_t))
    scores = torch.cat([q @ k_c.transpose(-1, -2), (q * k_t).sum(-1, keepdim=True).expand(2, 3, 5, 1)], -1) * 0.5
    p = scores.softmax(-1)
    reference = p[..., :-1] @ v_c + p[..., -1:] * v_t
    assert torch.allclose(TargetAttention.apply(q, k_c, v_c, k_t, v_t, 0.5), reference)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_apply_rope_is_a_rotation_of_each_pair(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 3, 10, generator=g)
    angles = torch.rand(7, 2, generator=g) * 6  # 2 pairs rotated, 6 dims pass through
    out = apply_rope(x.to(dtype), angles.cos(), angles.sin())
    assert out.dtype == dtype and out.shape == x.shape
    c, s = angles.cos()[None, :, None], angles.sin()[None, :, None]
    a, b = x[..., 0:4:2], x[..., 1:4:2]
    expected = torch.cat([torch.stack([a * c - b * s, a * s + b * c], -1).flatten(-2), x[..., 4:]], -1)
    assert torch.allclose(out.float(), expected, atol=1e-5 if dtype == torch.float32 else 5e-2)


@pytest.mark.device
def test_fast_path_under_bf16_autocast_matches_the_hooked_forward():
    """Training on CUDA runs under bf16 autocast; CPU autocast exercises the same dtype handling."""
    model, _, batch = _model(k=2)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        hooked = model.target_logits(model(batch.tokens)).float()
        fast = model.fast_target_logits(batch.tokens)
    fast.float().square().sum().backward()  # backward runs outside autocast, as in training
    assert torch.allclose(hooked, fast.float(), atol=0.05)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
