"""The hypothesis report: one command, four measured verdicts (H1-H4), one self-contained page.

    python -m interfere.report [--run-id ID | --ckpt PATH] [--seeds 2] [--controls RUN_ID ... | --no-controls]
                                                                          (or: make report; make controls)

Per data seed it draws one batch of examples, asks every analysis what activations it reads, runs the
hooked forward once for all of them (:mod:`interfere.explore.analysis`), and measures H1 (attention maps),
H2 (probes), H3 (rule tokens) and H4 (logit lens) on that batch; the circuit analysis reads the first
seed's batch too. Verdicts (:mod:`interfere.verdicts`, thresholds loaded once from
``cfg/report/thresholds.yaml`` or ``--thresholds`` and passed to every analysis); a verdict that differs
between seeds is ``inconclusive``. Figures are drawn for the first seed. On a CPU a forked second
process runs the sections that do not need the first seed's results (docs/design.md, "The analysis
interface"). The page (:mod:`interfere.report_page`) ends with the seconds each section took.

Control columns: the same analyses (first data seed) on control checkpoints of the same shape,
by default the runs ``control_random_init`` (``train.steps=0``) and ``control_rule_blind``
(trained on Conway's Life only) when they exist; ``make controls`` trains them.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import multiprocessing
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from omegaconf import OmegaConf
from threadpoolctl import threadpool_limits

from interfere.cli import add_checkpoint_args, command_line, exit_on_user_error, load_model_from_args
from interfere.cpu import cpu_description, release_freed_memory
from interfere.data.stream import DataConfig
from interfere.errors import UserError
from interfere.evaluate import evaluate, format_report, heldout_metrics, save_rollout_animation
from interfere.explore import attn_maps, circuit, dynamics, logit_lens, physics_bits, probes
from interfere.explore.account import truth
from interfere.explore.analysis import Examples, jsonable
from interfere.explore.batched import scaled_samples
from interfere.explore.common import Context, staged_dir
from interfere.explore.components import all_components
from interfere.model.checkpoint import (
    CONTROL_PREFIX,
    CheckpointError,
    config_mismatches,
    list_snapshots,
    load_checkpoint,
    model_from_checkpoint,
    weights_hash,
)
from interfere.model.life_model import LifeTransformer, ModelConfig, n_params
from interfere.report_page import write_report
from interfere.thresholds import load_thresholds
from interfere.verdicts import HYPOTHESES, all_verdicts, headline
from interfere.viz.style import ACCENT, ACCENT_2, CONTROL_COLOR, GUIDE_COLOR, caption, save

CONTROL_RUNS = {"random init": f"{CONTROL_PREFIX}random_init", "rule-blind": f"{CONTROL_PREFIX}rule_blind"}
# The analyses behind H1-H4, by the key verdicts read them under.
HYPOTHESIS_ANALYSES = {"h1": attn_maps, "h2": probes, "h3": physics_bits, "lens": logit_lens}

# boards per analysis at 8x8 and the least at any size (explore.batched.scaled_samples), full and --quick
SAMPLES = {"h1": (64, 2), "h2": (128, 8), "h3": (144, 4), "lens": (256, 4), "circuit": (128, 8),
           "dynamics": (128, 8), "card": (1024, 16), "card_named": (256, 8)}
QUICK = {"h1": 16, "h2": 24, "h3": 36, "lens": 32, "circuit": 32, "dynamics": 16, "card": 256, "card_named": 64}
CIRCUIT_MAX_COMPONENTS = 12  # beyond, the circuit search needs O(components^2) hooked forwards: skipped on a CPU
CPU_MAX_CELLS = 256  # beyond, the circuit search, the snapshots' dynamics and the model card's
# 100-generation rollouts are skipped on a CPU: hooked forwards grow with the square of the sequence


def report_samples(quick: bool, n_cells: int) -> dict[str, int]:
    """Boards per analysis for boards of ``n_cells`` (fewer for bigger boards, so memory stays bounded)."""
    if quick:
        return dict(QUICK)
    return {k: scaled_samples(base, n_cells, floor) for k, (base, floor) in SAMPLES.items()}


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
    """Each H1-H4 analysis' params, with the thresholds passed in."""
    return {"h1": attn_maps.Params(samples=samples["h1"]),
            "h2": probes.Params(samples=samples["h2"], controls=th["h2"]["random_init_controls"], seed=seed),
            "h3": physics_bits.Params(samples=samples["h3"], thresholds=th),
            "lens": logit_lens.Params(samples=samples["lens"])}


