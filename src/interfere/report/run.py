"""The hypothesis report: one command, four measured verdicts (H1-H4), one self-contained page.

    python -m interfere report [--run-id ID | --ckpt PATH] [--seeds 2] [--controls RUN_ID ... | --no-controls]
                                                                          (or: make report; make controls)

Per data seed it draws one batch of examples, asks every analysis what activations it reads, runs the
hooked forward once for all of them (:mod:`interfere.explore.analysis`), and measures H1 (attention maps),
H2 (probes), H3 (rule tokens) and H4 (logit lens) on that batch; the circuit analysis reads the first
seed's batch too. Verdicts (:mod:`interfere.report.verdicts`, thresholds loaded once from
``cfg/report/thresholds.yaml`` or ``--thresholds`` and passed to every analysis); a verdict that differs
between seeds is ``inconclusive``. Figures are drawn for the first seed. On a CPU a forked second
process runs the sections that do not need the first seed's results (docs/design.md, "The analysis
interface"). The page (:mod:`interfere.report.page`) ends with the seconds each section took.

Control columns: the same analyses (first data seed) on control checkpoints of the same shape,
by default the runs ``control_random_init`` (``train.steps=0``) and ``control_rule_blind``
(trained on Conway's Life only) when they exist; ``make controls`` trains them.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

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
from interfere.evaluate import evaluate, format_report, save_rollout_animation
from interfere.explore import circuit, registry
from interfere.explore.account import truth
from interfere.explore.analysis import Examples, jsonable
from interfere.explore.common import Context, staged_dir
from interfere.explore.layers import LAYER_KEYS
from interfere.model.checkpoint import weights_hash
from interfere.model.life_model import LifeTransformer
from interfere.report.page import write_report
from interfere.report.processes import Split, run_split
from interfere.report.sections import (
    Timer,
    analyse,
    architectural_caveats,
    circuit_runs,
    control_checkpoints,
    git_commit,
    how_it_computes,
    hypothesis_params,
    model_card,
    plot_first_seed,
    report_samples,
    run_controls,
    too_big_for_cpu,
    when_it_forms,
    where_variables_live,
)
from interfere.report.verdicts import HYPOTHESES, all_verdicts, layer_profile


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m interfere report",
                                     description="Write the H1-H4 hypothesis report for a checkpoint.")
    add_checkpoint_args(parser)
    parser.add_argument("--seeds", type=int, default=2, help="data seeds to run every analysis on")
    parser.add_argument("--out", default=None, help="output folder (default assets/explorations/<timestamp>/)")
    add_thresholds_arg(parser)
    parser.add_argument("--quick", action="store_true", help="fewer samples (for tests and smoke runs)")
    parser.add_argument("--controls", nargs="+", default=None, metavar="RUN_ID",
                        help="control runs for the control columns (default: control_random_init and "
                             "control_rule_blind when they exist; `make controls` trains them)")
    parser.add_argument("--no-controls", action="store_true", help="no control columns")
    parser.add_argument("--abstraction", action="store_true",
                        help="also where the algorithm's variables live, by distributed alignment search (minutes: "
                             "about 10 for the two-layer demo model on 2 cores; python -m interfere abstraction alone)")
    parser.add_argument("--one-process", action="store_true",
                        help="every section in this process (default on a CPU: two processes, half the threads each)")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        if args.seeds < 1:
            raise UserError(f"--seeds must be >= 1, got {args.seeds}")
        if args.controls and args.no_controls:
            raise UserError("--controls and --no-controls exclude each other")
        th = thresholds_from_args(args)
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
    keys = [a.key for a in registry.ANALYSES] + ["circuit"]  # every registered analysis reads the shared batch
    batches = [ctx.examples(max(samples[k] for k in keys)) for ctx in contexts]
    return Setup(model, ckpt, data, contexts, batches)


def two_processes(args: argparse.Namespace, model: LifeTransformer) -> bool:
    """On a CPU with two or more threads (and ``fork``, i.e. Linux) the report splits its sections between
    two processes of half the threads each: torch's second thread speeds these small forwards up by only
    1.2-1.7x (bench/hooked_forward.py at 1 and 2 threads), and the figures not at all. Boards too big for the
    CPU's full report stay in one process, whose memory bound holds for one set of activations."""
    return (not args.one_process and str(model.cfg.device) == "cpu" and args.threads >= 2
            and not too_big_for_cpu(model) and "fork" in multiprocessing.get_all_start_methods())


