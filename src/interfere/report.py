"""The hypothesis report: one command, four measured verdicts (H1-H4), one self-contained page.

    python -m interfere.report [--run-id ID | --ckpt PATH] [--seeds 2] [--controls RUN_ID ... | --no-controls]
                                                                          (or: make report; make controls)

Runs the explorations on a checkpoint for each data seed, decides each hypothesis
(:mod:`interfere.verdicts`, thresholds in ``cfg/report/thresholds.yaml``, printed with each verdict),
and writes ``report.html`` (images embedded, no network), ``report.md`` and ``summary.json`` into
``assets/explorations/<timestamp>/``. A verdict that differs between seeds is ``inconclusive``.

Control columns: the same analyses (first data seed) on control checkpoints of the same shape,
by default the runs ``control_random_init`` (``train.steps=0``) and ``control_rule_blind``
(trained on Conway's Life only) when they exist; ``make controls`` trains them.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import subprocess
import time
from argparse import Namespace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from omegaconf import OmegaConf

from interfere.cli import add_checkpoint_args, command_line, exit_on_user_error, load_model_from_args
from interfere.cpu import release_freed_memory
from interfere.data.stream import DataConfig
from interfere.errors import UserError
from interfere.evaluate import evaluate, format_report, heldout_metrics, save_rollout_animation
from interfere.explore import attn_maps, circuit, dynamics, logit_lens, physics_bits, probes
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
)
from interfere.model.life_model import LifeTransformer, ModelConfig, n_params
from interfere.thresholds import load_thresholds
from interfere.verdicts import HYPOTHESES, REFUTATIONS, all_verdicts, headline
from interfere.viz.style import ACCENT, ACCENT_2, CONTROL_COLOR, GUIDE_COLOR, caption, save

CONTROL_RUNS = {"random init": f"{CONTROL_PREFIX}random_init", "rule-blind": f"{CONTROL_PREFIX}rule_blind"}


# --- running the analyses ----------------------------------------------------------------
# boards per analysis at 8x8 and the least at any size (explore.batched.scaled_samples), full and --quick
SAMPLES = {"attn": (64, 2), "probes": (128, 8), "physics": (144, 4), "lens": (256, 4), "circuit": (256, 8),
           "dynamics": (128, 8), "card": (2048, 32), "card_named": (256, 8)}
QUICK = {"attn": 16, "probes": 24, "physics": 36, "lens": 32, "circuit": 32, "dynamics": 16, "card": 256,
         "card_named": 64}
CIRCUIT_MAX_COMPONENTS = 12  # beyond, the circuit search needs O(components^2) hooked forwards: skipped on a CPU
CPU_MAX_CELLS = 256  # beyond, the circuit search, the snapshots' dynamics and the model card's
# 100-generation rollouts are skipped on a CPU: hooked forwards grow with the square of the sequence


def report_samples(quick: bool, n_cells: int) -> dict[str, int]:
    """Boards per analysis for boards of ``n_cells`` (fewer for bigger boards, so memory stays bounded)."""
    if quick:
        return dict(QUICK)
    return {k: scaled_samples(base, n_cells, floor) for k, (base, floor) in SAMPLES.items()}


@torch.no_grad()
def analyse(ctx: Context, samples: dict[str, int], controls: int) -> dict:
    """H1-H4 numbers and figures for one data seed (figures land in ``ctx.out``)."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    out, files, seconds = {}, {}, {}
    steps = [
        ("h1", attn_maps.run, Namespace(layer=0, head=0, query=None, sweep=None, samples=samples["attn"])),
        ("h2", probes.run, Namespace(samples=samples["probes"], controls=controls)),
        ("h3", physics_bits.run, Namespace(samples=samples["physics"], patching="auto")),
        ("lens", logit_lens.run, Namespace(samples=samples["lens"])),
    ]
    for key, run, args in steps:
        t0 = time.perf_counter()
        out[key], files[key] = run(ctx, args)
        seconds[key] = round(time.perf_counter() - t0, 1)
        release_freed_memory()
    out["seconds"] = seconds
    files["h4"] = [layer_roles_figure(ctx, out)]
    out["files"] = {k: [str(p.relative_to(ctx.out.parent)) for p in v] for k, v in files.items()}
    return out


