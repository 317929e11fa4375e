"""The hypothesis report: one command, four measured verdicts (H1-H4), one self-contained page.

    python -m interfere.report [--run-id ID | --ckpt PATH] [--seeds 2]      (or: make report)

Runs the explorations on a checkpoint for each data seed, decides each hypothesis against the
thresholds in ``cfg/report/thresholds.yaml`` (printed in the report with each verdict), and writes
``report.html`` (images embedded, no network), ``report.md`` and ``summary.json`` into
``assets/explorations/<timestamp>/``. A verdict that differs between seeds is ``inconclusive``.
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
from interfere.config import config_dir
from interfere.data.stream import DataConfig
from interfere.evaluate import evaluate, format_report, save_rollout_animation
from interfere.explore import attn_maps, logit_lens, physics_bits, probes
from interfere.explore.common import Context, staged_dir
from interfere.model.life_model import LifeTransformer, n_params
from interfere.viz.style import ACCENT, ACCENT_2, CONTROL_COLOR, GUIDE_COLOR, caption, save

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
HYPOTHESES = {
    "H1": "Locality via attention: target queries aggregate the 3x3 neighbourhood of the board at t.",
    "H2": "Linear world variables: neighbour count and next state are linearly decodable from the residual.",
    "H3": "Physics tokens usage: targets read the rule tokens, and flipping one acts exactly on the cells it governs.",
    "H4": "Layer roles: early layers gather local evidence, later layers classify.",
}


def load_thresholds(path: Path | None = None) -> dict:
    path = path or config_dir() / "report" / "thresholds.yaml"
    return OmegaConf.to_container(OmegaConf.load(path))  # type: ignore[return-value]


# --- verdicts: pure functions of the measured numbers --------------------------------------
def verdict_h1(h1: dict, th: dict) -> tuple[str, str]:
    share = np.array(h1["stencil_share"], dtype=float)
    board = np.array(h1["board_share"], dtype=float)
    base = h1["uniform_baseline"]
    share = np.nan_to_num(share, nan=0.0)
    l, h = np.unravel_index(np.argmax(share), share.shape)
    best = share[l, h]
    why = (f"best head L{l}H{h}: stencil share {best:.3f} = {best / base:.1f}x the uniform baseline "
           f"{base:.3f}, board share {board[l, h]:.2f}")
    if best >= th["support_share"] and best >= th["support_ratio"] * base and board[l, h] >= th["support_board_share"]:
        return SUPPORTED, why
    if best < th["refute_ratio"] * base:
        return NOT_SUPPORTED, why
    return INCONCLUSIVE, why


def verdict_h2(h2: dict, th: dict) -> tuple[str, str]:
    res = h2["results"]["target"]
    r2 = [r["count_r2"] for r in res["trained"]]
    auc = [r["next_auc"] for r in res["trained"]]
    r2_rand = max(r["count_r2"] for r in res["random_init"])
    auc_rand = max(r["next_auc"] for r in res["random_init"])
    r2_shuf = max(r["count_r2"] for r in res["shuffled_labels"])
    why = (f"count R2 best {max(r2):.3f} (random init {r2_rand:.3f}, shuffled {r2_shuf:.3f}); "
           f"next-state AUC best {max(auc):.4f} (random init {auc_rand:.3f})")
    if (max(r2) >= th["support_count_r2"] and max(auc) >= th["support_next_auc"]
            and max(r2) - r2_rand >= th["support_margin"] and max(auc) - auc_rand >= th["support_margin"]
            and r2_shuf <= th["max_shuffled_r2"]):
        return SUPPORTED, why
    if max(r2) - r2_rand < th["refute_margin"] and max(auc) - auc_rand < th["refute_margin"]:
        return NOT_SUPPORTED, why
    return INCONCLUSIVE, why


def verdict_h3(h3: dict, th: dict) -> tuple[str, str]:
    prec, rec = h3["flip_mean"]["precision"], h3["flip_mean"]["recall"]
    mass = float(np.max(h3["rule_attention_mass"]))
    patch = h3["patching"]["best_head"]
    why = (f"flip precision {prec:.4f}, recall {rec:.4f}, false-flip rate {h3['flip_mean']['false_flip_rate']:.2e}; "
           f"max rule-token attention {mass:.2f}; best patched head L{patch['layer']}H{patch['head']} "
           f"restores {patch['share']:.2f} of the effect")
    if (prec >= th["support_precision"] and rec >= th["support_recall"] and mass >= th["support_rule_attention"]
            and patch["share"] >= th["support_patch_share"]):
        return SUPPORTED, why
    if rec < th["refute_recall"]:
        return NOT_SUPPORTED, why
    return INCONCLUSIVE, why


def verdict_h4(h1: dict, h2: dict, lens: dict, th: dict) -> tuple[str, str]:
    early_share = float(np.nan_to_num(np.array(h1["stencil_share"][0], dtype=float)).max())
    after0, final = lens["acc"][1], lens["acc"][-1]
    r2 = [r["count_r2"] for r in h2["results"]["target"]["trained"]]
    why = (f"layer-0 best stencil share {early_share:.2f}; logit-lens accuracy after L0 {after0:.3f}, "
           f"final {final:.4f}; count R2 by layer {', '.join(f'{v:.2f}' for v in r2)}")
    if after0 >= th["refute_early_lens"]:
        return NOT_SUPPORTED, why
    if early_share >= th["early_stencil_share"] and final >= th["late_lens_acc"] and after0 <= th["early_lens_max"]:
        return SUPPORTED, why
    return INCONCLUSIVE, why


def combine(per_seed: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """One verdict over seeds: the common one, or inconclusive when they disagree."""
    verdicts = {v for v, _ in per_seed}
    reasons = [f"seed {i}: {why}" for i, (_, why) in enumerate(per_seed)]
    if len(verdicts) == 1:
        return verdicts.pop(), reasons
    return INCONCLUSIVE, reasons + ["verdicts differ between seeds: inconclusive"]


# --- running the analyses ----------------------------------------------------------------
@torch.no_grad()
def analyse(ctx: Context, samples: dict[str, int]) -> dict:
    """H1-H4 numbers and figures for one data seed (figures land in ``ctx.out``)."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    out, files, seconds = {}, {}, {}
    steps = [
        ("h1", attn_maps.run, Namespace(layer=0, head=0, query=None, sweep=None, samples=samples["attn"])),
        ("h2", probes.run, Namespace(samples=samples["probes"])),
        ("h3", physics_bits.run, Namespace(samples=samples["physics"])),
        ("lens", logit_lens.run, Namespace(samples=samples["lens"])),
    ]
    for key, run, args in steps:
        t0 = time.perf_counter()
        out[key], files[key] = run(ctx, args)
        seconds[key] = round(time.perf_counter() - t0, 1)
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
    axes[0].plot(pts, [r["count_r2"] for r in res["random_init"]], "--o", color=CONTROL_COLOR,
                 label="count R² (random init)")
    axes[0].set_title("probes at targets, by layer")
    axes[0].set_xlabel("residual before layer")
    axes[0].set_ylim(-0.05, 1.02)
    axes[0].legend(frameon=False, fontsize=7)
    share = np.nan_to_num(np.array(out["h1"]["stencil_share"], dtype=float))
    axes[1].bar(range(len(share)), share.max(1), color=ACCENT)
    axes[1].axhline(out["h1"]["uniform_baseline"], color=CONTROL_COLOR, ls="--")
    axes[1].set_xticks(range(len(share)), [f"L{i}" for i in range(len(share))])
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title("locality: best head's stencil share\n(dashed: uniform baseline)")
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
    rows = [(h, HYPOTHESES[h], v["verdict"], v["reasons"][0]) for h, v in summary["verdicts"].items()]
    if embed:
        parts.append("<table><tr><th></th><th>hypothesis</th><th>verdict</th><th>key numbers (seed 0)</th></tr>"
                     + "".join(f'<tr><td>{h}</td><td>{esc(t)}</td><td class="{v.replace(" ", "-")}">{v}</td>'
                               f"<td>{esc(w.split(': ', 1)[1])}</td></tr>" for h, t, v, w in rows) + "</table>")
    else:
        parts.append("| | hypothesis | verdict | key numbers (seed 0) |\n|---|---|---|---|\n" + "".join(
            f"| {h} | {t} | **{v}** | {w.split(': ', 1)[1]} |\n" for h, t, v, w in rows))
    para(f"Held-out cell accuracy {100 * acc:.3f}% on {summary['heldout']['cells']:,} cells "
         f"({summary['heldout']['n_rules']} random rules never trained on).")
    for h, v in summary["verdicts"].items():
        heading(2, f"{h}: {v['verdict']}")
        para(HYPOTHESES[h])
        para("Measured: " + " | ".join(v["reasons"]))
        para("Threshold: " + ", ".join(f"{k} = {x}" for k, x in summary["thresholds"][h.lower()].items()))
        para(READINGS[h], "muted")
        for fig in figures[h]:
            parts.append(_img(fig, embed, out))
    heading(2, "Model card")
    parts.append(("<pre>" + esc(card["text"]) + "</pre>") if embed else f"```\n{card['text']}\n```\n")
    parts.append(("<pre>" + esc(eval_table) + "</pre>") if embed else f"```\n{eval_table}\n```\n")
    for fig in card["animations"]:
        parts.append(_img(fig, embed, out))
    heading(2, "Reproduce")
    parts.append(("<pre>" + esc(card["reproduce"]) + "</pre>") if embed else f"```\n{card['reproduce']}\n```\n")
    return "\n".join(parts)


