"""The report's sections, each a function of the model, its examples and the thresholds: H1-H4 on one batch (one
shared hooked forward; the analyses from :mod:`interfere.explore.registry`), their figures, the controls, how the
model computes, when each piece forms, and the model card. :mod:`interfere.report` runs them."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from omegaconf import OmegaConf

from interfere.cli import command_line
from interfere.cpu import release_freed_memory
from interfere.data.stream import DataConfig
from interfere.evaluate import heldout_metrics
from interfere.explore import abstraction, circuit, dynamics, registry
from interfere.explore.analysis import Examples, jsonable
from interfere.explore.batched import scaled_samples
from interfere.explore.common import Context
from interfere.model.checkpoint import (
    CONTROL_PREFIX,
    CheckpointError,
    config_differences,
    list_snapshots,
    load_checkpoint,
    model_from_checkpoint,
)
from interfere.model.life_model import LifeTransformer, ModelConfig, n_params
from interfere.report.verdicts import all_verdicts, headline, layer_profile
from interfere.viz.style import ACCENT, ACCENT_2, CONTROL_COLOR, GUIDE_COLOR, caption, save

CONTROL_RUNS = {"random init": f"{CONTROL_PREFIX}random_init", "rule-blind": f"{CONTROL_PREFIX}rule_blind"}
# boards for the report's own sections at 8x8 and the least at any size (explore.batched.scaled_samples), full and
# --quick; the registered analyses state theirs in interfere.explore.registry
OWN_SAMPLES = {"circuit": (128, 8), "dynamics": (128, 8), "card": (1024, 16), "card_named": (256, 8)}
OWN_QUICK = {"circuit": 32, "dynamics": 16, "card": 256, "card_named": 64}
CPU_MAX_CELLS = 256  # beyond, the circuit search, the snapshots' dynamics and the model card's
# 100-generation rollouts are skipped on a CPU: hooked forwards grow with the square of the sequence



def report_samples(quick: bool, n_cells: int) -> dict[str, int]:
    """Boards per analysis (the registry's, read now, and the report's own sections') for boards of ``n_cells``
    (fewer for bigger boards, so memory stays bounded)."""
    if quick:
        return {**{a.key: a.quick for a in registry.ANALYSES}, **OWN_QUICK}
    full = {**{a.key: a.samples for a in registry.ANALYSES}, **OWN_SAMPLES}
    return {k: scaled_samples(base, n_cells, floor) for k, (base, floor) in full.items()}


class Timer:
    """Seconds per report section, for the page's footer (``suffix``: after each name, e.g. the process)."""

    def __init__(self, suffix: str = "") -> None:
        self.seconds: dict[str, float] = {}
        self.suffix = suffix

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            name += self.suffix
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 1)
            release_freed_memory()


def hypothesis_params(samples: dict[str, int], th: dict, seed: int) -> dict[str, object]:
    """Each registered analysis' params, with the thresholds passed in."""
    return {a.key: a.params(samples[a.key], th, seed) for a in registry.ANALYSES}


@torch.no_grad()
def analyse(model: LifeTransformer, ex: Examples, params: dict[str, object], timer: Timer, label: str,
            keys: tuple[str, ...] | None = None) -> dict:
    """H1-H4 results for one batch (every registered analysis, or those of ``keys``): one shared hooked forward for
    everything they read."""
    entries = [a for a in registry.ANALYSES if keys is None or a.key in keys]
    with timer.section(f"shared forward ({label})"):
        for a in entries:
            ex.acts.want(a.module.wants(model, params[a.key]))
        ex.acts.compute()
    results = {}
    for a in entries:
        with timer.section(f"{a.key} ({label})"):
            results[a.key] = a.module.measure(model, ex.head(params[a.key].samples), params[a.key])
    return results