def layer_roles_figure(ctx: Context, out: dict) -> Path:
    """H4 in one figure: probes, locality and the logit lens, by layer."""
    res = out["h2"]["results"]["target"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3), layout="constrained")
    pts = out["h2"]["points"]
    axes[0].plot(pts, [r["count_r2"] for r in res["trained"]], "-o", color=ACCENT, label="count R² (trained)")
    axes[0].plot(pts, [r["next_auc"] for r in res["trained"]], "-s", color=ACCENT_2, label="next AUC (trained)")
    control = np.array([[r["count_r2"] for r in twin] for twin in res["random_init"]])
    axes[0].fill_between(range(len(pts)), control.min(0), control.max(0), color=CONTROL_COLOR, alpha=0.3, lw=0)
    axes[0].plot(pts, control.mean(0), "--o", color=CONTROL_COLOR, label=f"count R² (random init, {len(control)})")
    axes[0].set_title("probes at targets, by layer")
    axes[0].set_xlabel("residual before layer")
    axes[0].set_ylim(-0.05, 1.02)
    axes[0].legend(frameon=False, fontsize=7)
    share = np.nan_to_num(np.array(out["h1"]["neighbour_share"], dtype=float))
    axes[1].bar(range(len(share)), share.max(1), color=ACCENT)
    axes[1].axhline(out["h1"]["neighbour_uniform_baseline"], color=CONTROL_COLOR, ls="--")
    axes[1].set_xticks(range(len(share)), [f"L{i}" for i in range(len(share))])
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title("locality: best head's 8-neighbour share\n(dashed: uniform baseline)")
    axes[1].set_xlabel("layer")
    lens = out["lens"]
    axes[2].plot(lens["points"], lens["acc"], "-o", color=ACCENT)
    axes[2].set_ylim(0.4, 1.02)
    axes[2].set_title("logit lens: next-state accuracy")
    axes[2].set_xlabel("residual read out")
    for ax in axes[[0, 2]]:
        ax.axhline(0.5, color=GUIDE_COLOR, lw=0.8, zorder=0)
    fig.suptitle("H4: layer roles")
    caption(fig, ctx.caption())
    return save(fig, ctx.out / "layer_roles.png")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --- writing the page ------------------------------------------------------------------------
