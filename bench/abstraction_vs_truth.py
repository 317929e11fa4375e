"""The causal abstraction scored against the hand-made models: per variant and variable, the AUROC of ranking every
searched site by its IIA against holding the variable (as built), the sites claimed and missed, the case groups, and
the highest IIA at a site that holds nothing (against its base rate). Prints a markdown table and writes JSON.

    python bench/abstraction_vs_truth.py [--variants attention split backup ...] [--out bench/results/abstraction.json]

Every site of each model, every variable, the default budget (explore.abstraction); minutes per variant.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from interfere.cpu import configure_cpu, cpu_description
from interfere.explore import abstraction
from interfere.explore.alignment.truth import score
from interfere.model.handmade import VARIANTS, build, ground_truth
from interfere.thresholds import load_thresholds


def one_variant(variant: str, th: dict) -> dict:
    t0 = time.perf_counter()
    result = abstraction.measure(build(variant), None, abstraction.Params(thresholds=th, aligned_heads=False))
    found = {v: d for v, d in result.variables.items()}
    scored = score(ground_truth(variant)["variables"], found)
    base = max((e.get("base_rate") or 0.0 for d in found.values() for e in d["sites"]), default=float("nan"))
    return {"scored": scored, "seconds": round(time.perf_counter() - t0, 1), "max_base_rate": base,
            "by_case": {v: d["by_case"] for v, d in found.items()}}


def table(results: dict[str, dict]) -> str:
    head = "| variant | variable | AUROC | claimed / built sites | missed | false | cases wrong | max IIA at a " \
           "site that holds nothing | s |\n|---|---|---|---|---|---|---|---|---|\n"
    rows = []
    for variant, r in results.items():
        for variable, s in r["scored"].items():
            rows.append(f"| {variant} | {variable} | {s['auroc']:.3f} | {len(s['claimed'])} / {len(s['built'])} | "
                        f"{', '.join(s['missed']) or '-'} | {', '.join(s['false']) or '-'} | "
                        f"{', '.join(s['cases_wrong']) or '-'} | {s['max_negative']:.3f} | {r['seconds']} |")
    return head + "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench/results/abstraction_vs_truth.json")
    args = p.parse_args()
    configure_cpu(args.threads)
    th = load_thresholds()
    results = {}
    for v in args.variants:
        results[v] = one_variant(v, th)
        print(f"{v}: {results[v]['seconds']} s", flush=True)
    md = table(results)
    print(md + f"\nCPU: {cpu_description()}, {args.threads} threads")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpu": cpu_description(), "results": results, "table": md}, indent=2,
                                         default=str))


if __name__ == "__main__":
    main()
