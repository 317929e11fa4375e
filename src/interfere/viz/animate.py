"""Animations: rollouts (model next to simulator, mistakes in red) and figure sequences, as GIF/MP4."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_rgb
from PIL import Image, ImageDraw

from interfere.viz.style import ALIVE_COLOR, DEAD_COLOR, GRID_COLOR, WRONG_COLOR


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
    save_gif(frames, path, fps)
    written = [path]
    if mp4 and has_ffmpeg():
        mp4_path = path.with_suffix(".mp4")
        even = [f[: h - h % 2, : w - w % 2] for f in frames]  # H.264 wants even sizes
        imageio.mimsave(mp4_path, even, fps=fps, macro_block_size=1)
        written.append(mp4_path)
    return written


def save_gif(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """A looping GIF with one 256-colour palette for all frames, taken from every third pixel of every third
    row: the frames then only look their colours up in it (quantising each frame on its own, as imageio
    does, took 3-4x as long for a rollout's 33 frames)."""
    sample = Image.fromarray(np.concatenate([f[::3, ::3] for f in frames]))
    palette = sample.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000 / fps, loop=0)


def _rgb(color: str) -> np.ndarray:
    return (np.array(to_rgb(color)) * 255).astype(np.uint8)


def _panel(board: np.ndarray, wrong: np.ndarray | None, cell: int) -> np.ndarray:
    """``[H, W]`` 0/1 cells as an RGB image, ``cell`` pixels a cell; ``wrong`` cells in red."""
    image = np.where(board[..., None] == 1, _rgb(ALIVE_COLOR), _rgb(DEAD_COLOR))
    if wrong is not None:
        image = np.where(wrong[..., None], _rgb(WRONG_COLOR), image)
    return image.repeat(cell, 0).repeat(cell, 1)


def comparison_frames(model_states: torch.Tensor, true_states: torch.Tensor, title: str,
                      max_pixels: int = 320) -> list[np.ndarray]:
    """One frame per generation, drawn directly (no figure; fast for big boards and long rollouts):
    the model's board | the simulator's | their differences in red, under a line of text."""
    n, height, width = true_states.shape
    cell = max(1, max_pixels // max(height, width))
    gap = 6
    frames = []
    for t in range(n):
        ours, truth = model_states[t].numpy(), true_states[t].numpy()
        wrong = ours != truth
        panels = [_panel(ours, None, cell), _panel(truth, None, cell), _panel(np.zeros_like(truth), wrong, cell)]
        sep = np.full((height * cell, gap, 3), _rgb(GRID_COLOR), dtype=np.uint8)
        body = np.concatenate([panels[0], sep, panels[1], sep, panels[2]], axis=1)
        n_wrong = int(wrong.sum())
        status = f"{n_wrong} wrong" if n_wrong else "exact"
        frames.append(_captioned(body, f"{title}  gen {t}: {status}   (model | simulator | differences)",
                                 color=WRONG_COLOR if n_wrong else "black"))
    return frames


def _captioned(body: np.ndarray, title: str, footer: str = "", color: str = "black") -> np.ndarray:
    """An RGB image with a line of text above it (and a smaller grey one below)."""
    header, below = 22, 16 if footer else 0
    width = max(body.shape[1], 6 * max(len(title), len(footer)) + 8)
    image = Image.new("RGB", (width, body.shape[0] + header + below), "white")
    image.paste(Image.fromarray(body), (0, header))
    draw = ImageDraw.Draw(image)
    draw.text((4, 5), title, fill=color)
    if footer:
        draw.text((4, header + body.shape[0] + 3), footer, fill="#666666")
    return np.asarray(image)


def field_frames(fields: np.ndarray, titles: list[str], cmap: str, vmax: float, footer: str = "",
                 max_pixels: int = 320) -> list[np.ndarray]:
    """One frame per ``[H, W]`` field of ``fields``, coloured by ``cmap`` on one scale (0..vmax), drawn
    directly (no figure per frame), with its title above and a provenance line below."""
    colormap = plt.get_cmap(cmap)
    n, height, width = fields.shape
    cell = max(1, max_pixels // max(height, width))
    frames = []
    for field, title in zip(fields, titles):
        rgb = (colormap(np.clip(field / max(vmax, 1e-12), 0, 1))[..., :3] * 255).astype(np.uint8)
        frames.append(_captioned(rgb.repeat(cell, 0).repeat(cell, 1), title, footer))
    return frames
