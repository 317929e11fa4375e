"""Known patterns (LifeWiki) for tests, stamping and rollouts, placeable with wrap-around."""

from __future__ import annotations

import torch


def _cells(picture: str) -> tuple[tuple[int, int], ...]:
    rows = picture.strip().splitlines()
    return tuple((r, c) for r, row in enumerate(rows) for c, ch in enumerate(row.strip()) if ch == "O")


PATTERNS: dict[str, tuple[tuple[int, int], ...]] = {
    "block": _cells("OO\nOO"),
    "blinker": _cells("OOO"),
    "glider": _cells(".O.\n..O\nOOO"),  # travels (+1, +1) every 4 generations in B3/S23
    "r_pentomino": _cells(".OO\nOO.\n.O."),
    "lwss": _cells(".O..O\nO....\nO...O\nOOOO."),  # travels (0, -2) every 4 generations
}


def pattern(name: str) -> torch.Tensor:
    """The pattern's cells as a ``[n, 2]`` tensor of (row, col) offsets from its top-left."""
    if name not in PATTERNS:
        raise ValueError(f"Unknown pattern {name!r}; choose from {sorted(PATTERNS)}")
    return torch.tensor(PATTERNS[name], dtype=torch.long)


def place(name: str, height: int, width: int, top: int = 0, left: int = 0) -> torch.Tensor:
    """An empty ``[height, width]`` int64 board with the pattern stamped at (top, left), wrapping."""
    board = torch.zeros(height, width, dtype=torch.long)
    cells = pattern(name)
    board[(cells[:, 0] + top) % height, (cells[:, 1] + left) % width] = 1
    return board


def stamp(
    boards: torch.Tensor, name: str, tops: torch.Tensor, lefts: torch.Tensor, where: torch.Tensor
) -> torch.Tensor:
    """Stamp the pattern on the boards selected by ``where`` (``[N]`` bool), at per-board offsets.

    Vectorised over boards; the stamp overwrites cells to alive and wraps around the torus.
    """
    n, h, w = boards.shape
    cells = pattern(name).to(boards.device)
    rows = (tops[:, None] + cells[None, :, 0]) % h
    cols = (lefts[:, None] + cells[None, :, 1]) % w
    idx = torch.arange(n, device=boards.device)[:, None].expand_as(rows)
    out = boards.clone()
    sel = where[:, None].expand_as(rows)
    out[idx[sel], rows[sel], cols[sel]] = 1
    return out
