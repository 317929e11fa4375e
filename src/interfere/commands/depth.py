"""H4 at any depth, across models: each layer's locality, probes, logit lens and necessity, the H4 verdict, for a
trained model and its controls side by side (issue 35).

    python -m interfere depth --ckpt checkpoints/cpu_deep_seed0/latest.pt [--compare checkpoints/<demo>/latest.pt]
                              [--samples 128] [--out DIR]

Controls, built from the checkpoint itself (never trained): a random initialisation of the same shape, and the
trained model with its late half of layers re-initialised ("later layers never trained"). For each model the
report's own analyses (H1's attention maps, H2's probes, the logit lens, the layers' necessity; their registry
entries) run on the same boards, and :func:`interfere.report.verdicts.verdict_h4` decides H4; a figure draws
locality and probe quality by layer for every model. Writes ``depth.md``, ``depth_by_layer.png`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from interfere.cli import (
    add_checkpoint_args,
    add_thresholds_arg,
    command_line,
    exit_on_user_error,
    load_model_from_args,
    thresholds_from_args,
)
from interfere.cpu import cpu_description
from interfere.data.stream import DataConfig
from interfere.errors import UserError
from interfere.explore.analysis import jsonable
from interfere.explore.common import Context, examples_of, staged_dir
from interfere.explore.layers import LAYER_KEYS
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint, weights_hash
from interfere.model.life_model import LifeTransformer
from interfere.report.page import LAYER_HEADER, layer_rows
from interfere.report.sections import Timer, analyse, hypothesis_params, report_samples
from interfere.report.verdicts import layer_profile, verdict_h4
from interfere.viz.style import ACCENT, ACCENT_2, BIRTH_COLOR, CONTROL_COLOR, caption, save

H4_INPUTS = ("h1", "h2", "lens", "layers")  # the registry's analyses H4 by layer reads
MIN_SAMPLES = 8


def controls(model: LifeTransformer) -> dict[str, LifeTransformer]:
    """The random initialisation of the model's shape, and the model with its late half of layers re-initialised."""
    fresh = LifeTransformer(model.life_cfg, model.layout).eval()  # the config's init seed: never trained
    late = copy.deepcopy(model)
    half = (model.cfg.n_layers + 1) // 2
    with torch.no_grad():
        for layer in range(half, model.cfg.n_layers):
            late.blocks[layer].load_state_dict(fresh.blocks[layer].state_dict())
        if model.size_free:  # the window's relative-position bias is the model's, one slice per layer
            late.W_rel[half:] = fresh.W_rel[half:]
    return {"random init": fresh, f"layers {half}-{model.cfg.n_layers - 1} never trained": late}


def profile(model: LifeTransformer, rules: torch.Tensor, boards: torch.Tensor, th: dict, samples: dict) -> dict:
    """The per-layer profile, the layers' necessity and the H4 verdict of one model on these boards."""
    ex = examples_of(model, rules, boards)
    run = jsonable(analyse(model, ex, hypothesis_params(samples, th, 0), Timer(), "depth", keys=H4_INPUTS))
    verdict, why = verdict_h4(run["h1"], run["h2"], run["lens"], th["h1"], th["h4"])
    return {**layer_profile(run["h1"], run["h2"], run["lens"]), **{k: run["layers"][k] for k in LAYER_KEYS},
            "verdict": verdict, "why": why}


def table(results: dict[str, dict]) -> str:
    """Markdown: per model, its verdict and one row per layer (the report's H4 table)."""
    out = []
    for name, r in results.items():
        out += [f"### {name}: H4 {r['verdict']}", "", f"{r['why']}", "", "| " + " | ".join(LAYER_HEADER) + " |",
                "|---" * len(LAYER_HEADER) + "|", *("| " + " | ".join(row) + " |" for row in layer_rows(r)), ""]
    return "\n".join(out)


