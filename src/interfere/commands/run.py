"""Run a pattern through the model next to the simulator, on a torus of any size.

    python -m interfere run PATTERN.rle [--rule R] [--size N|HxW] [--gens G] [--gif OUT]
                                        [--run-id ID | --ckpt PATH]

``PATTERN`` is an RLE file (Golly, LifeWiki) or the name of a pattern in the package's library
(``glider``, ``gosper_glider_gun``, ...: ``--list``). The pattern is placed in the middle of the
smallest board that holds it with a margin (``interfere.ca.patterns.MARGIN``), unless ``--size``;
the model's autoregressive rollout (its own predictions fed back) runs next to the exact simulator,
and the command prints the first generation where they differ and the cell accuracy of every
generation, and with ``--gif`` writes an animation (model | simulator | differences in red; an MP4
beside it). Without ``--run-id``/``--ckpt`` it takes the newest size-free checkpoint
(``model.positions: window``, any board size), else the newest checkpoint. A malformed or
non-life-like pattern, an unknown rule or a size the model cannot run ends in one line, exit code 2,
before anything is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from interfere.ca.patterns import centred, fitting_size, library_names, load_pattern
from interfere.ca.rle import Pattern
from interfere.ca.rules import Rule, get_rule
from interfere.cli import add_checkpoint_args, board_size, exit_on_user_error, load_model_from_args
from interfere.errors import UserError
from interfere.evaluate import RolloutComparison, compare_rollouts
from interfere.model.checkpoint import newest_size_free
from interfere.viz.animate import comparison_frames, write_frames

PER_LINE = 10  # generations per line of the accuracy table


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Run a pattern (RLE file or library name) through the model next to "
                                "the simulator.")
    p.add_argument("pattern", nargs="?", help="an .rle file, or a library pattern's name (see --list)")
    p.add_argument("--rule", default=None, help="the rule (default: the pattern file's own 'rule =')")
    p.add_argument("--gens", type=int, default=100, help="generations to run (default 100)")
    p.add_argument("--gif", default=None, metavar="OUT", help="write the rollout as a GIF (and an MP4 beside it)")
    p.add_argument("--list", action="store_true", help="list the library's patterns and exit")
    add_checkpoint_args(p)
    return p


def chosen_rule(pattern: Pattern, rule: str | None) -> Rule:
    if rule is not None:
        return get_rule(rule)
    if pattern.rule is None:
        raise UserError("the pattern file gives no rule: pass --rule (e.g. --rule B3/S23)")
    return pattern.rule


def accuracy_table(comparison: RolloutComparison) -> list[str]:
    """Cell accuracy per generation, ``PER_LINE`` generations a line ("100" where exact)."""
    acc = comparison.accuracy[0].tolist()
    lines = []
    for start in range(1, len(acc), PER_LINE):
        chunk = acc[start : start + PER_LINE]
        cells = " ".join(f"{'100' if a == 1 else f'{100 * a:.2f}':>6}" for a in chunk)
        lines.append(f"  gen {start:>4}-{start + len(chunk) - 1:<4} {cells}")
    return lines


def main(argv: list[str] | None = None) -> RolloutComparison | None:
    args = build_parser().parse_args(argv)
    if args.list:
        print("\n".join(library_names()))
        return None
    with exit_on_user_error():
        if args.pattern is None:
            raise UserError("give a pattern: an .rle file or a library name (--list shows them)")
        pattern = load_pattern(args.pattern)
        rule = chosen_rule(pattern, args.rule)
        if args.gens < 1:
            raise UserError(f"--gens must be >= 1, got {args.gens}")
        size = board_size(args.size) if args.size else None
        if args.gif is not None and Path(args.gif).suffix.lower() not in (".gif", ".mp4"):
            raise UserError(f"--gif: the animation's name must end in .gif or .mp4, got {args.gif!r}")
        if args.ckpt is None and args.run_id is None:
            args.ckpt = newest_size_free(args.ckpt_dir)
        args.size = None  # the board size is chosen below, from the pattern
        model, ckpt = load_model_from_args(args)
        size = size or (fitting_size(pattern) if model.size_free else model.built_size)
        model.resize(*size)
        start = centred(pattern, *size)
        t0 = time.perf_counter()
        comparison = compare_rollouts(model, rule, start[None], args.gens)
        seconds = time.perf_counter() - t0
    report(pattern, rule, size, ckpt, comparison, seconds)
    if args.gif is not None:
        title = f"{pattern.name or Path(str(args.pattern)).stem}, {rule}"
        files = write_frames(comparison_frames(comparison.model[0], comparison.truth[0], title), Path(args.gif),
                             fps=8)
        print("animation: " + ", ".join(str(f) for f in files))
    return comparison


def report(pattern: Pattern, rule: Rule, size: tuple[int, int], ckpt: dict, comparison: RolloutComparison,
           seconds: float) -> None:
    gens = comparison.model.shape[1] - 1
    kind = "size-free" if ckpt["config"]["model"].get("positions") == "window" else "fixed-size"
    print(f"{pattern.name or 'pattern'} ({pattern.height}x{pattern.width} cells), rule {rule}, on a "
          f"{size[0]}x{size[1]} torus; checkpoint {ckpt['path']} (step {ckpt['step']}, {kind})")
    print(f"{gens} generations in {seconds:.1f} s ({gens / seconds:.1f} generations/s, model and simulator)")
    first = comparison.first_wrong()[0]
    if first is None:
        print(f"exact: no wrong cell in {gens} generations")
    else:
        print(f"first divergence: generation {first} "
              f"({int(comparison.wrong_cells[0, first])} wrong cells of {size[0] * size[1]})")
    print("cell accuracy per generation (%):")
    print("\n".join(accuracy_table(comparison)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
