"""Animations: rollouts (model next to simulator, mistakes in red) and figure sequences, as GIF/MP4."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import matplotlib.pyplot as plt
import numpy as np
import torch

from interfere.viz.boards import draw_board
from interfere.viz.style import WRONG_COLOR


def figure_to_array(fig: plt.Figure) -> np.ndarray:
    fig.canvas.draw()
    frame = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return frame


def has_ffmpeg() -> bool:
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
        return True
    except Exception:  # the package is optional, and its binary may be absent
        return False


def write_frames(frames: list[np.ndarray], path: Path, fps: float = 4.0, mp4: bool = True) -> list[Path]:
    """GIF always; MP4 next to it when imageio-ffmpeg is present. Returns the files written."""
    path = Path(path).with_suffix(".gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    h = min(f.shape[0] for f in frames)
    w = min(f.shape[1] for f in frames)
    frames = [f[:h, :w] for f in frames]
    imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    written = [path]
    if mp4 and has_ffmpeg():
        mp4_path = path.with_suffix(".mp4")
        even = [f[: h - h % 2, : w - w % 2] for f in frames]  # H.264 wants even sizes
        imageio.mimsave(mp4_path, even, fps=fps, macro_block_size=1)
        written.append(mp4_path)
    return written


def rollout_frames(model_states: torch.Tensor, true_states: torch.Tensor, title: str) -> list[np.ndarray]:
    """One frame per generation: the model's board, the simulator's, and their difference."""
    frames = []
    for t in range(len(true_states)):
        wrong = (model_states[t] != true_states[t]).numpy()
        fig, axes = plt.subplots(1, 2, figsize=(5.2, 2.9))
        draw_board(axes[0], model_states[t].numpy(), "model", wrong=wrong)
        draw_board(axes[1], true_states[t].numpy(), "simulator")
        n_wrong = int(wrong.sum())
        status = f"{n_wrong} wrong cell{'s' * (n_wrong != 1)}" if n_wrong else "exact"
        fig.suptitle(f"{title}   generation {t}   ({status})", fontsize=9,
                     color=WRONG_COLOR if n_wrong else "black")
        frames.append(figure_to_array(fig))
    return frames