def plot_first_seed(results: dict, out: Path, ctx: Context, timer: Timer) -> dict[str, list[Path]]:
    """The H1-H4 figures of the first data seed (later seeds only decide verdicts)."""
    sections: dict[str, list[Path]] = {}
    with timer.section("figures"):
        sections["H4"] = [layer_roles_figure(ctx, jsonable(results), out)]
        for key, result in results.items():
            entry = registry.BY_KEY[key]
            pngs = [f for f in entry.module.plot(result, out, ctx.caption) if f.suffix == ".png"]  # GIFs: the card's
            sections.setdefault(entry.section, []).extend(pngs)
    return sections


def layer_roles_figure(ctx: Context, out_numbers: dict, out: Path) -> Path:
    """H4 in one figure: probes, locality and the logit lens, by layer."""
    res = out_numbers["h2"]["results"]["target"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3), layout="constrained")
    pts = out_numbers["h2"]["points"]
    axes[0].plot(pts, [r["count_r2"] for r in res["trained"]], "-o", color=ACCENT, label="count R² (trained)")
    axes[0].plot(pts, [r["next_auc"] for r in res["trained"]], "-s", color=ACCENT_2, label="next AUC (trained)")
    control = np.array([[r["count_r2"] for r in twin] for twin in res["random_init"]], dtype=float)
    axes[0].fill_between(range(len(pts)), control.min(0), control.max(0), color=CONTROL_COLOR, alpha=0.3, lw=0)
    axes[0].plot(pts, control.mean(0), "--o", color=CONTROL_COLOR, label=f"count R² (random init, {len(control)})")
    axes[0].set_title("probes at targets, by layer")
    axes[0].set_xlabel("residual stream")
    axes[0].set_ylim(-0.05, 1.02)
    axes[0].legend(frameon=False, fontsize=7)
    profile = layer_profile(out_numbers["h1"], out_numbers["h2"], out_numbers["lens"])
    n = len(profile["locality"])
    axes[1].bar(range(n), profile["locality"], color=ACCENT)
    axes[1].axhline(out_numbers["h1"]["neighbour_uniform_baseline"], color=CONTROL_COLOR, ls="--")
    axes[1].set_xticks(range(n), [f"L{i}" for i in range(n)])
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title("locality: a head's largest share of its attention\non the 8 neighbours (dashed: uniform)")
    axes[1].set_xlabel("layer")
    lens, layers = out_numbers["lens"], out_numbers["layers"]
    axes[2].plot(lens["points"], lens["acc"], "-o", color=ACCENT, label="logit lens after")
    axes[2].plot(lens["points"][1:], layers["attention_removed"], "--^", color=ACCENT_2, label="attention removed")
    axes[2].plot(lens["points"][1:], layers["mlp_removed"], ":v", color=CONTROL_COLOR, label="MLP removed")
    axes[2].plot(lens["points"][1:], layers["from_layer_removed"], "-.s", color=GUIDE_COLOR, ms=3,
                 label="it and all later removed")
    axes[2].set_ylim(0.4, 1.02)
    axes[2].set_title("next-state accuracy: read out after each layer,\nand with the layer's part removed")
    axes[2].set_xlabel("layer")
    axes[2].legend(frameon=False, fontsize=7)
    for ax in axes[[0, 2]]:
        ax.axhline(0.5, color=GUIDE_COLOR, lw=0.8, zorder=0)
    fig.suptitle("H4: layer roles")
    caption(fig, ctx.caption())
    return save(fig, out / "layer_roles.png")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def control_checkpoints(args: argparse.Namespace, ckpt: dict) -> dict[str, dict]:
    """The control checkpoints to report next to ``ckpt``: ``--controls``, else the default control runs
    of the same data and model shape that exist (a note says which were skipped and why)."""
    if args.no_controls:
        return {}
    wanted = ({f"control {i + 1}": run for i, run in enumerate(args.controls)} if args.controls
              else dict(CONTROL_RUNS))
    found = {}
    for label, run_id in wanted.items():
        try:
            control = load_checkpoint(run_id=run_id, ckpt_dir=args.ckpt_dir)
        except CheckpointError:
            if args.controls:
                raise
            print(f"report: control {run_id} not found (make controls trains it): no {label} column", flush=True)
            continue
        problems = [d for d in config_differences(control["config"], ckpt["config"])  # the same shape, not data
                    if d.section == "model" and d.key != "seed" or d.key in ("height", "width", "multi_steps")]
        if control["path"] == ckpt["path"] or problems:
            why = str(problems[0]) if problems else "it is the analysed checkpoint"
            print(f"report: control {run_id} skipped ({why})")
            continue
        found[label] = control
    return found