@torch.no_grad()
def analyse(model: LifeTransformer, ex: Examples, params: dict[str, object], timer: Timer, label: str) -> dict:
    """H1-H4 results for one batch: one shared hooked forward for everything the analyses read."""
    with timer.section(f"shared forward ({label})"):
        for key, module in HYPOTHESIS_ANALYSES.items():
            ex.acts.want(module.wants(model, params[key]))
        ex.acts.compute()
    results = {}
    for key, module in HYPOTHESIS_ANALYSES.items():
        with timer.section(f"{key} ({label})"):
            results[key] = module.measure(model, ex.head(params[key].samples), params[key])
    return results


def plot_first_seed(results: dict, out: Path, ctx: Context, timer: Timer) -> dict[str, list[Path]]:
    """The H1-H4 figures of the first data seed (later seeds only decide verdicts)."""
    with timer.section("figures"):
        files = {key: HYPOTHESIS_ANALYSES[key].plot(result, out, ctx.caption) for key, result in results.items()}
        files["h4"] = [layer_roles_figure(ctx, jsonable(results), out)]
    return {"H1": [f for f in files["h1"] if f.suffix == ".png"], "H2": files["h2"], "H3": files["h3"],
            "H4": files["h4"] + files["lens"]}


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
    share = np.nan_to_num(np.array(out_numbers["h1"]["neighbour_share"], dtype=float))
    axes[1].bar(range(len(share)), share.max(1), color=ACCENT)
    axes[1].axhline(out_numbers["h1"]["neighbour_uniform_baseline"], color=CONTROL_COLOR, ls="--")
    axes[1].set_xticks(range(len(share)), [f"L{i}" for i in range(len(share))])
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title("locality: best head's 8-neighbour share\n(dashed: uniform baseline)")
    axes[1].set_xlabel("layer")
    lens = out_numbers["lens"]
    axes[2].plot(lens["points"], lens["acc"], "-o", color=ACCENT)
    axes[2].set_ylim(0.4, 1.02)
    axes[2].set_title("logit lens: next-state accuracy")
    axes[2].set_xlabel("residual read out")
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
            continue
        problems = [p for p in config_mismatches(control["config"], ckpt["config"])  # the same shape, not data
                    if p.startswith("model.") and not p.startswith("model.seed")
                    or p.startswith(("data.height", "data.width", "data.multi_steps"))]
        if control["path"] == ckpt["path"] or problems:
            why = problems[0] if problems else "it is the analysed checkpoint"
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
            "verdicts": {h: {"verdict": v, "reason": why[0].split(": ", 1)[1], "headline": headline(h, run)}
                         for h, (v, why) in verdicts.items()},
        }
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Write the H1-H4 hypothesis report for a checkpoint.")
    add_checkpoint_args(parser)
    parser.add_argument("--seeds", type=int, default=2, help="data seeds to run every analysis on")
    parser.add_argument("--out", default=None, help="output folder (default assets/explorations/<timestamp>/)")
    parser.add_argument("--thresholds", default=None, help="verdict thresholds (default cfg/report/thresholds.yaml)")
    parser.add_argument("--quick", action="store_true", help="fewer samples (for tests and smoke runs)")
    parser.add_argument("--controls", nargs="+", default=None, metavar="RUN_ID",
                        help="control runs for the control columns (default: control_random_init and "
                             "control_rule_blind when they exist; `make controls` trains them)")
    parser.add_argument("--no-controls", action="store_true", help="no control columns")
    parser.add_argument("--one-process", action="store_true",
                        help="every section in this process (default on a CPU: two processes, half the threads each)")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        if args.seeds < 1:
            raise UserError(f"--seeds must be >= 1, got {args.seeds}")
        if args.controls and args.no_controls:
            raise UserError("--controls and --no-controls exclude each other")
        th = load_thresholds(Path(args.thresholds) if args.thresholds else None)
        model, ckpt = load_model_from_args(args)
        gc.freeze()  # the imports' ~0.5 M objects are never garbage: each section's collection skips them
        controls = control_checkpoints(args, ckpt)
        samples = report_samples(args.quick, model.layout.n_cells)
        with staged_dir(args.out) as (out, final):
            summary = write(args, th, model, ckpt, samples, out, controls)
        print(f"report: {final / 'report.html'}")
        return summary


