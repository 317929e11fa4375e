"""H4's layer necessity: which layers the model needs, each layer's attention (all its heads) and its MLP
mean-ablated in turn, and how many layers it needs, every layer from L onward mean-ablated at once.

    python explorations/layers.py [--samples 64]

Each head's and MLP's output is replaced, at every position, by its mean over the examples themselves (mean
ablation: what the component computes from the input is removed, its average contribution kept); the accuracy of
the t+1 targets is reported per layer, next to the clean accuracy. A layer whose removal costs nothing is not
needed. A model whose layers are each unneeded may still need them together (a read-out spread over layers):
the truncation says how far the model must run. Any depth.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from interfere.explore.analysis import Examples, Want
from interfere.explore.common import add_samples_arg, parser, run_main
from interfere.explore.components import Component, accuracy, all_components, mean_ablation, reference_outputs
from interfere.model.life_model import LifeTransformer
from interfere.viz.style import ACCENT, ACCENT_2, CONTROL_COLOR, GUIDE_COLOR, caption, save

NAME = "layers"
LAYER_KEYS = ("attention_removed", "mlp_removed", "from_layer_removed", "clean_acc")  # what H4's tables show


@dataclass
class Params:
    samples: int = 64


@dataclass
class Result:
    samples: int
    clean_acc: float
    attention_removed: list[float]  # per layer: accuracy with all its heads mean-ablated
    mlp_removed: list[float]  # per layer: accuracy with its MLP mean-ablated
    from_layer_removed: list[float]  # per layer L: accuracy with every head and MLP of layers L.. mean-ablated


def wants(model: LifeTransformer, params: Params) -> list[Want]:
    return []  # interventions run their own forwards


def measure(model: LifeTransformer, ex: Examples, params: Params) -> Result:
    means = {c: o.mean(0) for c, o in reference_outputs(model, ex.tokens, all_components(model)).items()}
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    attention = [accuracy(model, ex, mean_ablation(means, [Component(layer, h) for h in range(n_heads)]))
                 for layer in range(n_layers)]
    mlps = [accuracy(model, ex, mean_ablation(means, [Component(layer)])) for layer in range(n_layers)]
    truncated = [accuracy(model, ex, mean_ablation(means, [c for c in means if c.layer >= layer]))
                 for layer in range(n_layers)]
    return Result(samples=len(ex), clean_acc=accuracy(model, ex), attention_removed=attention, mlp_removed=mlps,
                  from_layer_removed=truncated)


def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    n = len(result.mlp_removed)
    fig, ax = plt.subplots(figsize=(2.6 + 0.55 * n, 3.2), layout="constrained")
    x = np.arange(n)
    ax.bar(x - 0.2, result.attention_removed, 0.4, color=ACCENT, label="attention removed")
    ax.bar(x + 0.2, result.mlp_removed, 0.4, color=ACCENT_2, label="MLP removed")
    ax.plot(x, result.from_layer_removed, "-o", color=CONTROL_COLOR, ms=4, label="this layer and all after removed")
    ax.axhline(result.clean_acc, color=GUIDE_COLOR, ls="--", lw=1, label=f"clean {100 * result.clean_acc:.2f}%")
    ax.set_xticks(x, [f"L{i}" for i in range(n)])
    ax.set_ylim(0.4, 1.02)
    ax.set_ylabel("t+1 cell accuracy")
    ax.set_title("which layers the model needs (mean ablation)")
    ax.legend(frameon=False, fontsize=7, loc="lower left")
    caption(fig, provenance(samples=result.samples))
    return [save(fig, out / "layers_needed.png")]


def build_parser() -> argparse.ArgumentParser:
    p = parser("H4: which layers the model needs: each layer's attention and MLP mean-ablated in turn.")
    add_samples_arg(p, 64, 4)
    return p


def main(argv: list[str] | None = None) -> dict:
    return run_main(__spec__.name, argv)


if __name__ == "__main__":
    main()