def figure(results: dict[str, dict], out: Path, command: str) -> Path:
    """Locality and the next state's probe AUC by layer, every model side by side (layers on 0..1 for comparison)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
    colours = itertools.cycle([ACCENT, CONTROL_COLOR, BIRTH_COLOR, ACCENT_2, "#6d597a"])
    for (name, r), colour in zip(results.items(), colours):
        n = len(r["locality"])
        depth = np.arange(n) / max(n - 1, 1)
        style = "--" if "never" in name or "random" in name else "-"
        axes[0].plot(depth, r["locality"], style + "o", color=colour, ms=4, label=f"{name} ({n} layers)")
        axes[1].plot(depth, r["next_auc"], style + "o", color=colour, ms=4, label=name)
    axes[0].set_title("locality: a head's largest share on the 8 neighbours")
    axes[1].set_title("the next state's probe AUC at the targets, after each layer")
    for ax in axes:
        ax.set_xlabel("layer (0 = first, 1 = last)")
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(frameon=False, fontsize=7)
    fig.suptitle("H4 by layer: the model, its controls" + (" and the models compared" if len(results) > 3 else ""))
    caption(fig, command)
    return save(fig, out / "depth_by_layer.png")


def compared(model: LifeTransformer, ckpt: dict, paths: list[str], taken: set[str]) -> dict[str, LifeTransformer]:
    """The ``--compare`` models by name (run id; step or path where that is taken): the model's board size, each
    checkpoint once."""
    seen, out = {Path(ckpt["path"]).resolve()}, {}
    for path in paths:
        if Path(path).resolve() in seen:
            raise UserError(f"--compare {path} is a model already drawn: give each checkpoint once")
        seen.add(Path(path).resolve())
        other_ckpt = load_checkpoint(ckpt=path)
        other = model_from_checkpoint(other_ckpt)
        if (other.layout.height, other.layout.width) != (model.layout.height, model.layout.width):
            raise UserError(f"--compare {path} runs {other.layout.height}x{other.layout.width} boards, the model "
                            f"{model.layout.height}x{model.layout.width}: compare models of one board size")
        run_id = other_ckpt.get("run_id")
        names = (f"{run_id} (trained)", f"{run_id} step {other_ckpt.get('step')} (trained)", f"{path} (trained)")
        name = next(n for n in names if n not in taken | set(out))
        out[name] = other
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="H4 by layer for a model and its controls (any depth).")
    add_checkpoint_args(p)
    add_thresholds_arg(p)
    p.add_argument("--compare", nargs="*", default=[], metavar="PATH", help="other checkpoints to draw beside it")
    p.add_argument("--samples", type=int, default=128, help="boards (the same boards for every model)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    with exit_on_user_error():
        if args.samples < MIN_SAMPLES:
            raise UserError(f"--samples must be at least {MIN_SAMPLES}, got {args.samples}")
        th = thresholds_from_args(args)
        model, ckpt = load_model_from_args(args)
        ctx = Context(model=model, ckpt=ckpt, layout=model.layout, data=DataConfig(**ckpt["config"]["data"]),
                      out=Path(), seed=args.seed, rule=None, command=command_line())
        ex = ctx.examples(args.samples)
        samples = {k: min(v, args.samples) for k, v in report_samples(False, model.layout.n_cells).items()}
        models = {f"{ckpt.get('run_id')} (trained)": model, **controls(model)}
        models.update(compared(model, ckpt, args.compare, taken=set(models)))
        with staged_dir(args.out) as (out, final):
            results = {name: profile(m, ex.rules, ex.boards, th, samples) for name, m in models.items()}
            md = table(results)
            (out / "depth.md").write_text(f"# H4 by layer\n\nCPU: {cpu_description()}\n\n{md}")
            figure(results, out, command_line())
            summary = {"checkpoint": ckpt["path"], "weights_sha256": weights_hash(ckpt["path"]),
                       "compare": args.compare, "samples": args.samples, "cpu": cpu_description(),
                       "command": command_line(), "results": results}
            (out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(md + f"\ndepth: {final}")
        return summary


if __name__ == "__main__":
    main()