@dataclass
class Setup:
    """What the sections read: the model, its checkpoint, and per data seed a context and a batch of examples."""

    model: LifeTransformer
    ckpt: dict
    data: DataConfig
    contexts: list[Context]
    batches: list[Examples]


def setup(args: argparse.Namespace, model: LifeTransformer, ckpt: dict, samples: dict[str, int], out: Path,
          command: str) -> Setup:
    data = DataConfig(**ckpt["config"]["data"])
    contexts = [Context(model=model, ckpt=ckpt, layout=model.layout, data=data, out=out, seed=s, rule=None,
                        command=command) for s in range(args.seed, args.seed + args.seeds)]
    batches = [ctx.examples(max(samples[k] for k in ("h1", "h2", "h3", "lens", "circuit"))) for ctx in contexts]
    return Setup(model, ckpt, data, contexts, batches)


def two_processes(args: argparse.Namespace, model: LifeTransformer) -> bool:
    """On a CPU with two or more threads (and ``fork``, i.e. Linux) the report splits its sections between
    two processes of half the threads each: torch's second thread speeds these small forwards up by only
    1.2-1.7x (bench/hooked_forward.py at 1 and 2 threads), and the figures not at all. Boards too big for the
    CPU's full report stay in one process, whose memory bound holds for one set of activations."""
    return (not args.one_process and str(model.cfg.device) == "cpu" and args.threads >= 2
            and not too_big_for_cpu(model) and "fork" in multiprocessing.get_all_start_methods())


_LATER: tuple | None = None  # in the forked second process only: run_later's arguments (set by start_later)


def start_later(threads: int, *later_args: object) -> None:
    """The second process's initializer: its threads (numpy's BLAS too: two processes of two spinning BLAS
    threads each crawl) and :func:`run_later`'s arguments, which reach it by the fork, not by pickling."""
    global _LATER
    torch.set_num_threads(threads)
    threadpool_limits(threads)
    _LATER = later_args


def later_in_fork() -> dict:
    """:func:`run_later` in the forked second process, on its copy of the parent's model and examples."""
    args, th, samples, s, controls = _LATER
    return run_later(args, th, samples, s, controls, Timer(suffix=" [process 2]"))


def write(args: argparse.Namespace, th: dict, model: LifeTransformer, ckpt: dict, samples: dict[str, int],
          out: Path, controls: dict[str, dict]) -> dict:
    """Run every analysis and write the report into ``out`` (a staging folder): the first data seed, its
    figures and the circuit here; the other seeds, the dynamics, the controls and the model card in a second
    process when there is one (:func:`two_processes`), else here after them."""
    t0, timer = time.perf_counter(), Timer()
    s = setup(args, model, ckpt, samples, out, command_line())
    if two_processes(args, model):
        first, rest = in_two_processes(args, th, samples, s, controls, timer)
    else:
        first, rest = first_seed(s, samples, th, timer), run_later(args, th, samples, s, controls, timer)
    timer.seconds.update(rest["seconds"])
    runs, figures = [first["run"], *rest["runs"]], {**first["figures"], "forms": rest["forms_figures"]}
    numbers, ev = [jsonable(run) for run in runs], rest["eval"]
    summary = {
        "checkpoint": ckpt["path"], "weights_sha256": weights_hash(ckpt["path"]), "run_id": ckpt.get("run_id"),
        "step": ckpt["step"], "seeds": [ctx.seed for ctx in s.contexts],
        "date": time.strftime("%Y-%m-%d %H:%M"), "git_commit": git_commit(), "command": command_line(),
        "device": device_text(model), "thresholds": th, "heldout": ev["heldout"],
        "verdicts": {h: {"verdict": v, "reasons": why + architectural_caveats(model, h)}
                     for h, (v, why) in all_verdicts(numbers, th).items()},
        "how": jsonable(first["how"]) if first["how"] else None,
        "built_vs_found": built_vs_found(ckpt, first["how"]),
        "forms": jsonable(rest["forms"]) if rest["forms"] else None,
        "controls": rest["controls"], "per_seed": numbers, "eval": ev,
        "section_seconds": timer.seconds, "seconds": round(time.perf_counter() - t0, 1),
    }
    write_report(out, summary, figures, model_card(args, model, ckpt, s.data, rest["animations"]), format_report(ev))
    print_verdicts(summary)
    return summary


