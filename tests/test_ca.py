import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from interfere.ca import NAMED_RULES, Rule, get_rule, parse_rule, place, rollout, stamp, step
from interfere.ca.rules import governing_bit
from interfere.ca.simulate import neighbour_counts


def reference_step(board: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """An independent formulation: np.roll over the 8 offsets, then an explicit if/else."""
    count = sum(
        np.roll(board, (dr, dc), axis=(0, 1))
        for dr in (-1, 0, 1)
        for dc in (-1, 0, 1)
        if (dr, dc) != (0, 0)
    )
    survive, born = bits[:9], bits[9:]
    return np.where(board == 1, survive[count], born[count]).astype(np.int64)


@pytest.mark.parametrize("shape", [(8, 8), (1, 7), (5, 1), (2, 3), (6, 11), (13, 4)])
def test_step_matches_reference_on_random_rules(shape):
    g = torch.Generator().manual_seed(hash(shape) % 1000)
    n = 1000
    rules = torch.rand(n, 18, generator=g) < 0.5
    boards = (torch.rand(n, *shape, generator=g) < torch.rand(n, 1, 1, generator=g)).to(torch.int8)
    got = step(boards, rules).numpy()
    for i in range(n):
        np.testing.assert_array_equal(got[i], reference_step(boards[i].numpy(), rules[i].numpy()))


@pytest.mark.parametrize("name", list(NAMED_RULES))
def test_named_rules_match_reference(name):
    rule = NAMED_RULES[name]
    boards = torch.rand(64, 9, 10, generator=torch.Generator().manual_seed(1)) < 0.4
    got = step(boards, rule)
    assert got.dtype == torch.int64
    for b, nxt in zip(boards, got):
        np.testing.assert_array_equal(nxt.numpy(), reference_step(b.long().numpy(), rule.bits.numpy()))


def test_known_patterns():
    life = get_rule("B3/S23")
    block = place("block", 6, 6, 2, 2)
    assert torch.equal(step(block[None], life)[0], block)
    blinker = place("blinker", 7, 7, 3, 2)
    states = rollout(blinker, life, 2)
    assert not torch.equal(states[1], states[0]) and torch.equal(states[2], states[0])
    glider = place("glider", 10, 10, 0, 0)
    assert torch.equal(rollout(glider, life, 4)[-1], glider.roll((1, 1), (0, 1)))
    lwss = place("lwss", 9, 12, 2, 5)
    assert torch.equal(rollout(lwss, life, 4)[-1], lwss.roll(-2, 1))


def test_glider_wraps_around_torus():
    life = get_rule("life")
    glider = place("glider", 8, 8, 6, 6)  # straddles both edges
    assert glider.sum() == 5
    assert torch.equal(rollout(glider, life, 32)[-1], glider)  # 8 diagonal cells = full lap


def test_step_batch_of_rules_and_devices_shapes():
    boards = torch.zeros(3, 4, 5, dtype=torch.bool)
    rules = torch.zeros(3, 18, dtype=torch.bool)
    rules[:, 9] = True  # B0: every empty cell is born
    assert step(boards, rules).sum() == 3 * 20
    with pytest.raises(ValueError, match="2 rules for 3 boards"):
        step(boards, rules[:2])


def test_stamp_places_patterns_only_where_asked():
    boards = torch.zeros(4, 6, 6, dtype=torch.long)
    out = stamp(boards, "glider", torch.tensor([0, 5, 0, 0]), torch.tensor([0, 5, 0, 0]),
                torch.tensor([True, True, False, False]))
    assert out[0].sum() == 5 and out[1].sum() == 5 and out[2:].sum() == 0
    assert torch.equal(out[1], place("glider", 6, 6, 5, 5))


@given(st.lists(st.booleans(), min_size=18, max_size=18))
def test_rule_round_trip_bits_string_bits(bits):
    rule = Rule.from_bits(torch.tensor(bits))
    assert parse_rule(str(rule)).bits.tolist() == bits
    assert Rule.from_bits(rule.bits) == rule


@pytest.mark.parametrize(
    "text,canonical",
    [("B3/S23", "B3/S23"), ("S23/B3", "B3/S23"), ("b36/s23", "B36/S23"), ("B2/S", "B2/S"),
     ("B3/S", "B3/S"), (" B3678/S34678 ", "B3678/S34678"), ("S/B", "B/S")],
)
def test_parse_accepts(text, canonical):
    assert str(parse_rule(text)) == canonical


@pytest.mark.parametrize(
    "bad", ["B3S23", "B39/S23", "B3/B3", "S2/S3", "B3/S23/", "hello", "", "B3/X23", "B33/S2", "23/3"]
)
def test_parse_rejects_with_input_quoted(bad):
    with pytest.raises(ValueError) as err:
        parse_rule(bad)
    assert repr(bad) in str(err.value)


def test_named_rules_by_name_and_string():
    assert len(NAMED_RULES) >= 11
    assert str(get_rule("Conway's Life")) == "B3/S23"
    assert str(get_rule("day and night")) == "B3678/S34678"
    assert get_rule("B36/S23").name == "HighLife"
    with pytest.raises(ValueError, match="Unknown rule 'nope'"):
        get_rule("nope")


def test_the_governing_bit_is_the_one_the_simulator_applies():
    """Next state == the rule's bit at governing_bit(state, count), for every cell (S_count alive, B_count dead)."""
    g = torch.Generator().manual_seed(3)
    boards = (torch.rand(16, 9, 11, generator=g) < 0.5).long()
    rules = torch.rand(16, 18, generator=g) < 0.5
    bit = governing_bit(boards, neighbour_counts(boards))
    expected = torch.gather(rules[:, None, None, :].expand(*boards.shape, -1), 3, bit[..., None])[..., 0]
    assert torch.equal(step(boards, rules).bool(), expected)
    assert governing_bit(torch.tensor([1, 0]), torch.tensor([3, 3])).tolist() == [3, 12]  # S3, B3
