import torch

from interfere.ca import named_rule_bits, rule_codes, step
from interfere.data.stream import BatchStream, DataConfig


def test_test_and_validation_rules_never_emitted():
    stream = BatchStream(DataConfig(named_frac=0.1, bit_p_min=0.3, bit_p_max=0.7), seed=0)
    held, valid = set(rule_codes(stream.heldout).tolist()), set(rule_codes(stream.validation).tolist())
    assert len(held) == stream.cfg.n_heldout and len(valid) == stream.cfg.n_validation
    assert not held & valid
    assert not (held | valid) & set(rule_codes(named_rule_bits()).tolist())
    emitted = rule_codes(stream.sample_rules(100_000))
    assert not torch.isin(emitted, torch.tensor(sorted(held | valid))).any()


def test_heldout_clash_is_redrawn():
    cfg = DataConfig(named_frac=0.0, n_heldout=4)
    stream = BatchStream(cfg, seed=0)
    stream._unseen_codes = rule_codes(torch.zeros(1, 18, dtype=torch.bool))  # the all-dead rule
    cfg.bit_p_min = cfg.bit_p_max = 0.02  # makes the all-dead rule very likely
    rules = stream.sample_rules(5000)
    assert rules.any(dim=1).all()


def test_augmentation_keeps_dynamics():
    for h, w in [(8, 8), (6, 9)]:
        cfg = DataConfig(height=h, width=w, multi_steps=3, augment_d4=True, augment_shift=True,
                         pattern_frac=0.5, batch_size=256)
        batch = BatchStream(cfg, seed=3).next()
        for k in range(3):
            assert torch.equal(batch.boards[:, k + 1], step(batch.boards[:, k], batch.rules))


def test_stream_is_seeded():
    a = BatchStream(DataConfig(), seed=7).next()
    b = BatchStream(DataConfig(), seed=7).next()
    c = BatchStream(DataConfig(), seed=8).next()
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)


def test_densities_are_mixed():
    batch = BatchStream(DataConfig(batch_size=512), seed=0).next()
    density = batch.boards[:, 0].float().mean(dim=(1, 2))
    assert density.min() < 0.2 and density.max() > 0.8