def in_two_processes(args: argparse.Namespace, th: dict, samples: dict[str, int], s: Setup,
                     controls: dict[str, dict], timer: Timer) -> tuple[dict, dict]:
    """:func:`first_seed` here and :func:`run_later` in a forked second process, at the same time (a second
    process that dies raises ``BrokenProcessPool`` here)."""
    here = args.threads // 2
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"), initializer=start_later,
                             initargs=(args.threads - here, args, th, samples, s, controls)) as pool:
        later = pool.submit(later_in_fork)  # forks now
        torch.set_num_threads(here)
        try:
            with threadpool_limits(here):
                first = first_seed(s, samples, th, timer)
        finally:
            torch.set_num_threads(args.threads)
        return first, later.result()


def first_seed(s: Setup, samples: dict[str, int], th: dict, timer: Timer) -> dict:
    """The first data seed's H1-H4 results and figures, and the circuit analysis on its batch."""
    ctx, ex = s.contexts[0], s.batches[0]
    print(f"report: analysing seed {ctx.seed} ...", flush=True)
    if circuit_runs(s.model):
        ex.acts.want(circuit.wants(s.model, None))  # the circuit's probes read the same forward
    run = analyse(s.model, ex, hypothesis_params(samples, th, ctx.seed), timer, f"seed {ctx.seed}")
    figures = plot_first_seed(run, ctx.out, ctx, timer)
    how, figures["how"] = how_it_computes(s.model, ex, samples, th, ctx, timer)
    return {"run": run, "figures": figures, "how": how}


def run_later(args: argparse.Namespace, th: dict, samples: dict[str, int], s: Setup, controls: dict[str, dict],
              timer: Timer) -> dict:
    """The sections that do not need the first seed's results: the other seeds' H1-H4, the snapshot dynamics,
    the controls and the model card's evaluation."""
    model, ctx = s.model, s.contexts[0]
    runs = []
    for later_ctx, ex in zip(s.contexts[1:], s.batches[1:]):
        print(f"report: analysing seed {later_ctx.seed} ...", flush=True)
        runs.append(analyse(model, ex, hypothesis_params(samples, th, later_ctx.seed), timer, f"seed {later_ctx.seed}"))
    forms, forms_figures = when_it_forms(model, s.batches[0], samples, th, ctx, timer)
    control_results = run_controls(s.batches[0], controls, hypothesis_params(samples, th, ctx.seed), th, ctx.seed,
                                   model.cfg.device, timer)
    with timer.section("model card: evaluation and rollout"):
        rollouts = not args.quick and not too_big_for_cpu(model)
        ev = evaluate(model, s.data, n_boards=samples["card"], seed=args.seed,
                      boards_per_named_rule=samples["card_named"], rollouts=rollouts)
        animations = save_rollout_animation(model, "B3/S23", "glider", ctx.out / "rollout_glider")
    return {"runs": runs, "forms": forms, "forms_figures": forms_figures, "controls": control_results, "eval": ev,
            "animations": animations, "seconds": timer.seconds}


