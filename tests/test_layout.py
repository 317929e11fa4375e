import pytest
import torch

from interfere.ca import step
from interfere.data.layout import (
    IGNORE,
    MASK,
    SEG_BOARD,
    SEG_PHYSICS,
    SEG_TARGET,
    VOCAB,
    SequenceLayout,
)


@pytest.mark.parametrize("h,w,k", [(8, 8, 1), (4, 6, 1), (1, 5, 2), (16, 16, 3), (3, 3, 3)])
def test_sequence_length(h, w, k):
    layout = SequenceLayout(h, w, k)
    assert layout.seq_len == 1 + 18 + 1 + h * w + k * (1 + h * w)
    assert len(layout.target_index) == k * h * w


def _example(layout, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    rules = torch.rand(n, 18, generator=g) < 0.5
    board = (torch.rand(n, layout.height, layout.width, generator=g) < 0.5).long()
    futures, x = [], board
    for _ in range(layout.multi_steps):
        x = step(x, rules)
        futures.append(x)
    return rules, board, torch.stack(futures, 1)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_encode_decode_round_trip_and_labels(k):
    layout = SequenceLayout(5, 7, k)
    rules, board, futures = _example(layout)
    enc = layout.encode(rules, board, futures)
    got_rules, got_board = layout.decode(enc.tokens)
    assert torch.equal(got_rules, rules) and torch.equal(got_board, board)
    assert (enc.tokens[:, layout.target_index] == MASK).all()
    assert torch.equal(layout.labels_to_boards(enc.labels[:, layout.target_index]), futures)
    assert (enc.labels[~enc.loss_mask] == IGNORE).all()
    assert enc.loss_mask.sum() == 5 * k * 35
    assert all(VOCAB[t].startswith("<R") for t in enc.tokens[0, layout.rule].tolist())


def test_batch_encoding_equals_one_by_one():
    layout = SequenceLayout(4, 4, 2)
    rules, board, futures = _example(layout, n=6)
    batch = layout.encode(rules, board, futures)
    for i in range(6):
        one = layout.encode(rules[i : i + 1], board[i : i + 1], futures[i : i + 1])
        assert torch.equal(one.tokens[0], batch.tokens[i]) and torch.equal(one.labels[0], batch.labels[i])


def test_attention_mask_hides_targets():
    layout = SequenceLayout(3, 4, 3)
    mask = layout.attention_mask()
    target = layout.is_target()
    for q in range(layout.seq_len):
        visible_targets = set(torch.nonzero(mask[q] & target).flatten().tolist())
        assert visible_targets <= {q}
        assert mask[q, ~target].all()  # every query sees the whole context
    assert mask.diagonal().all()


def test_pos2d_and_segments():
    layout = SequenceLayout(3, 5, 2)
    pos, seg = layout.pos2d(), layout.segment_ids()
    for r in range(3):
        for c in range(5):
            b = layout.board_position(r, c)
            assert pos[b].tolist() == [r, c] and seg[b] == SEG_BOARD
            assert b == layout.board.start + layout.cell_index(r, c)
            for k in range(2):
                t = layout.target_position(r, c, k)
                assert torch.equal(pos[t], pos[b]) and seg[t] == SEG_TARGET + k
    assert (seg[layout.prefix] == SEG_PHYSICS).all()
    assert all(seg[s] == SEG_PHYSICS for s in layout.target_seps)
    with pytest.raises(ValueError, match="outside the 3x5 board"):
        layout.target_position(3, 0)
    with pytest.raises(ValueError, match="outside the 3x5 board"):
        layout.cell_index(0, 5)


def test_bad_layouts_and_shapes():
    with pytest.raises(ValueError, match="multi_steps"):
        SequenceLayout(4, 4, 4)
    layout = SequenceLayout(4, 4)
    with pytest.raises(ValueError, match="layout is 4x4"):
        layout.encode(torch.zeros(1, 18, dtype=torch.bool), torch.zeros(1, 5, 5))