def run_controls(ex: Examples, controls: dict[str, dict], params: dict, th: dict, seed: int, device: str,
                 timer: Timer) -> dict:
    """The analyses of the first data seed's boards on each control, with their verdicts and headlines."""
    from interfere.explore.common import examples_of

    results = {}
    for label, control in controls.items():
        print(f"report: analysing control {label} ({control.get('run_id')}) ...", flush=True)
        model = model_from_checkpoint(control, device)
        run = jsonable(analyse(model, examples_of(model, ex.rules, ex.boards), params, timer, f"control {label}"))
        verdicts = all_verdicts([run], th)
        data = DataConfig(**control["config"]["data"])
        results[label] = {
            "run_id": control.get("run_id"), "checkpoint": control["path"], "step": control["step"],
            "heldout_acc": heldout_metrics(model, data, 256, seed=seed)["cell_acc"],
            "verdicts": {h: {"verdict": v.verdict, "reason": v.per_seed[0], "headline": headline(h, run)}
                         for h, v in verdicts.items()},
        }
    return results


def architectural_caveats(model: LifeTransformer, hypothesis: str) -> list[str]:
    """What the architecture, not training, decides about a hypothesis (shown next to its verdict)."""
    if hypothesis != "H1" or not model.size_free:
        return []
    r = model.life_cfg.window
    return [f"partly architectural: this size-free model (model.positions=window, window {r}) cannot attend "
            f"beyond {r} cells, so H1 only asks whether it narrows its {2 * r + 1}x{2 * r + 1} window to the "
            "3x3 stencil"]


def too_big_for_cpu(model: LifeTransformer) -> bool:
    return str(model.cfg.device) == "cpu" and model.layout.n_cells > CPU_MAX_CELLS


def circuit_runs(model: LifeTransformer) -> bool:
    """Whether the circuit analysis runs here (a CPU skips it for big boards, saying why; any depth runs, with
    fewer boards per stage as the model deepens: :func:`circuit_params`)."""
    if too_big_for_cpu(model):
        print(f"report: circuit analysis skipped: {model.layout.height}x{model.layout.width} boards on a CPU take "
              "hours; run explorations/circuit.py on a GPU or at a smaller --size", flush=True)
        return False
    return True


def circuit_params(model: LifeTransformer, samples: int, th: dict, ctx: Context) -> circuit.Params:
    """The circuit analysis' settings: the defaults up to two layers; deeper, fewer boards per stage (every stage's
    cost grows with the slots, which grow with the layers: the map's and the roles' forwards per slot, the donors'
    outputs kept per component)."""
    params = circuit.Params(samples=samples, density=(ctx.data.density_min, ctx.data.density_max), seed=ctx.seed,
                            thresholds=th)
    if model.cfg.n_layers <= 2:
        return params
    return dataclasses.replace(params, donors_per_rule=12, map_boards=16, reference_boards=32, lookup_boards=32)


def how_it_computes(model: LifeTransformer, ex: Examples, samples: dict[str, int], th: dict, ctx: Context,
                    timer: Timer) -> tuple[circuit.Result | None, list[Path]]:
    """The circuit analysis on the first seed's batch, or None where it cannot run in reasonable time."""
    if not circuit_runs(model):
        return None, []
    print(f"report: how the model computes (circuit, seed {ctx.seed}) ...", flush=True)
    params = circuit_params(model, samples["circuit"], th, ctx)
    with timer.section("circuit"):
        result = circuit.measure(model, ex.head(params.samples), params)
    with timer.section("figures"):
        return result, circuit.plot(result, ctx.out, ctx.caption)