STYLE = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
color:#222;line-height:1.45;padding:0 1em}h1{margin-bottom:0}table{border-collapse:collapse;margin:1em 0}
td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}
.supported{color:#1b7f3b;font-weight:600}.not-supported{color:#b3261e;font-weight:600}
.inconclusive{color:#a26b00;font-weight:600}.warn{background:#fde8e8;color:#b3261e;padding:.8em;border-radius:6px;
font-weight:600}img{max-width:100%;margin:.5em 0}code,pre{background:#f5f3ef;padding:2px 4px;border-radius:3px}
pre{padding:.8em;overflow-x:auto}.muted{color:#777;font-size:.9em}"""


def _img(path: Path, embed: bool, root: Path) -> str:
    if embed:
        mime = "image/gif" if path.suffix == ".gif" else "image/png"
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<img src="data:{mime};base64,{data}" alt="{html.escape(path.name)}">'
    return f"![{path.name}]({path.relative_to(root)})\n"


def write_report(out: Path, summary: dict, figures: dict[str, list[Path]], card: dict, eval_table: str) -> None:
    """``report.html`` (self-contained), ``report.md`` and ``summary.json`` into ``out``."""
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    body = render(summary, figures, card, eval_table, out, embed=True)
    (out / "report.html").write_text(f'<!doctype html><html><head><meta charset="utf-8"><title>interfere report'
                                     f"</title><style>{STYLE}</style></head><body>{body}</body></html>")
    (out / "report.md").write_text(render(summary, figures, card, eval_table, out, embed=False))


def render(summary: dict, figures: dict[str, list[Path]], card: dict, eval_table: str, out: Path,
           embed: bool) -> str:
    """The report body as HTML (images embedded) or Markdown (images linked)."""
    parts: list[str] = []
    esc = html.escape if embed else (lambda s: s)

    def heading(level: int, text: str) -> None:
        parts.append(f"<h{level}>{esc(text)}</h{level}>" if embed else f"{'#' * level} {text}\n")

    def para(text: str, cls: str = "") -> None:
        parts.append(f'<p class="{cls}">{esc(text)}</p>' if embed else f"{text}\n")

    heading(1, "interfere: hypothesis report")
    para(f"checkpoint {summary['checkpoint']} (run {summary['run_id']}, step {summary['step']}), "
         f"data seeds {summary['seeds']}, {summary['date']}", "muted")
    acc = summary["heldout"]["cell_acc"]
    if acc < summary["thresholds"]["min_heldout_acc"]:
        msg = (f"Warning: held-out cell accuracy is {100 * acc:.2f}%, below "
               f"{100 * summary['thresholds']['min_heldout_acc']:.0f}%: the model has not learned the task, "
               "so these analyses describe a model that does not compute the rule.")
        parts.append(f'<p class="warn">{esc(msg)}</p>' if embed else f"> **{msg}**\n")
    heading(2, "Verdicts")
    parts.append(verdict_table(summary, embed))
    para(f"Held-out cell accuracy {100 * acc:.3f}% on {summary['heldout']['cells']:,} cells "
         f"({summary['heldout']['n_rules']} random rules never trained on).")
    para(controls_note(summary), "muted")
    for h, v in summary["verdicts"].items():
        heading(2, f"{h}: {v['verdict']}")
        para(HYPOTHESES[h])
        para("Measured: " + " | ".join(v["reasons"]))
        for label, control in summary["controls"].items():
            c = control["verdicts"][h]
            para(f"Control, {label} ({control['run_id']}): {c['verdict']}; {c['reason']}", "muted")
        para("Threshold: " + ", ".join(f"{k} = {x}" for k, x in summary["thresholds"][h.lower()].items()))
        para(f"Not supported means: {REFUTATIONS[h]}.", "muted")
        para(READINGS[h], "muted")
        for fig in figures[h]:
            parts.append(_img(fig, embed, out))
    how = summary["how"] or {"verdict": "not run", "card": ["Skipped at this size on a CPU: the search over "
                                                             "components needs a GPU (explorations/circuit.py)."],
                             "verdict_reason": "skipped", "circuit_search": "none", "circuit": [], "circuit_acc": 0.0}
    heading(2, f"How the model computes: {how['verdict']}")
    para("The algorithm card: each line is a claim about a component that survived a causal test "
         "(its output replaced by the claimed variable, or its attention by a fixed pattern), with the number.")
    card_lines = [f"{i + 1}. {line}" for i, line in enumerate(how["card"])]
    parts.append(("<ol>" + "".join(f"<li>{esc(line)}</li>" for line in how["card"]) + "</ol>") if embed
                 else "\n".join(card_lines) + "\n")
    para(f"Verdict: {how['verdict']}: {how['verdict_reason']}. Minimal circuit ({how['circuit_search']}): "
         f"{', '.join(how['circuit'])}, {100 * how['circuit_acc']:.2f}% with every other component mean-ablated.")
    para("Threshold: " + ", ".join(f"{k} = {x}" for k, x in summary["thresholds"]["circuit"].items()))
    para("Not supported means: all roles replaced at once keep less than refute_acc. Inconclusive: the roles "
         "keep the accuracy but some needed component is unexplained, or matters only through the answer.", "muted")
    for fig in figures["how"]:
        parts.append(_img(fig, embed, out))
    forms = summary["forms"]
    if forms:
        heading(2, "When each piece forms")
        para(f"Measured on the run's {len(forms['steps'])} training snapshots (steps {forms['steps'][0]} to "
             f"{forms['steps'][-1]}, {forms['seconds']} s). A measure forms when it has covered "
             f"{forms['fraction']:.0%} of the way from its first to its final value; in order: "
             + "; ".join(forms["order"]) + ". Accuracy first crosses "
             + ", ".join(f"{k} at step {v}" for k, v in forms["accuracy_first_crosses"].items() if v is not None) + ".")
        for fig in figures["forms"]:
            parts.append(_img(fig, embed, out))
    heading(2, "Model card")
    parts.append(("<pre>" + esc(card["text"]) + "</pre>") if embed else f"```\n{card['text']}\n```\n")
    parts.append(("<pre>" + esc(eval_table) + "</pre>") if embed else f"```\n{eval_table}\n```\n")
    for fig in card["animations"]:
        parts.append(_img(fig, embed, out))
    heading(2, "Reproduce")
    parts.append(("<pre>" + esc(card["reproduce"]) + "</pre>") if embed else f"```\n{card['reproduce']}\n```\n")
    return "\n".join(parts)


def verdict_table(summary: dict, embed: bool) -> str:
    """Hypothesis, verdict, key numbers (first seed), and one column per control checkpoint."""
    labels = list(summary["controls"])
    header = ["", "hypothesis", "verdict", "key numbers (seed 0)"] + [f"control: {label}" for label in labels]
    rows = []
    for h, v in summary["verdicts"].items():
        controls = [summary["controls"][label]["verdicts"][h] for label in labels]
        rows.append([h, HYPOTHESES[h], v["verdict"], v["reasons"][0].split(": ", 1)[1]]
                    + [f"{c['verdict']}: {c['headline']}" for c in controls])
    if embed:
        def cell(i: int, text: str) -> str:
            cls = f' class="{text.replace(" ", "-")}"' if i == 2 else ""
            return f"<td{cls}>{html.escape(text)}</td>"
        return ("<table><tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in header) + "</tr>"
                + "".join("<tr>" + "".join(cell(i, x) for i, x in enumerate(row)) + "</tr>" for row in rows)
                + "</table>")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"**{x}**" if i == 2 else x for i, x in enumerate(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def controls_note(summary: dict) -> str:
    if not summary["controls"]:
        return ("No control columns: no control checkpoint of this shape was found. `make controls` trains a "
                "random-init and a rule-blind control (runs control_random_init, control_rule_blind) and "
                "reports with them.")
    return "Controls (the same analyses, data seed {}): ".format(summary["seeds"][0]) + "; ".join(
        f"{label}: run {c['run_id']}, step {c['step']}, held-out accuracy {100 * c['heldout_acc']:.1f}%"
        for label, c in summary["controls"].items())


READINGS = {
    "H1": "Shares of a target query's board attention, averaged over queries and boards. The stencil share "
          "(3x3, the query's own cell included) is split into the own-cell share and the 8-neighbour share, "
          "because a head that only copies its own cell would score 1.0 on the stencil share. A head aggregates "
          "the neighbourhood when most of its board attention is on the 8 neighbours and spread over them "
          "(evenness = smallest neighbour weight / their mean; a plus-shaped head is partial). Uniform "
          "attention would put 8/(H*W) on the neighbours.",
    "H2": "Probes are trained on 75% of the boards and scored on the other 25%. Random-init models of the same "
          "shape (several init seeds; the margin is judged against the best of them) control for what the "
          "architecture gives for free; shuffled labels control for probe capacity.",
    "H3": "The discriminating test removes the rule-reading path: every rule token's embedding is replaced by "
          "the mean of its two values' embeddings, and accuracy on held-out rules is compared with the best "
          "rule-blind predictor (per (state, count) case, the more frequent next state). Rule use = the share of "
          "the model's advantage over rule-blind that the ablation removes. The flip test (flip one rule token: "
          "exactly the governed cells should change) is a consistency check: for a model right under both "
          "rules it holds by construction. Patching one head from the flipped run names the heads that carry "
          "the rule; below the effect floor it reports no effect.",
    "H4": "Put together: whether layer 0 has an aggregating head (H1's definition), when the neighbour "
          "count becomes linear (probes), and when the next state becomes readable (logit lens).",
}


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


def run_controls(args: argparse.Namespace, controls: dict[str, dict], samples: dict[str, int], th: dict,
                 out: Path, device: str | torch.device) -> dict:
    """The analyses of the first data seed on each control, with their verdicts and headline numbers."""
    results = {}
    for label, control in controls.items():
        print(f"report: analysing control {label} ({control.get('run_id')}) ...", flush=True)
        model = model_from_checkpoint(control, device)
        data = DataConfig(**control["config"]["data"])
        ctx = Context(model=model, ckpt=control, layout=model.layout, data=data,
                      out=out / "controls" / label.replace(" ", "_"), seed=args.seed, rule=None, command=command_line())
        run = analyse(ctx, samples, th["h2"]["random_init_controls"])
        verdicts = all_verdicts([run], th)
        results[label] = {
            "run_id": control.get("run_id"), "checkpoint": control["path"], "step": control["step"],
            "heldout_acc": heldout_metrics(model, data, 256, seed=args.seed)["cell_acc"],
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
    args = parser.parse_args(argv)
    with exit_on_user_error():
        if args.seeds < 1:
            raise UserError(f"--seeds must be >= 1, got {args.seeds}")
        if args.controls and args.no_controls:
            raise UserError("--controls and --no-controls exclude each other")
        th = load_thresholds(Path(args.thresholds) if args.thresholds else None)
        model, ckpt = load_model_from_args(args)
        controls = control_checkpoints(args, ckpt)
        data = DataConfig(**ckpt["config"]["data"])
        samples = report_samples(args.quick, model.layout.n_cells)
        with staged_dir(args.out) as (out, final):
            summary = _write(args, th, model, ckpt, data, samples, out, controls)
        print(f"report: {final / 'report.html'}")
        return summary


def _write(args: argparse.Namespace, th: dict, model: LifeTransformer, ckpt: dict, data: DataConfig,
           samples: dict[str, int], out: Path, controls: dict[str, dict]) -> dict:
    """Run every analysis and write the report into ``out`` (a staging folder)."""
    t0 = time.time()

    def context(folder: str, seed: int) -> Context:
        return Context(model=model, ckpt=ckpt, layout=model.layout, data=data, out=out / folder, seed=seed,
                       rule=None, command=command_line())

    runs = []
    for seed in range(args.seed, args.seed + args.seeds):
        print(f"report: analysing seed {seed} ...", flush=True)
        runs.append(analyse(context(f"seed{seed}", seed), samples, th["h2"]["random_init_controls"]))
    how, how_files = how_it_computes(context("circuit", args.seed), samples)
    forms, forms_files = when_it_forms(context("dynamics", args.seed), samples)
    control_results = run_controls(args, controls, samples, th, out, model.cfg.device)
    release_freed_memory()
    print("report: evaluating the checkpoint for the model card ...", flush=True)
    rollouts = not args.quick and not too_big_for_cpu(model)
    ev = evaluate(model, data, n_boards=samples["card"], seed=args.seed, boards_per_named_rule=samples["card_named"],
                  rollouts=rollouts)
    animations = save_rollout_animation(model, "B3/S23", "glider", out / "rollout_glider")
    first = runs[0]["files"]
    figures = {
        "H1": [out / p for p in first["h1"] if p.endswith(".png")],
        "H2": [out / p for p in first["h2"]],
        "H3": [out / p for p in first["h3"]],
        "H4": [out / p for p in first["h4"] + first["lens"]],
        "how": how_files, "forms": forms_files,
    }
    summary = {
        "checkpoint": ckpt["path"], "run_id": ckpt.get("run_id"), "step": ckpt["step"],
        "seeds": list(range(args.seed, args.seed + args.seeds)), "date": time.strftime("%Y-%m-%d %H:%M"),
        "git_commit": git_commit(), "command": command_line(), "thresholds": th, "heldout": ev["heldout"],
        "verdicts": {h: {"verdict": v, "reasons": why + architectural_caveats(model, h)}
                     for h, (v, why) in all_verdicts(runs, th).items()},
        "how": how, "forms": forms, "controls": control_results, "per_seed": runs, "eval": ev,
        "seconds": round(time.time() - t0, 1),
    }
    write_report(out, summary, figures, model_card(args, model, ckpt, data, animations), format_report(ev))
    print_verdicts(summary)
    return summary


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


def how_it_computes(ctx: Context, samples: dict[str, int]) -> tuple[dict | None, list[Path]]:
    """The circuit analysis, or None (with the reason printed) where it cannot run in reasonable time."""
    n = len(all_components(ctx.model))
    if n > CIRCUIT_MAX_COMPONENTS and str(ctx.model.cfg.device) == "cpu":
        print(f"report: circuit analysis skipped: {n} components need a greedy search of O({n}^2) hooked "
              "forwards; run explorations/circuit.py on a GPU", flush=True)
        return None, []
    if too_big_for_cpu(ctx.model):
        print(f"report: circuit analysis skipped: {ctx.layout.height}x{ctx.layout.width} boards on a CPU take "
              "hours; run explorations/circuit.py on a GPU or at a smaller --size", flush=True)
        return None, []
    print(f"report: how the model computes (circuit, seed {ctx.seed}) ...", flush=True)
    ctx.out.mkdir(parents=True)
    return circuit.run(ctx, Namespace(samples=samples["circuit"]))


def when_it_forms(ctx: Context, samples: dict[str, int]) -> tuple[dict | None, list[Path]]:
    """The dynamics analysis when the run has snapshots (None otherwise)."""
    if not list_snapshots(Path(ctx.ckpt["path"]).parent):
        return None, []
    if too_big_for_cpu(ctx.model):
        print(f"report: snapshot dynamics skipped: {ctx.layout.height}x{ctx.layout.width} boards on a CPU; run "
              "explorations/dynamics.py on a GPU or at a smaller --size", flush=True)
        return None, []
    print("report: when each piece forms (snapshots) ...", flush=True)
    t0 = time.perf_counter()
    ctx.out.mkdir(parents=True)
    numbers, files = dynamics.run(ctx, Namespace(samples=samples["dynamics"], fraction=0.9))
    numbers["seconds"] = round(time.perf_counter() - t0, 1)
    return numbers, [f for f in files if f.suffix == ".png"]


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
    text = "\n".join([
        f"run {ckpt.get('run_id')}  step {ckpt['step']}  training time {ckpt.get('train_time_s', 0):.0f} s",
        f"parameters {n_params(model):,}  layers {model.cfg.n_layers}  d_model {model.cfg.d_model}  "
        f"heads {model.cfg.n_heads}  board {data.height}x{data.width}  " + positions_text(model.life_cfg),
        "config:", OmegaConf.to_yaml(OmegaConf.create({k: cfg[k] for k in ("data", "model", "train")})),
    ])
    return {"text": text, "reproduce": reproduce, "animations": animations}


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
    print(f"\nheld-out cell accuracy {100 * summary['heldout']['cell_acc']:.3f}%  ({summary['seconds']} s)")


if __name__ == "__main__":
    main()
