"""Rule-token geometry: how the model embeds the 18 rule bits.

    python explorations/rule_vectors.py [--source embed|resid0]

For each bit r, the difference vector ``<Rr_1> - <Rr_0>`` taken from ``W_E`` (``embed``) or from the
residual at the rule positions after layer 0 (``resid0``: the mean over boards whose bit r has
that value). Figures: the 18 x 18 cosine-similarity heatmap of the difference vectors (S0..S8,
B0..B8), and a PCA scatter of the 36 rule tokens labelled by bit with arrows ``<Rr_0> -> <Rr_1>``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.decomposition import PCA

from interfere.ca.rules import BIT_NAMES, N_COUNTS, N_RULE_BITS
from interfere.data.layout import rule_token
from interfere.explore.analysis import Examples, Want, at_positions
from interfere.explore.common import Context, add_samples_arg, parser, run_main
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer
from interfere.viz.style import ACCENT, BIRTH_COLOR, DIV_CMAP, caption, save

NAME = "rule_vectors"
SURVIVE_COLOR = ACCENT


@dataclass
class Params:
    samples: int = 128
    source: str = "embed"  # embed: W_E | resid0: the residual at the rule positions after layer 0
    seed: int = 0  # the PCA's


@dataclass
class Result:
    source: str
    vectors: list  # [18][2][d_model]: <Rr_v> for every bit r and value v
    cosine: list  # [18][18] of the difference vectors <Rr_1> - <Rr_0>
    diff_norms: list[float]
    mean_abs_offdiag_cosine: float
    mean_cosine_within_S: float
    mean_cosine_within_B: float
    mean_cosine_S_vs_B: float
    pca_explained_variance: list[float]
    pca_xy: list  # [18][2][2]: the 36 tokens on the first two principal components


RESID0 = act_name("resid_post", 0)


def wants(model: LifeTransformer, params: Params) -> list[Want]:
    return [(RESID0, at_positions("rule", model.layout.rule))] if params.source == "resid0" else []


def token_vectors(model: LifeTransformer, ex: Examples, params: Params) -> torch.Tensor:
    """``[18, 2, d_model]``: the vector of ``<Rr_v>`` for every bit r and value v."""
    if params.source == "embed":
        ids = torch.tensor([[rule_token(r, v) for v in (0, 1)] for r in range(N_RULE_BITS)])
        return model.embed.W_E[ids].detach().float().cpu()
    ((hook, view),) = wants(model, params)
    resid = ex.act(hook, view)
    out = torch.zeros(N_RULE_BITS, 2, resid.shape[-1])
    for v in (0, 1):
        sel = (ex.rules == bool(v)).float()  # [batch, 18]
        out[:, v] = (resid * sel[..., None]).sum(0) / sel.sum(0).clamp_min(1)[:, None]
    return out


def cosine_matrix(diffs: torch.Tensor) -> torch.Tensor:
    unit = diffs / diffs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return unit @ unit.T


def measure(model: LifeTransformer, ex: Examples, params: Params) -> Result:
    vecs = token_vectors(model, ex, params)
    diffs = vecs[:, 1] - vecs[:, 0]
    cos = cosine_matrix(diffs)
    flat = vecs.reshape(-1, vecs.shape[-1]).numpy()
    pca = PCA(n_components=2, random_state=params.seed).fit(flat)
    off_diag = cos[~torch.eye(N_RULE_BITS, dtype=torch.bool)]
    s_block = cos[:N_COUNTS, :N_COUNTS][~torch.eye(N_COUNTS, dtype=torch.bool)]
    b_block = cos[N_COUNTS:, N_COUNTS:][~torch.eye(N_COUNTS, dtype=torch.bool)]
    return Result(
        source=params.source, vectors=vecs.tolist(), cosine=cos.tolist(), diff_norms=diffs.norm(dim=-1).tolist(),
        mean_abs_offdiag_cosine=float(off_diag.abs().mean()), mean_cosine_within_S=float(s_block.mean()),
        mean_cosine_within_B=float(b_block.mean()), mean_cosine_S_vs_B=float(cos[:N_COUNTS, N_COUNTS:].mean()),
        pca_explained_variance=np.asarray(pca.explained_variance_ratio_).tolist(),
        pca_xy=pca.transform(flat).reshape(N_RULE_BITS, 2, 2).tolist())


def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    where = "W_E" if result.source == "embed" else "residual after layer 0"
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = ax.imshow(np.array(result.cosine), cmap=DIV_CMAP, vmin=-1, vmax=1)
    ax.set_xticks(range(N_RULE_BITS), BIT_NAMES, rotation=90)
    ax.set_yticks(range(N_RULE_BITS), BIT_NAMES)
    ax.axhline(N_COUNTS - 0.5, color="black", lw=0.8)
    ax.axvline(N_COUNTS - 0.5, color="black", lw=0.8)
    ax.set_title(f"cosine similarity of <Rr_1> − <Rr_0> ({where})")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("cosine similarity")
    caption(fig, provenance(source=result.source))
    files = [save(fig, out / f"rule_diff_cosine_{result.source}.png")]
    xy, var = np.array(result.pca_xy), result.pca_explained_variance
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    for r in range(N_RULE_BITS):
        color = SURVIVE_COLOR if r < N_COUNTS else BIRTH_COLOR
        (x0, y0), (x1, y1) = xy[r]
        ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": color, "alpha": 0.6})
        ax.scatter([x0], [y0], s=22, facecolors="white", edgecolors=color, zorder=3)
        ax.scatter([x1], [y1], s=22, color=color, zorder=3)
        ax.text(x1, y1, f" {BIT_NAMES[r]}", fontsize=7, color=color, va="center")
    ax.scatter([], [], s=22, facecolors="white", edgecolors="grey", label="<Rr_0> (bit off)")
    ax.scatter([], [], s=22, color="grey", label="<Rr_1> (bit on)")
    ax.plot([], [], color=SURVIVE_COLOR, label="S bits (survival)")
    ax.plot([], [], color=BIRTH_COLOR, label="B bits (birth)")
    ax.legend(frameon=False, fontsize=7)
    ax.set_xlabel(f"PC1 ({100 * var[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * var[1]:.1f}% of variance)")
    ax.set_title(f"the 36 rule tokens ({where}), arrows <Rr_0> → <Rr_1>")
    caption(fig, provenance(source=result.source))
    files.append(save(fig, out / f"rule_tokens_pca_{result.source}.png"))
    return files


def params_from_args(args: argparse.Namespace, ctx: Context, thresholds: dict) -> Params:
    return Params(samples=args.samples, source=args.source, seed=ctx.seed)


def build_parser() -> argparse.ArgumentParser:
    p = parser("Rule-token geometry: cosine similarity and PCA of the 36 rule tokens.")
    p.add_argument("--source", choices=["embed", "resid0"], default="embed")
    add_samples_arg(p, 128, 4, "boards, for --source resid0")
    return p


def main(argv: list[str] | None = None) -> dict:
    return run_main(__spec__.name, argv)


if __name__ == "__main__":
    main()