def built_vs_found(ckpt: dict, how: circuit.Result | None) -> dict | None:
    """For a model written by hand (its checkpoint carries ``ground_truth``): the account scored against it."""
    if how is None or not ckpt.get("ground_truth"):
        return None
    return truth.score(ckpt["ground_truth"], jsonable(how))


def device_text(model: LifeTransformer) -> str:
    device = torch.device(model.cfg.device)
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    return (cpu_description() if device.type == "cpu" else torch.cuda.get_device_name(device)) + threads


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
    """Whether the circuit analysis runs here (a CPU skips it for big models and boards, saying why)."""
    n = len(all_components(model))
    if n > CIRCUIT_MAX_COMPONENTS and str(model.cfg.device) == "cpu":
        print(f"report: circuit analysis skipped: {n} components need O({n}^2) hooked forwards; run "
              "explorations/circuit.py on a GPU", flush=True)
        return False
    if too_big_for_cpu(model):
        print(f"report: circuit analysis skipped: {model.layout.height}x{model.layout.width} boards on a CPU take "
              "hours; run explorations/circuit.py on a GPU or at a smaller --size", flush=True)
        return False
    return True


def how_it_computes(model: LifeTransformer, ex: Examples, samples: dict[str, int], th: dict, ctx: Context,
                    timer: Timer) -> tuple[circuit.Result | None, list[Path]]:
    """The circuit analysis on the first seed's batch, or None where it cannot run in reasonable time."""
    if not circuit_runs(model):
        return None, []
    print(f"report: how the model computes (circuit, seed {ctx.seed}) ...", flush=True)
    params = circuit.Params(samples=samples["circuit"], density=(ctx.data.density_min, ctx.data.density_max),
                            seed=ctx.seed, thresholds=th)
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


def model_card(args: argparse.Namespace, model: LifeTransformer, ckpt: dict, data: DataConfig,
               animations: list[Path]) -> dict:
    """The model card's text, the commands that reproduce the report, and the rollout animations."""
    cfg = ckpt["config"]
    reproduce = "\n".join([
        f"# checkpoint {ckpt['path']} (run {ckpt.get('run_id')}, step {ckpt['step']}), git {git_commit()}",
        f"python train.py --config-name exp/{cfg.get('exp_name')} seed={cfg.get('seed', 0)}",
        f"python -m interfere.report --ckpt {ckpt['path']} --seeds {args.seeds} --seed {args.seed}"
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


def print_verdicts(summary: dict) -> None:
    """The verdict table on the terminal, with the controls' verdicts under each line."""
    width = max(len(h) for h in HYPOTHESES)
    print(f"\n{'':<{width}}  verdict         key numbers (seed {summary['seeds'][0]})")
    for h, v in summary["verdicts"].items():
        print(f"{h:<{width}}  {v['verdict']:<14}  {v['reasons'][0].split(': ', 1)[1]}")
        for caveat in (r for r in v["reasons"] if r.startswith("partly architectural")):
            print(f"{'':<{width}}    {caveat}")
        for label, control in summary["controls"].items():
            c = control["verdicts"][h]
            print(f"{'':<{width}}    control {label}: {c['verdict']} ({c['headline']})")
    if summary["forms"]:
        print("\nwhen each piece forms: " + "; ".join(summary["forms"]["order"]))
    how = summary["how"]
    if how:
        print(f"\nhow the model computes: {how['verdict']} ({how['verdict_reason']})")
        print("\n".join(f"  {i + 1}. {line}" for i, line in enumerate(how["card"])))
    built = summary["built_vs_found"]
    if built:
        print(f"written by hand: the map finds {built['routes']['matched']}/{built['routes']['of']} routes as built, "
              f"the roles {built['roles']['matched']}/{built['roles']['of']}")
    print("\nseconds per section: " + ", ".join(f"{k} {v}" for k, v in summary["section_seconds"].items()))
    print(f"held-out cell accuracy {100 * summary['heldout']['cell_acc']:.3f}%  ({summary['seconds']} s)")


if __name__ == "__main__":
    main()