def when_it_forms(model: LifeTransformer, ex: Examples, samples: dict[str, int], th: dict, ctx: Context,
                  timer: Timer) -> tuple[dynamics.Result | None, list[Path]]:
    """The dynamics analysis when the run has snapshots (None otherwise)."""
    run_dir = Path(ctx.ckpt["path"]).parent
    if not list_snapshots(run_dir):
        return None, []
    if too_big_for_cpu(model):
        print(f"report: snapshot dynamics skipped: {ctx.layout.height}x{ctx.layout.width} boards on a CPU; run "
              "explorations/dynamics.py on a GPU or at a smaller --size", flush=True)
        return None, []
    print("report: when each piece forms (snapshots) ...", flush=True)
    params = dynamics.Params(samples=samples["dynamics"], run_dir=str(run_dir),
                             size=(ctx.layout.height, ctx.layout.width),
                             sufficient_acc=th["circuit"]["sufficient_acc"])
    with timer.section("dynamics"):
        result = dynamics.measure(model, ex.head(params.samples), params)
    with timer.section("figures"):
        return result, [f for f in dynamics.plot(result, ctx.out, ctx.caption) if f.suffix == ".png"]


def where_variables_live(model: LifeTransformer, th: dict, ctx: Context, timer: Timer
                         ) -> tuple[abstraction.Result | None, list[Path]]:
    """The causal abstraction (``--abstraction``), or None where the CPU cannot run it in reasonable time."""
    if too_big_for_cpu(model):
        print(f"report: causal abstraction skipped: {ctx.layout.height}x{ctx.layout.width} boards on a CPU; run "
              "python -m interfere abstraction on a GPU or at a smaller --size", flush=True)
        return None, []
    print("report: where the variables live (causal abstraction) ...", flush=True)
    params = abstraction.params_for(ctx.data, th, ctx.seed)
    with timer.section("abstraction"):
        result = abstraction.measure(model, None, params)
    with timer.section("figures"):
        return result, abstraction.plot(result, ctx.out, ctx.caption)


def model_card(args: argparse.Namespace, model: LifeTransformer, ckpt: dict, data: DataConfig,
               animations: list[Path]) -> dict:
    """The model card's text, the commands that reproduce the report, and the rollout animations."""
    cfg = ckpt["config"]
    reproduce = "\n".join([
        f"# checkpoint {ckpt['path']} (run {ckpt.get('run_id')}, step {ckpt['step']}), git {git_commit()}",
        f"python train.py --config-name exp/{cfg.get('exp_name')} seed={cfg.get('seed', 0)}",
        f"python -m interfere report --ckpt {ckpt['path']} --seeds {args.seeds} --seed {args.seed}"
        + (f" --size {data.height}x{data.width}" if (data.height, data.width) != model.built_size else ""),
        f"# this report: {command_line()}",
    ])
    stopped = ckpt.get("stopped") or {}
    text = "\n".join([
        f"run {ckpt.get('run_id')}  step {ckpt['step']}  training time {ckpt.get('train_time_s', 0):.0f} s"
        + (f"  ({stopped['message']})" if stopped.get("message") else ""),
        f"parameters {n_params(model):,}  layers {model.cfg.n_layers}  d_model {model.cfg.d_model}  "
        f"heads {model.cfg.n_heads}  board {data.height}x{data.width}  " + positions_text(model.life_cfg),
        "config:", OmegaConf.to_yaml(OmegaConf.create({k: cfg[k] for k in ("data", "model", "train")})),
    ])
    return {"text": text, "reproduce": reproduce, "animations": [a for a in animations if a.suffix == ".gif"]}


def positions_text(cfg: ModelConfig) -> str:
    if cfg.positions == "window":
        return f"positions: a {2 * cfg.window + 1}x{2 * cfg.window + 1} window with a learned bias (any board size)"
    return f"rope {cfg.rope} (rotary_dim {cfg.rotary_dim})"
