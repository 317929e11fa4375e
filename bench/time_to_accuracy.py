"""Time to accuracy: training wall time until validation cell accuracy reaches 99% and 99.9%, and board
exact-match reaches 95% (the validation rules: disjoint from the held-out test rules, never trained on).

    python bench/time_to_accuracy.py [--config-name exp/cpu_demo] [--threads 2] [--eval-every 50] [overrides ...]

Trains the config (validating every ``--eval-every`` steps on 512 boards) and reads the
run's log. Times are training time (optimizer steps only; the evaluations themselves are not
counted), so they are what the same run without frequent evaluation would take.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from interfere.config import compose
from interfere.train.loop import train

TARGETS = (("cell_acc", 0.99), ("cell_acc", 0.999), ("board_exact", 0.95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-name", default="exp/cpu_demo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--out", default=None)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.steps=1000")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose(args.config_name, [
            f"train.threads={args.threads}", f"train.eval_every={args.eval_every}", "train.eval_boards=512",
            f"train.ckpt_dir={tmp}/checkpoints", f"train.log_dir={tmp}/runs", "train.final_eval=false",
            f"train.save_every={10**9}", *args.overrides,
        ])
        t0 = time.perf_counter()
        result = train(cfg)
        wall = time.perf_counter() - t0
        log = [json.loads(line) for line in open(Path(tmp) / "runs" / result["run_id"] / "log.jsonl")]
    times = {s["step"]: s["train_time_s"] for s in log if "train_time_s" in s}
    evals = [(r["step"], r["validation"]) for r in log if "validation" in r]
    reached = {}
    for key, level in TARGETS:
        hit = next((step for step, ev in evals if ev[key] >= level), None)
        reached[f"{key}>={level}"] = None if hit is None else {"step": hit, "train_time_s": times.get(hit)}
    res = {"config": args.config_name, "threads": args.threads, "overrides": args.overrides, "reached": reached,
           "final_eval": evals[-1][1] if evals else None, "train_time_s": result["train_time_s"],
           "wall_with_evals_s": wall, "machine": platform.processor() or platform.machine(),
           "date": time.strftime("%Y-%m-%d")}
    print(f"{args.config_name} ({args.threads} threads), evaluated every {args.eval_every} steps:")
    for name, hit in reached.items():
        when = "not reached" if hit is None else f"{hit['train_time_s']:.0f} s (step {hit['step']})"
        print(f"  {name:<20} {when}")
    out = Path(args.out or f"bench/results/time_to_accuracy_{args.config_name.split('/')[-1]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"  wrote {out}")


if __name__ == "__main__":
    main()