READINGS = {
    "H1": "The stencil share is the fraction of a target query's board attention that lands on the 9 cells "
          "of its 3x3 toroidal neighbourhood; a head that ignored position would score 9/(H*W).",
    "H2": "Probes are trained on 75% of the boards and scored on the other 25%. The random-init model "
          "controls for what the architecture gives for free; shuffled labels control for probe capacity.",
    "H3": "A causal test: flipping one rule token changes the true next state of exactly the cells it "
          "governs. Patching one head's output from the flipped run into the clean run shows which heads carry it.",
    "H4": "Put together: where the local evidence is gathered (stencil share by layer), when the neighbour "
          "count becomes linear (probes), and when the next state becomes readable (logit lens).",
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Write the H1-H4 hypothesis report for a checkpoint.")
    add_checkpoint_args(parser)
    parser.add_argument("--seeds", type=int, default=2, help="data seeds to run every analysis on")
    parser.add_argument("--out", default=None, help="output folder (default assets/explorations/<timestamp>/)")
    parser.add_argument("--thresholds", default=None, help="verdict thresholds (default cfg/report/thresholds.yaml)")
    parser.add_argument("--quick", action="store_true", help="fewer samples (for tests and smoke runs)")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        if args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
        th = load_thresholds(Path(args.thresholds) if args.thresholds else None)
        model, ckpt = load_model_from_args(args)
        data = DataConfig(**ckpt["config"]["data"])
        samples = ({"attn": 16, "probes": 24, "physics": 36, "lens": 32} if args.quick
                   else {"attn": 64, "probes": 128, "physics": 144, "lens": 256})
        with staged_dir(args.out) as (out, final):
            summary = _write(args, th, model, ckpt, data, samples, out)
        print(f"report: {final / 'report.html'}")
        return summary


def _write(args: argparse.Namespace, th: dict, model: LifeTransformer, ckpt: dict, data: DataConfig,
           samples: dict[str, int], out: Path) -> dict:
    """Run every analysis and write the report into ``out`` (a staging folder)."""
    t0 = time.time()
    runs = []
    for seed in range(args.seed, args.seed + args.seeds):
        ctx = Context(model=model, ckpt=ckpt, layout=model.layout, data=data, out=out / f"seed{seed}",
                      seed=seed, rule=None, command=command_line())
        print(f"report: analysing seed {seed} ...", flush=True)
        runs.append(analyse(ctx, samples))
    verdicts = {
        "H1": combine([verdict_h1(r["h1"], th["h1"]) for r in runs]),
        "H2": combine([verdict_h2(r["h2"], th["h2"]) for r in runs]),
        "H3": combine([verdict_h3(r["h3"], th["h3"]) for r in runs]),
        "H4": combine([verdict_h4(r["h1"], r["h2"], r["lens"], th["h4"]) for r in runs]),
    }
    print("report: evaluating the checkpoint for the model card ...", flush=True)
    n_boards = 256 if args.quick else 2048
    ev = evaluate(model, data, n_boards=n_boards, seed=args.seed, boards_per_named_rule=64 if args.quick else 256,
                  rollouts=not args.quick)
    animations = save_rollout_animation(model, "B3/S23", "glider", out / "rollout_glider")
    first = runs[0]["files"]
    figures = {
        "H1": [out / p for p in first["h1"] if p.endswith(".png")],
        "H2": [out / p for p in first["h2"]],
        "H3": [out / p for p in first["h3"]],
        "H4": [out / p for p in first["h4"] + first["lens"]],
    }
    cfg = ckpt["config"]
    reproduce = "\n".join([
        f"# checkpoint {ckpt['path']} (run {ckpt.get('run_id')}, step {ckpt['step']}), git {git_commit()}",
        f"python train.py --config-name exp/{cfg.get('exp_name')} seed={cfg.get('seed', 0)}",
        f"python -m interfere.report --ckpt {ckpt['path']} --seeds {args.seeds} --seed {args.seed}",
        f"# this report: {command_line()}",
    ])
    card_text = "\n".join([
        f"run {ckpt.get('run_id')}  step {ckpt['step']}  training time {ckpt.get('train_time_s', 0):.0f} s",
        f"parameters {n_params(model):,}  layers {model.cfg.n_layers}  d_model {model.cfg.d_model}  "
        f"heads {model.cfg.n_heads}  board {data.height}x{data.width}  rope {model.life_cfg.rope} "
        f"(rotary_dim {model.life_cfg.rotary_dim})",
        "config:", OmegaConf.to_yaml(OmegaConf.create({k: cfg[k] for k in ("data", "model", "train")})),
    ])
    summary = {
        "checkpoint": ckpt["path"], "run_id": ckpt.get("run_id"), "step": ckpt["step"],
        "seeds": list(range(args.seed, args.seed + args.seeds)), "date": time.strftime("%Y-%m-%d %H:%M"),
        "git_commit": git_commit(), "command": command_line(), "thresholds": th,
        "heldout": ev["heldout"],
        "verdicts": {h: {"verdict": v, "reasons": why} for h, (v, why) in verdicts.items()},
        "per_seed": runs, "eval": ev, "seconds": round(time.time() - t0, 1),
    }
    write_report(out, summary, figures, {"text": card_text, "reproduce": reproduce, "animations": animations},
                 format_report(ev))
    width = max(len(h) for h in HYPOTHESES)
    print(f"\n{'':<{width}}  verdict         key numbers (seed {args.seed})")
    for h, (v, why) in verdicts.items():
        print(f"{h:<{width}}  {v:<14}  {why[0].split(': ', 1)[1]}")
    print(f"\nheld-out cell accuracy {100 * ev['heldout']['cell_acc']:.3f}%  ({summary['seconds']} s)")
    return summary


if __name__ == "__main__":
    main()