def write(args: argparse.Namespace, th: dict, model: LifeTransformer, ckpt: dict, samples: dict[str, int],
          out: Path, controls: dict[str, dict]) -> dict:
    """Run every analysis and write the report into ``out`` (a staging folder): the first data seed, its
    figures and the circuit here; the other seeds, the dynamics, the controls and the model card in a second
    process when there is one (:func:`two_processes`), else here after them."""
    t0, timer = time.perf_counter(), Timer()
    s = setup(args, model, ckpt, samples, out, command_line())
    if two_processes(args, model):
        half = args.threads // 2
        threads = {"first seed, figures, circuit": half, "the rest [process 2]": args.threads - half}
        first, rest = run_split(Split(here=lambda: first_seed(s, samples, th, timer),
                                      there=lambda: run_later(args, th, samples, s, controls,
                                                              Timer(suffix=" [process 2]")),
                                      threads_here=half, threads_there=args.threads - half))
    else:
        threads = {"every section": torch.get_num_threads()}
        first, rest = first_seed(s, samples, th, timer), run_later(args, th, samples, s, controls, timer)
    timer.seconds.update(rest["seconds"])
    runs, figures = [first["run"], *rest["runs"]], {**first["figures"], "forms": rest["forms_figures"],
                                                    "abstraction": rest["abstraction_figures"]}
    numbers, ev = [jsonable(run) for run in runs], rest["eval"]
    summary = {
        "checkpoint": ckpt["path"], "weights_sha256": weights_hash(ckpt["path"]), "run_id": ckpt.get("run_id"),
        "step": ckpt["step"], "seeds": [ctx.seed for ctx in s.contexts],
        "date": time.strftime("%Y-%m-%d %H:%M"), "git_commit": git_commit(), "command": command_line(),
        "device": device_text(model), "threads": threads, "thresholds": th, "heldout": ev["heldout"],
        "verdicts": verdict_entries(model, numbers, th),
        "h4_by_layer": {**layer_profile(numbers[0]["h1"], numbers[0]["h2"], numbers[0]["lens"]),
                        **{k: numbers[0]["layers"][k] for k in LAYER_KEYS}},
        "how": jsonable(first["how"]) if first["how"] else None,
        "built_vs_found": built_vs_found(ckpt, first["how"]),
        "forms": jsonable(rest["forms"]) if rest["forms"] else None,
        "abstraction": jsonable(rest["abstraction"]) if rest["abstraction"] else None,
        "controls": rest["controls"], "per_seed": numbers, "eval": ev,
        "section_seconds": timer.seconds, "seconds": round(time.perf_counter() - t0, 1),
    }
    write_report(out, summary, figures, model_card(args, model, ckpt, s.data, rest["animations"]), format_report(ev))
    print_verdicts(summary)
    return summary


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
    the causal abstraction (``--abstraction``), the controls and the model card's evaluation."""
    model, ctx = s.model, s.contexts[0]
    runs = []
    for later_ctx, ex in zip(s.contexts[1:], s.batches[1:]):
        print(f"report: analysing seed {later_ctx.seed} ...", flush=True)
        runs.append(analyse(model, ex, hypothesis_params(samples, th, later_ctx.seed), timer, f"seed {later_ctx.seed}"))
    forms, forms_figures = when_it_forms(model, s.batches[0], samples, th, ctx, timer)
    abstraction, abstraction_figures = where_variables_live(model, th, ctx, timer) if args.abstraction else (None, [])
    control_results = run_controls(s.batches[0], controls, hypothesis_params(samples, th, ctx.seed), th, ctx.seed,
                                   model.cfg.device, timer)
    with timer.section("model card: evaluation and rollout"):
        rollouts = not args.quick and not too_big_for_cpu(model)
        ev = evaluate(model, s.data, n_boards=samples["card"], seed=args.seed,
                      boards_per_named_rule=samples["card_named"], rollouts=rollouts)
        animations = save_rollout_animation(model, "B3/S23", "glider", ctx.out / "rollout_glider")
    return {"runs": runs, "forms": forms, "forms_figures": forms_figures, "controls": control_results, "eval": ev,
            "animations": animations, "abstraction": abstraction, "abstraction_figures": abstraction_figures,
            "seconds": timer.seconds}


def verdict_entries(model: LifeTransformer, numbers: list[dict], th: dict) -> dict[str, dict]:
    """Each hypothesis' verdict over the data seeds, as data: each seed's numbers, the notes, the caveats the
    architecture adds, and the lines a page prints."""
    out = {}
    for h, v in all_verdicts(numbers, th).items():
        caveats = architectural_caveats(model, h)
        out[h] = {"verdict": v.verdict, "per_seed": v.per_seed, "notes": v.notes, "caveats": caveats,
                  "reasons": v.reasons + caveats}
    return out


def built_vs_found(ckpt: dict, how: circuit.Result | None) -> dict | None:
    """For a model written by hand (its checkpoint carries ``ground_truth``): the account scored against it."""
    if how is None or not ckpt.get("ground_truth"):
        return None
    return truth.score(ckpt["ground_truth"], jsonable(how))


def device_text(model: LifeTransformer) -> str:
    """The CPU (its threads per process are the summary's ``threads``) or the GPU."""
    device = torch.device(model.cfg.device)
    return cpu_description() if device.type == "cpu" else torch.cuda.get_device_name(device)


def print_verdicts(summary: dict) -> None:
    """The verdict table on the terminal, with the controls' verdicts under each line."""
    width = max(len(h) for h in HYPOTHESES)
    print(f"\n{'':<{width}}  verdict         key numbers (seed {summary['seeds'][0]})")
    for h, v in summary["verdicts"].items():
        print(f"{h:<{width}}  {v['verdict']:<14}  {v['per_seed'][0]}")
        for caveat in v["caveats"]:
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
