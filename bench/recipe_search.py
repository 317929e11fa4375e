"""Recipe search: train candidate recipes over many seeds and judge each by its worst seed.

    python bench/recipe_search.py --candidate base "" --candidate lr5 "train.lr=5e-3" \\
        [--config-name exp/cpu_demo] [--seeds 0 1 2 3 4 5 6 7 8 9] [--parallel 2] [--threads 1] [--out DIR]

Each (candidate, seed) is one ``python train.py`` process (``seed=S`` with the candidate's Hydra
overrides, no snapshots, no GIF), ``--parallel`` at a time with ``--threads`` torch threads each.
A finished run is reused and an interrupted one resumed (a run over ``--timeout`` seconds is killed).
Per run it reads ``eval.json``: when and why training stopped, training seconds, held-out test cell
accuracy and exact match (1,024 boards), the worst named rule and the Conway glider's first wrong
generation. Per candidate it prints the worst seed, the median and slowest training time, and how
many seeds reach the issue's targets; ``results.jsonl`` and ``table.md`` land in ``--out`` (default
``bench/results/recipe_search``).

Times measured with several runs in parallel are not those of one run on the whole machine: for the
shipped recipe's timing run it alone with ``--parallel 1 --threads 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from interfere.cpu import cpu_description

TARGET_ACC, TARGET_EXACT, TARGET_NAMED, GLIDER_GENS = 0.9999, 0.995, 0.9999, 100


def run_one(name: str, overrides: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one (candidate, seed) unless its eval.json exists; return its row."""
    root = Path(args.out)
    run_id = f"{name}_s{seed}"
    eval_json = root / "runs" / run_id / "eval.json"
    if not eval_json.is_file():
        cmd = [sys.executable, "train.py", "--config-name", args.config_name, f"seed={seed}",
               f"train.run_id={run_id}", f"train.ckpt_dir={root}/checkpoints", f"train.log_dir={root}/runs",
               f"train.threads={args.threads}", "train.snapshots=0", "train.rollout_gif=false",
               *shlex.split(overrides)]
        if (root / "checkpoints" / run_id / "latest.pt").is_file():  # an interrupted run: continue it
            cmd.append(f"train.resume={run_id}")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        log = root / "logs" / f"{run_id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            try:
                done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=args.timeout)
            except subprocess.TimeoutExpired:  # run() has killed it
                return {"candidate": name, "seed": seed, "error": f"over {args.timeout:g} s (killed), see {log}"}
        if done.returncode != 0:
            return {"candidate": name, "seed": seed, "error": f"exit {done.returncode}, see {log}"}
    return row(name, overrides, seed, json.loads(eval_json.read_text()))


def row(name: str, overrides: str, seed: int, ev: dict) -> dict:
    named = min(m["cell_acc"] for m in ev["named"].values())
    glider = ev["rollout"]["conway"]["glider"]
    held = ev["heldout"]
    ok = (held["cell_acc"] >= TARGET_ACC and held["board_exact"] >= TARGET_EXACT and named >= TARGET_NAMED
          and glider >= GLIDER_GENS)
    return {"candidate": name, "overrides": overrides, "seed": seed, "stop_step": ev["step"],
            "target_reached": ev["stopped"]["target_reached"], "train_s": round(ev["train_time_s"], 1),
            "heldout_acc": held["cell_acc"], "heldout_wrong": held["wrong_cells"], "exact": held["board_exact"],
            "worst_named": named, "glider": glider, "meets_targets": ok}


def summary(name: str, rows: list[dict]) -> dict:
    good = [r for r in rows if "error" not in r]
    worst = min(good, key=lambda r: r["heldout_acc"]) if good else None
    times = [r["train_s"] for r in good]
    return {"candidate": name, "seeds": len(rows), "errors": len(rows) - len(good),
            "meet_targets": sum(r["meets_targets"] for r in good),
            "worst_seed": worst["seed"] if worst else None,
            "worst_acc": worst["heldout_acc"] if worst else None,
            "worst_exact": min((r["exact"] for r in good), default=None),
            "median_steps": statistics.median(r["stop_step"] for r in good) if good else None,
            "max_steps": max((r["stop_step"] for r in good), default=None),
            "median_s": statistics.median(times) if times else None, "max_s": max(times, default=None)}


def markdown(summaries: list[dict], rows: list[dict], overrides: dict[str, str], machine: str) -> str:
    lines = [f"CPU: {machine}", "", "| candidate | overrides | seeds meeting targets | worst seed: held-out acc |"
             " worst exact | median / max stop step | median / max train s |", "|---|---|---|---|---|---|---|"]
    for s in summaries:
        if s["worst_acc"] is None:
            lines.append(f"| {s['candidate']} | `{overrides[s['candidate']]}` | errors: {s['errors']} | | | | |")
            continue
        ov = overrides[s["candidate"]] or "(recipe)"
        lines.append(f"| {s['candidate']} | `{ov}` | {s['meet_targets']}/{s['seeds']}"
                     f" | {s['worst_seed']}: {100 * s['worst_acc']:.3f}% | {100 * s['worst_exact']:.2f}% |"
                     f" {s['median_steps']:.0f} / {s['max_steps']} | {s['median_s']:.0f} / {s['max_s']:.0f} |")
    lines += ["", "| candidate | seed | stop step | target reached | train s | held-out acc | wrong cells | exact |"
              " worst named | glider |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['candidate']} | {r['seed']} | {r['error']} | | | | | | | |")
            continue
        lines.append(f"| {r['candidate']} | {r['seed']} | {r['stop_step']} | {r['target_reached']} | {r['train_s']}"
                     f" | {100 * r['heldout_acc']:.3f}% | {r['heldout_wrong']} | {100 * r['exact']:.2f}%"
                     f" | {100 * r['worst_named']:.3f}% | {r['glider']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidate", nargs=2, action="append", metavar=("NAME", "OVERRIDES"), required=True,
                    help="a name and its Hydra overrides in one string (\"\" for the config as it is)")
    ap.add_argument("--config-name", default="exp/cpu_demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench/results/recipe_search")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a training run is killed")
    args = ap.parse_args()
    overrides = dict(args.candidate)
    jobs = [(name, ov, seed) for name, ov in args.candidate for seed in args.seeds]
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda job: run_one(*job, args), jobs))
    summaries = [summary(name, [r for r in rows if r["candidate"] == name]) for name in overrides]
    out = Path(args.out)
    with open(out / "results.jsonl", "a") as f:
        for r in rows:
            f.write(json.dumps({**r, "config": args.config_name, "threads": args.threads,
                                "parallel": args.parallel}) + "\n")
    table = markdown(summaries, rows, overrides, cpu_description())
    (out / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
