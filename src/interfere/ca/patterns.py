"""Known patterns: the project's pattern library (RLE files under ``ca/library/``), the small ones
used for tests, stamping and rollouts, and placing a pattern on a board with wrap-around."""

from __future__ import annotations

from pathlib import Path

import torch

from interfere.ca.rle import Pattern, RLEError, read_rle
from interfere.errors import UserError

LIBRARY = Path(__file__).parent / "library"  # classic patterns, entered by this project


def library_names() -> list[str]:
    """The patterns shipped with the package (``glider``, ``gosper_glider_gun``, ...)."""
    return sorted(p.stem for p in LIBRARY.glob("*.rle"))


def load_pattern(spec: str | Path) -> Pattern:
    """An RLE file's pattern, or a library pattern by name; ``RLEError`` naming the problem."""
    path = Path(spec)
    if path.suffix or path.is_file() or "/" in str(spec):
        return read_rle(path)
    if str(spec) in library_names():
        return read_rle(LIBRARY / f"{spec}.rle")
    raise RLEError(f"no pattern file {str(spec)!r} and no library pattern of that name; library: "
                   + ", ".join(library_names()))


def _cells(name: str) -> tuple[tuple[int, int], ...]:
    return tuple((r, c) for r, c in load_pattern(name).cells.nonzero().tolist())


# The small patterns stamped into training boards (data.pattern_frac) and rolled out by evaluation.
# In B3/S23 the glider travels (+1, +1) every 4 generations, the LWSS (0, -2).
PATTERNS: dict[str, tuple[tuple[int, int], ...]] = {
    name: _cells(name) for name in ("block", "blinker", "glider", "r_pentomino", "lwss")
}


def pattern(name: str) -> torch.Tensor:
    """The pattern's cells as a ``[n, 2]`` tensor of (row, col) offsets from its top-left."""
    if name not in PATTERNS:
        raise UserError(f"Unknown pattern {name!r}; choose from {sorted(PATTERNS)}")
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


MARGIN = 8  # empty cells around a pattern on the smallest board that fits it


def fitting_size(pattern: Pattern, margin: int = MARGIN) -> tuple[int, int]:
    """The smallest board that holds the pattern with ``margin`` empty cells on every side."""
    return pattern.height + 2 * margin, pattern.width + 2 * margin


def centred(pattern: Pattern, height: int, width: int) -> torch.Tensor:
    """An ``[height, width]`` int64 board with the pattern in its middle; ``RLEError`` if it does not fit."""
    if pattern.height > height or pattern.width > width:
        raise RLEError(f"the pattern ({pattern.height}x{pattern.width}) does not fit a {height}x{width} board; "
                       f"choose a size of at least {pattern.height}x{pattern.width}")
    board = torch.zeros(height, width, dtype=torch.long)
    top, left = (height - pattern.height) // 2, (width - pattern.width) // 2
    board[top : top + pattern.height, left : left + pattern.width] = pattern.cells
    return board
