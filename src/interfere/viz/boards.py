"""Drawing boards: cells as a grid, optional wrong-cell highlight and a marked query cell."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from interfere.viz.style import ACCENT_2, BOARD_CMAP, GRID_COLOR, SEQ_CMAP, WRONG_COLOR


def grid_lines(ax: Axes, height: int, width: int) -> None:
    """Thin cell borders and no ticks: the board reads as a grid, not as an image. The borders are two
    line collections, not minor-tick grid lines: every tick is an artist of its own that the layout
    measures and the renderer draws."""
    edges = np.arange(-0.5, max(height, width), 1)
    ax.vlines(edges[: width + 1], -0.5, height - 0.5, color=GRID_COLOR, linewidth=0.6, zorder=1.5)
    ax.hlines(edges[: height + 1], -0.5, width - 0.5, color=GRID_COLOR, linewidth=0.6, zorder=1.5)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)  # row 0 on top, as imshow draws it
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(GRID_COLOR)


def mark_cell(ax: Axes, row: int, col: int, color: str = ACCENT_2, lw: float = 2.0) -> None:
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor=color, linewidth=lw))


def draw_board(ax: Axes, board: torch.Tensor | np.ndarray, title: str = "",
               wrong: torch.Tensor | np.ndarray | None = None) -> None:
    """A 0/1 board; cells in ``wrong`` get a red outline and fill."""
    board = np.asarray(board)
    ax.imshow(board, cmap=BOARD_CMAP, vmin=0, vmax=1, interpolation="nearest")
    if wrong is not None:
        for r, c in np.argwhere(np.asarray(wrong)):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=WRONG_COLOR, alpha=0.55,
                                   edgecolor=WRONG_COLOR, linewidth=1.5))
    grid_lines(ax, *board.shape)
    if title:
        ax.set_title(title)


def draw_field(ax: Axes, field: torch.Tensor | np.ndarray, title: str = "", cmap: str = SEQ_CMAP,
               vmin: float | None = None, vmax: float | None = None, query: tuple[int, int] | None = None,
               cbar_label: str | None = None, extent_labels: bool = True):
    """A scalar field over the board (attention, contribution, ...) with a colour bar."""
    field = np.asarray(field, dtype=np.float32)
    im = ax.imshow(field, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    grid_lines(ax, *field.shape)
    if extent_labels:
        ax.set_xlabel("column")
        ax.set_ylabel("row")
    if query is not None:
        mark_cell(ax, *query)
    if title:
        ax.set_title(title)
    if cbar_label is not None:
        cbar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cbar.set_label(cbar_label)
    return im


def head_grid(ax: Axes, values: torch.Tensor | np.ndarray, title: str, cbar_label: str, cmap: str = SEQ_CMAP,
              vmin: float | None = 0.0, vmax: float | None = 1.0, annotate: bool = True):
    """A layer x head heatmap with every cell's value written in it, for per-head numbers."""
    values = np.asarray(values, dtype=np.float32)
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    lo, hi = im.get_clim()
    if annotate:
        for (i, j), v in np.ndenumerate(values):
            dark = (v - lo) / max(hi - lo, 1e-12) < 0.6 if cmap == SEQ_CMAP else False
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label(cbar_label)
    return im
