"""The causal abstraction's map, drawn from its result alone: per variable, cases x sites, the IIA of each case's
cells at each site (the fit of the site's case group where it has one), the cells a site holds outlined."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from interfere.ca.rules import BIT_NAMES, N_COUNTS
from interfere.explore.alignment.sites import Site
from interfere.viz.style import ACCENT_2, INK, SEQ_CMAP, caption, save


def grid_of(entries: list[dict]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sites in order of computation, ``[case, site]`` IIA (of the site's group fit for its cases, of the all-case
    fit for the others; NaN: no changed pair of the case), ``[case, site]`` held)."""
    entries = sorted(entries, key=lambda e: Site.from_name(e["site"]))
    sites = [e["site"] for e in entries]
    iia = np.full((len(BIT_NAMES), len(sites)), np.nan)
    held = np.zeros_like(iia, dtype=bool)
    for j, e in enumerate(entries):
        per_case = {**(e.get("per_case_all") or {}), **(e.get("per_case") or {})}  # the group's fit over the rest
        for i, case in enumerate(BIT_NAMES):
            iia[i, j] = per_case.get(case, np.nan)
            held[i, j] = e.get("failed") is None and case in e.get("cases", [])
    return sites, iia, held


def map_figure(variables: dict[str, dict], out: Path, provenance: str) -> Path:
    """One panel per variable (module docstring)."""
    panels = [(v, grid_of(d["sites"])) for v, d in variables.items() if d["sites"]]
    width = max(len(p[1][0]) for p in panels) if panels else 1
    fig, axes = plt.subplots(len(panels) or 1, 1, figsize=(3.0 + 0.32 * width, 0.6 + 3.3 * max(1, len(panels))),
                             layout="constrained", squeeze=False)
    for ax, (variable, (sites, iia, held)) in zip(axes[:, 0], panels):
        im = ax.imshow(np.ma.masked_invalid(iia), cmap=SEQ_CMAP, vmin=0, vmax=1, aspect="auto")
        for i, j in zip(*np.nonzero(held)):
            ax.add_patch(Rectangle((j - 0.47, i - 0.45), 0.94, 0.9, fill=False, edgecolor=ACCENT_2, lw=1.6))
        ax.axhline(N_COUNTS - 0.5, color="white", lw=1.2)
        ax.set_xticks(range(len(sites)), sites, rotation=90, fontsize=6)
        ax.set_yticks(range(len(BIT_NAMES)), BIT_NAMES, fontsize=6)
        located = variables[variable]["located"]
        ax.set_title(f"{variable}: earliest site that holds it for some cases: {located or 'none'}",
                     fontsize=9, color=INK)
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01).set_label("IIA, changed pairs", fontsize=7)
    fig.suptitle("Where the algorithm's variables live: interchange accuracy on held-out rules, per case and site\n"
                 "outlined: held (IIA and both controls passed); blank: no changed pair of the case")
    caption(fig, provenance)
    return save(fig, out / "abstraction_map.png")
