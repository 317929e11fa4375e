"""The sequence contract (docs/design.md, "The sequence"): vocabulary, positions, segments, the mask.

::

    <BOS> <R0_b0> .. <R17_b17> <SEP> t[0,0] .. t[H-1,W-1] <SEP2> y1[0,0] .. y1[H-1,W-1] [<SEP3> y2 ..] [<SEP4> y3 ..]

Every other module asks this one where things are; nothing else does index arithmetic on
sequences.

Attention (:meth:`SequenceLayout.attention_mask`): the *context* (prefix, board and the
separators) attends to itself bidirectionally, because a grid has no reading order and a cell's
future depends on neighbours on every side; a target attends to the context and to itself only,
so targets never see each other (or their labels) and every target is predicted independently
from the rule and the board at t.

With a *window* of radius r (size-free models, ``model.positions: window``) attention is also
local: the physics tokens (BOS, rules, separators) attend only to each other, and a board cell
or a target attends to the physics tokens and to the board cells at most r rows and r columns
away on the torus (plus, for a target, itself). Nothing a cell computes then depends on the
board's size, only on its wrapped neighbourhood (:meth:`SequenceLayout.window_offsets`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import torch

from interfere.ca.rules import N_RULE_BITS
from interfere.errors import UserError

SPECIAL_TOKENS = ("<BOS>", "<SEP>", "<SEP2>", "<SEP3>", "<SEP4>", "<MASK>")
VOCAB: tuple[str, ...] = (
    ("0", "1")
    + SPECIAL_TOKENS
    + tuple(f"<R{r}_{v}>" for r in range(N_RULE_BITS) for v in (0, 1))
)
TOKEN_ID: dict[str, int] = {tok: i for i, tok in enumerate(VOCAB)}
DEAD, ALIVE = TOKEN_ID["0"], TOKEN_ID["1"]  # also the labels: a cell's state is its token id
BOS, SEP, MASK = TOKEN_ID["<BOS>"], TOKEN_ID["<SEP>"], TOKEN_ID["<MASK>"]
TARGET_SEPS = (TOKEN_ID["<SEP2>"], TOKEN_ID["<SEP3>"], TOKEN_ID["<SEP4>"])
RULE_TOKEN_BASE = TOKEN_ID["<R0_0>"]
MAX_STEPS = len(TARGET_SEPS)
PREFIX_POS = (0, 0)  # the fixed 2D position of every non-grid token

SEG_PHYSICS, SEG_BOARD, SEG_TARGET = 0, 1, 2  # target k (t+1+k) has segment SEG_TARGET + k
IGNORE = -100


def rule_token(bit: int | torch.Tensor, value: int | torch.Tensor) -> int | torch.Tensor:
    """Token id of ``<R{bit}_{value}>`` (elementwise for tensors)."""
    return RULE_TOKEN_BASE + 2 * bit + value


def window_shifts(window: int) -> list[tuple[int, int]]:
    """The (row, col) offsets of a window of radius ``window``, in the index order of
    :meth:`SequenceLayout.window_offsets`."""
    span = range(-window, window + 1)
    return [(dr, dc) for dr in span for dc in span]


class Encoded(NamedTuple):
    """A batch of sequences: ``tokens``, ``labels`` (IGNORE off-target) and the ``loss_mask``."""

    tokens: torch.Tensor  # [N, T] int64
    labels: torch.Tensor  # [N, T] int64, the state (0/1) at target positions, IGNORE elsewhere
    loss_mask: torch.Tensor  # [N, T] bool


@dataclass(frozen=True)
class SequenceLayout:
    """Where everything sits in a sequence for boards of ``height x width`` and ``multi_steps`` targets."""

    height: int
    width: int
    multi_steps: int = 1

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise UserError(f"Board must be at least 1x1, got {self.height}x{self.width}")
        if not 1 <= self.multi_steps <= MAX_STEPS:
            raise UserError(f"multi_steps must be in 1..{MAX_STEPS}, got {self.multi_steps}")

    # --- named positions -------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return self.height * self.width

    @property
    def bos(self) -> int:
        return 0

    @property
    def rule(self) -> slice:
        return slice(1, 1 + N_RULE_BITS)

    @property
    def sep(self) -> int:
        return self.rule.stop

    @property
    def board(self) -> slice:
        return slice(self.sep + 1, self.sep + 1 + self.n_cells)

    @property
    def prefix(self) -> slice:
        """BOS, the rule tokens and SEP: everything before the board."""
        return slice(0, self.board.start)

    @property
    def target_seps(self) -> tuple[int, ...]:
        return tuple(self.board.stop + k * (1 + self.n_cells) for k in range(self.multi_steps))

    @property
    def targets(self) -> tuple[slice, ...]:
        """``targets[k]`` holds the predictions of the state at t+1+k."""
        return tuple(slice(s + 1, s + 1 + self.n_cells) for s in self.target_seps)

    @property
    def seq_len(self) -> int:
        return self.targets[-1].stop

    @property
    def n_targets(self) -> int:
        """Target positions (every step's), counted without building an index."""
        return self.multi_steps * self.n_cells

    @property
    def n_physics(self) -> int:
        """Physics positions (BOS, rule tokens, separators), counted without building an index."""
        return self.seq_len - self.n_cells - self.n_targets

    @cached_property
    def target_index(self) -> torch.Tensor:
        """All target positions in order (step, row, col): ``[multi_steps * H * W]`` int64."""
        return torch.cat([torch.arange(s.start, s.stop) for s in self.targets])

    @cached_property
    def context_index(self) -> torch.Tensor:
        """All non-target positions (prefix, board, separators) in order: ``[T - K*H*W]`` int64."""
        return torch.nonzero(~self.is_target()).flatten()

    def cell_index(self, row: int, col: int) -> int:
        """Row-major index of cell (row, col) within a board block (and within ``[H*W]`` maps)."""
        self._check_cell(row, col)
        return row * self.width + col

    def target_position(self, row: int, col: int, step: int = 0) -> int:
        """Sequence position of the target for cell (row, col) at t+1+step."""
        return self.targets[step].start + self.cell_index(row, col)

    def board_position(self, row: int, col: int) -> int:
        """Sequence position of board cell (row, col) at t."""
        return self.board.start + self.cell_index(row, col)

    def _check_cell(self, row: int, col: int) -> None:
        if not (0 <= row < self.height and 0 <= col < self.width):
            raise UserError(
                f"cell ({row}, {col}) is outside the {self.height}x{self.width} board "
                f"(rows 0..{self.height - 1}, cols 0..{self.width - 1})"
            )

    # --- per-position tables ---------------------------------------------------------------
    def pos2d(self) -> torch.Tensor:
        """``[T, 2]`` int64 (row, col) of every position; prefix and separators sit at PREFIX_POS."""
        pos = torch.tensor(PREFIX_POS, dtype=torch.long).repeat(self.seq_len, 1)
        rows = torch.arange(self.height).repeat_interleave(self.width)
        cols = torch.arange(self.width).repeat(self.height)
        grid = torch.stack([rows, cols], dim=1)
        for s in (self.board, *self.targets):
            pos[s] = grid
        return pos

    def segment_ids(self) -> torch.Tensor:
        """``[T]`` int64: 0 physics (BOS, rules, separators), 1 the board at t, 2+k targets t+1+k."""
        seg = torch.full((self.seq_len,), SEG_PHYSICS, dtype=torch.long)
        seg[self.board] = SEG_BOARD
        for k, s in enumerate(self.targets):
            seg[s] = SEG_TARGET + k
        return seg

    @property
    def n_segments(self) -> int:
        return SEG_TARGET + self.multi_steps

    def with_size(self, height: int, width: int) -> SequenceLayout:
        """The same layout for boards of another size."""
        return SequenceLayout(height, width, self.multi_steps)

    def is_target(self) -> torch.Tensor:
        """``[T]`` bool, True at target positions."""
        return self.segment_ids() >= SEG_TARGET

    def attention_mask(self, window: int | None = None) -> torch.Tensor:
        """``[T_query, T_key]`` bool, True where the query may attend to the key (module docstring);
        ``window``: the radius of a local window, None for global attention."""
        t = self.seq_len
        if window is None:
            context = ~self.is_target()
            return context[None, :].expand(t, t) | torch.eye(t, dtype=torch.bool)
        physics = self.segment_ids() == SEG_PHYSICS
        return physics[None, :] | (self.window_offsets(window) >= 0) | torch.eye(t, dtype=torch.bool)

    def check_window(self, window: int) -> None:
        """A window must fit on the board without wrapping onto itself."""
        if min(self.height, self.width) < 2 * window + 1:
            raise UserError(f"{self.height}x{self.width} boards are smaller than the model's "
                             f"{2 * window + 1}x{2 * window + 1} attention window (model.window={window}): "
                             f"use boards of at least {2 * window + 1}x{2 * window + 1}")

    def window_offsets(self, window: int) -> torch.Tensor:
        """``[T_query, T_key]`` int64: for a board or target query and a board key at most ``window``
        cells away on the torus, the offset's index ``(dr + window) * (2 * window + 1) + (dc + window)``
        (``dr``, ``dc``: the key's row and column minus the query's, wrapped to ``-window..window``);
        -1 for every other pair. The order of :func:`window_shifts`."""
        self.check_window(window)
        pos, t = self.pos2d(), self.seq_len
        size = torch.tensor([self.height, self.width])
        delta = (pos[None, :, :] - pos[:, None, :] + window) % size - window  # [q, k, 2], key minus query
        near = (delta.abs() <= window).all(-1)
        index = (delta[..., 0] + window) * (2 * window + 1) + (delta[..., 1] + window)
        grid_query = self.segment_ids() != SEG_PHYSICS
        board_key = self.segment_ids() == SEG_BOARD
        use = near & grid_query[:, None] & board_key[None, :]
        return torch.where(use, index, torch.full((t, t), -1))

    @cached_property
    def physics_index(self) -> torch.Tensor:
        """The positions of the physics tokens (BOS, rules, SEP and the target separators): ``[P]``."""
        return torch.nonzero(self.segment_ids() == SEG_PHYSICS).flatten()

    # --- encode / decode -------------------------------------------------------------------
    def encode(
        self,
        rules: torch.Tensor,
        board_t: torch.Tensor,
        future_boards: torch.Tensor | None = None,
    ) -> Encoded:
        """Sequences for ``[N, 18]`` rule bits, ``[N, H, W]`` boards at t and ``[N, K, H, W]`` futures.

        Target inputs are ``<MASK>``; labels are the future states (omit ``future_boards`` to
        encode prompts only: the labels are then IGNORE and the loss mask is empty).
        """
        n = board_t.shape[0]
        if board_t.shape[1:] != (self.height, self.width):
            raise ValueError(
                f"boards are {tuple(board_t.shape[1:])} but the layout is {self.height}x{self.width}"
            )
        if rules.shape != (n, N_RULE_BITS):
            raise ValueError(f"rules must be [{n}, {N_RULE_BITS}] bits, got {tuple(rules.shape)}")
        device = board_t.device
        tokens = torch.full((n, self.seq_len), MASK, dtype=torch.long, device=device)
        tokens[:, self.bos] = BOS
        bit_ids = torch.arange(N_RULE_BITS, device=device)
        tokens[:, self.rule] = RULE_TOKEN_BASE + 2 * bit_ids + rules.long()
        tokens[:, self.sep] = SEP
        tokens[:, self.board] = board_t.reshape(n, -1).long()
        for k, s in enumerate(self.target_seps):
            tokens[:, s] = TARGET_SEPS[k]
        labels = torch.full_like(tokens, IGNORE)
        if future_boards is not None:
            if future_boards.shape != (n, self.multi_steps, self.height, self.width):
                raise ValueError(
                    f"future_boards must be [{n}, {self.multi_steps}, {self.height}, {self.width}], "
                    f"got {tuple(future_boards.shape)}"
                )
            labels[:, self.target_index.to(device)] = future_boards.reshape(n, -1).long()
        return Encoded(tokens, labels, labels != IGNORE)

    def decode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, T]`` tokens -> (``[N, 18]`` bool rule bits, ``[N, H, W]`` int64 board at t)."""
        if tokens.shape[-1] != self.seq_len:
            raise ValueError(f"sequences have length {tokens.shape[-1]}, layout expects {self.seq_len}")
        rules = (tokens[:, self.rule] - RULE_TOKEN_BASE) % 2 == 1
        board = tokens[:, self.board].reshape(-1, self.height, self.width)
        return rules, board

    def first_step(self, per_target: torch.Tensor) -> torch.Tensor:
        """Values at ``target_index`` (``[N, K*H*W, ...]``) -> those of the t+1 targets, ``[N, H*W, ...]``."""
        return per_target[:, : self.n_cells]

    def group_positions(self, group: str) -> torch.Tensor:
        """The sequence positions of a group, in cell order for ``board`` and ``targets`` (the t+1 targets);
        ``rule`` (the 18 rule tokens), ``separators`` (BOS and the separators), ``physics`` (both)."""
        if group == "board":
            return torch.arange(self.board.start, self.board.stop)
        if group == "targets":
            return torch.arange(self.targets[0].start, self.targets[0].stop)
        if group == "rule":
            return torch.arange(self.rule.start, self.rule.stop)
        physics = self.physics_index
        if group == "separators":
            return physics[(physics < self.rule.start) | (physics >= self.rule.stop)]
        if group == "physics":
            return physics
        raise ValueError(f"unknown group {group!r}: board, targets, rule, separators or physics")

    def offsets_3x3(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``([cells, cells] bool, [cells, cells] int64)``: whether the key cell lies in the query cell's 3x3 block
        on the torus, and its index there (row-major, 4 = the cell itself)."""
        rc = self.pos2d()[self.board]  # [cells, 2] (row, col)
        size = torch.tensor([self.height, self.width])
        delta = (rc[None, :, :] - rc[:, None, :] + 1) % size - 1  # key minus query, wrapped to -1..size-2
        near = (delta <= 1).all(-1)
        return near, (delta[..., 0] + 1) * 3 + delta[..., 1] + 1

    def labels_to_boards(self, per_target: torch.Tensor) -> torch.Tensor:
        """Values at ``target_index`` (``[N, K*H*W, ...]``) -> ``[N, K, H, W, ...]``."""
        n = per_target.shape[0]
        return per_target.reshape(n, self.multi_steps, self.height, self.width, *per_target.shape[2:])
