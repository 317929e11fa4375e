"""One plotting style for every figure: colours, fonts, colour maps, captions, saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

DPI = 150
DEAD_COLOR = "#f4f1ea"
ALIVE_COLOR = "#1d3557"
WRONG_COLOR = "#e63946"
GRID_COLOR = "#c9c3b6"
ACCENT = "#457b9d"
ACCENT_2 = "#2a9d8f"  # a second series, and the marked query cell
CONTROL_COLOR = "#a8a8a8"  # the random-init control
SHUFFLED_COLOR = "#e9c46a"  # the shuffled-label control
BIRTH_COLOR = "#e76f51"  # B (birth) rule bits; S bits use ACCENT
GUIDE_COLOR = "#cccccc"  # chance levels and baselines drawn behind the data
INK = "#222222"  # arrows and annotations
DEAD_POINT_COLOR = "#b8b2a6"  # scatter points of dead cells
BOARD_CMAP = ListedColormap([DEAD_COLOR, ALIVE_COLOR])
SEQ_CMAP = "magma"  # attention and other non-negative fields
DIV_CMAP = "RdBu_r"  # signed fields, centred on zero
COUNT_PALETTE = plt.get_cmap("viridis", 9)  # neighbour counts 0..8

plt.rcParams.update({
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.facecolor": "white",
    "figure.constrained_layout.use": True,  # titles, colour bars, legends and captions never overlap or clip,
                                            # without savefig's tight bounding box (a measuring pass per save)
})


def caption(fig: plt.Figure, text: str) -> None:
    """A small grey provenance line (checkpoint, step, seed, layer/head) under the figure, in the
    constrained layout's space (the figure's ``supxlabel``)."""
    fig.supxlabel(text, fontsize=7, color="#666666", wrap=True)


def save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
