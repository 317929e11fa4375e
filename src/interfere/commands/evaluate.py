"""``python eval.py``: evaluate a checkpoint from the command line (held-out and named rules, sizes, patterns).

    python eval.py [--run-id ID | --ckpt PATH] [--boards 4096] [--gif B3/S23]
    python eval.py --run-id ID --sizes 8 16 32 64          # a size-free checkpoint, a table per size
    python eval.py --run-id ID --patterns DIR [--gens 200]  # every .rle file of DIR next to the simulator
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interfere.ca.rules import get_rule
from interfere.cli import add_checkpoint_args, exit_on_user_error, load_model_from_args
from interfere.data.stream import DataConfig
from interfere.errors import UserError
from interfere.evaluate import (
    ROLLOUT_CAP,
    evaluate,
    evaluate_sizes,
    format_report,
    format_sizes,
    save_rollout_animation,
)
from interfere.model.life_model import LifeTransformer
from interfere.pattern_eval import DEFAULT_GENS, DEFAULT_SIZE, format_pattern_table, pattern_rollouts, read_folder


def main(argv: list[str] | None = None) -> None:
    """``python eval.py [--run-id ID | --ckpt PATH]``: evaluate a checkpoint, print and save the table."""
    parser = argparse.ArgumentParser(description="Evaluate a checkpoint on held-out and named rules.")
    add_checkpoint_args(parser)
    parser.add_argument("--boards", type=int, default=4096, help="held-out boards (spread over the held-out rules)")
    parser.add_argument("--no-rollouts", action="store_true", help="skip the rollout-divergence runs")
    parser.add_argument("--gif", default=None, metavar="RULE",
                        help="also animate a glider rollout under RULE (e.g. B3/S23)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, metavar="N",
                        help="evaluate N x N boards for each N (a size-free model, model.positions=window): "
                             "a table per size, eval_sizes.json, and a glider rollout GIF at the largest")
    parser.add_argument("--patterns", default=None, metavar="DIR",
                        help="roll out every .rle file in DIR next to the simulator (64x64 boards for a size-free "
                             "model unless --size): the first wrong generation per pattern, eval_patterns.json")
    parser.add_argument("--gens", type=int, default=None, help="generations per pattern with --patterns (200)")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        if args.boards < 1:
            raise UserError(f"--boards must be >= 1, got {args.boards}")
        if args.gif is not None:
            get_rule(args.gif)  # a bad rule fails before any work
        if args.patterns is not None:
            return _main_patterns(args)
        model, ckpt = load_model_from_args(args)
        data = DataConfig(**ckpt["config"]["data"])
        if args.sizes:
            return _main_sizes(model, ckpt, data, args)
        report = evaluate(model, data, n_boards=args.boards, seed=args.seed, rollouts=not args.no_rollouts)
        report.update({"checkpoint": ckpt["path"], "step": ckpt["step"], "seed": args.seed,
                       "run_id": ckpt.get("run_id")})
        out = Path(ckpt["config"]["train"]["log_dir"]) / str(ckpt.get("run_id")) / "eval.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        print(f"checkpoint {ckpt['path']} (step {ckpt['step']})")
        print(format_report(report))
        print(f"wrote {out}")
        if args.gif is not None:
            files = save_rollout_animation(model, args.gif, "glider", out.parent / "rollout_glider")
            print("rollout animation: " + ", ".join(str(f) for f in files))


def _main_patterns(args: object) -> None:
    """``eval.py --patterns DIR``: the first wrong generation of every pattern, ``eval_patterns.json``."""
    gens = DEFAULT_GENS if args.gens is None else args.gens
    if gens < 1:
        raise UserError(f"--gens must be >= 1, got {gens}")
    patterns = read_folder(args.patterns)  # every file is read before any work
    model, ckpt = load_model_from_args(args)
    if model.size_free and args.size is None:
        model.resize(DEFAULT_SIZE, DEFAULT_SIZE)
    rows = pattern_rollouts(model, patterns, gens)
    out = Path(ckpt["config"]["train"]["log_dir"]) / str(ckpt.get("run_id")) / "eval_patterns.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": ckpt["path"], "step": ckpt["step"], "folder": str(args.patterns),
                               "gens": gens, "patterns": rows}, indent=2))
    print(f"checkpoint {ckpt['path']} (step {ckpt['step']})")
    print(format_pattern_table(rows, gens))
    print(f"wrote {out}")


def _main_sizes(model: LifeTransformer, ckpt: dict, data: DataConfig, args: object) -> None:
    """``eval.py --sizes``: the per-size table, ``eval_sizes.json`` and a rollout GIF at the largest size."""
    for size in args.sizes:  # every size is checked before any work
        model.check_size(size, size)
    reports = evaluate_sizes(model, data, args.sizes, n_boards=args.boards, seed=args.seed,
                             rollouts=not args.no_rollouts)
    out = Path(ckpt["config"]["train"]["log_dir"]) / str(ckpt.get("run_id")) / "eval_sizes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": ckpt["path"], "step": ckpt["step"], "seed": args.seed,
                               "run_id": ckpt.get("run_id"), "sizes": reports}, indent=2))
    trained = ", ".join(f"{s}x{s}" for s in data.sizes) or f"{data.height}x{data.width}"
    print(f"checkpoint {ckpt['path']} (step {ckpt['step']}), trained on {trained} boards")
    print(format_sizes(reports))
    print(f"wrote {out}")
    biggest = max(args.sizes)
    with model.sized(biggest, biggest):
        files = save_rollout_animation(model, args.gif or "B3/S23", "glider", out.parent / f"rollout_glider_{biggest}",
                                       steps=ROLLOUT_CAP)
    print("rollout animation: " + ", ".join(str(f) for f in files))


if __name__ == "__main__":
    main()
