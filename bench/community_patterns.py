"""The community's patterns as a test of a checkpoint: per pattern, the first wrong generation.

    python bench/community_patterns.py [--patterns ../shared/patterns/patterns.json] [--sizes 64 128]
        [--gens 200] [--run-id ID | --ckpt PATH] [--threads 2] [--out bench/results/community_patterns.json]

Reads the shared collection (``{name, rule, width, height, cells: [[row, col], ...]}`` per pattern,
decoded from the community's RLE files; it is measured on, never trained on, and never copied into
the repository), writes each pattern as an RLE file into a temporary folder (so the path exercised
is the one users take: RLE -> :mod:`interfere.pattern_eval`), and rolls all of them out at every
size. Prints the per-pattern table, the share exact and the seconds per size.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from interfere.ca.rle import Pattern, write_rle
from interfere.ca.rules import parse_rule
from interfere.cli import add_checkpoint_args, exit_on_user_error, load_model_from_args
from interfere.cpu import cpu_description
from interfere.model.checkpoint import newest_size_free
from interfere.pattern_eval import format_pattern_table, pattern_rollouts, read_folder


def write_collection(collection: Path, folder: Path) -> None:
    for i, entry in enumerate(json.loads(collection.read_text())):
        cells = torch.zeros(entry["height"], entry["width"], dtype=torch.long)
        for r, c in entry["cells"]:
            cells[r, c] = 1
        write_rle(Pattern(cells, parse_rule(entry["rule"]), [f"#N {entry['name']}"]), folder / f"{i:02d}.rle")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patterns", default="../shared/patterns/patterns.json")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--gens", type=int, default=200)
    ap.add_argument("--out", default="bench/results/community_patterns.json")
    add_checkpoint_args(ap)
    args = ap.parse_args()
    with exit_on_user_error(), tempfile.TemporaryDirectory() as tmp:
        write_collection(Path(args.patterns), Path(tmp))
        patterns = read_folder(tmp)
        if args.ckpt is None and args.run_id is None:
            args.ckpt = newest_size_free(args.ckpt_dir)
        model, ckpt = load_model_from_args(args)
        results = {"checkpoint": ckpt["path"], "step": ckpt["step"], "cpu": cpu_description(), "threads": args.threads,
                   "gens": args.gens, "sizes": {}}
        for size in args.sizes:
            model.resize(size, size)
            t0 = time.perf_counter()
            rows = pattern_rollouts(model, patterns, args.gens)
            seconds = time.perf_counter() - t0
            for row in rows:
                row["pattern"] = row.pop("name")
            print(format_pattern_table(rows, args.gens))
            print(f"{size}x{size}: {seconds:.1f} s for {len(rows)} patterns x {args.gens} generations "
                  f"(model and simulator)\n")
            results["sizes"][str(size)] = {"seconds": seconds, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
