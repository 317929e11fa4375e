"""Every method scored against every hand-made model (issue 34), and against models trained to a known algorithm
(--ckpt: a checkpoint that carries its ground truth, issue 41): prints a markdown table, method x model, found vs
built, and writes it with the raw numbers to JSON.

    python bench/methods_vs_truth.py [--samples 64] [--variants split backup ...] [--ckpt PATH ...]
                                     [--out bench/results/methods_vs_truth.json]

Per variant (interfere.model.handmade, default heads): the circuit analysis (the lookup map's routes and kinds, the
roles, the idealised heads, the read-out's neurons) scored by interfere.explore.account.truth (cases and slots as
built, and node-level AUROC, TPR and FPR against the built circuit), and H1-H4 decided on the report's analyses at the
report's --quick sample counts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from interfere.cpu import configure_cpu, cpu_description
from interfere.data.stream import random_boards
from interfere.explore import circuit
from interfere.explore.account.truth import node_aurocs, score
from interfere.explore.analysis import jsonable
from interfere.explore.common import examples_of
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint
from interfere.model.handmade import VARIANTS, build, ground_truth
from interfere.model.life_model import LifeTransformer
from interfere.report.sections import Timer, analyse, hypothesis_params, report_samples
from interfere.report.verdicts import all_verdicts
from interfere.thresholds import load_thresholds


def one_model(name: str, model: LifeTransformer, truth: dict, samples: int, th: dict) -> dict:
    """Every method on one model with a known algorithm, scored against ``truth``."""
    g = torch.Generator().manual_seed(0)
    ex = examples_of(model, torch.rand(samples, 18, generator=g) < 0.5, random_boards(samples, 8, 8, 0.1, 0.9, g))
    t0 = time.perf_counter()
    account = jsonable(circuit.measure(model, ex, circuit.Params(thresholds=th, samples=samples)))
    seconds = time.perf_counter() - t0
    found = score(truth, account)
    nodes = node_aurocs(truth, account)
    kinds_right = sum(truth["routes"][c]["kind"] == account["routes"][c].get("kind") for c in truth["routes"])
    run = jsonable(analyse(model, ex, hypothesis_params(report_samples(True, 64), th, 0), Timer(), name))
    verdicts = {h: v.verdict for h, v in all_verdicts([run], th).items()}
    ideal = account["idealised"]
    return {"routes": found["routes"], "roles": found["roles"], "verdicts": verdicts, "nodes": nodes,
            "kinds_right": kinds_right, "halves_differ": account["map_halves"]["differ"],
            "card_verdict": account["verdict"], "idealised_named": ideal["all_named"],
            "idealised_case_conditional": ideal["all_case_conditional"],
            "templates": {k: h["template"] for k, h in ideal["heads"].items()},
            "readout_neurons": account["readout"]["size"], "readout_carry": account["readout"]["carry"],
            "circuit_seconds": round(seconds, 1)}


def _rates(r: dict) -> str:
    return f"{r['auroc']:.2f} / {r['tpr']:.2f} / {r['fpr']:.2f}"


def table(results: dict[str, dict]) -> str:
    names = list(results)
    rows = [["lookup map: routes as built (of 18)"] + [str(r["routes"]["matched"]) for r in results.values()],
            ["lookup map: lookups and relays as built (of 18; where the bit enters aside)"]
            + [str(r["routes"]["components_matched"]) for r in results.values()],
            ["lookup map: kinds as built (of 18)"] + [str(r["kinds_right"]) for r in results.values()],
            ["lookup map: node AUROC / TPR / FPR"] + [_rates(r["nodes"]["map"]) for r in results.values()],
            ["roles: node AUROC / TPR / FPR"] + [_rates(r["nodes"]["roles"]) for r in results.values()],
            ["map's halves differ at"] + [", ".join(r["halves_differ"]) or "-" for r in results.values()],
            ["account: roles as built (slots a measurement decides)"]
            + [f"{r['roles']['matched']} of {r['roles']['of']}" for r in results.values()],
            ["every head idealised at once (named / case-conditional)"]
            + [f"{100 * r['idealised_named']:.2f}% / {100 * r['idealised_case_conditional']:.2f}%"
               for r in results.values()],
            ["card verdict"] + [r["card_verdict"] for r in results.values()]]
    rows += [[f"{h} verdict"] + [r["verdicts"][h] for r in results.values()] for h in ("H1", "H2", "H3", "H4")]
    rows += [["read-out neurons (carry)"] + [f"{r['readout_neurons']} ({100 * r['readout_carry']:.0f}%)"
                                            for r in results.values()],
             ["circuit analysis, s"] + [str(r["circuit_seconds"]) for r in results.values()]]
    head = "| method | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    return head + "".join("| " + " | ".join(r) + " |\n" for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), help="hand-made variants (default: all)")
    p.add_argument("--ckpt", nargs="*", default=[], help="checkpoints that carry their ground truth (SIIT runs)")
    p.add_argument("--out", default="bench/results/methods_vs_truth.json")
    args = p.parse_args()
    configure_cpu(args.threads)
    th = load_thresholds()
    results = {v: one_model(v, build(v), ground_truth(v), args.samples, th) for v in args.variants}
    for path in args.ckpt:
        ckpt = load_checkpoint(ckpt=path)
        if "ground_truth" not in ckpt:
            raise SystemExit(f"{path}: this checkpoint carries no ground truth (train one with train.siit=VARIANT)")
        results[ckpt["run_id"]] = one_model(ckpt["run_id"], model_from_checkpoint(ckpt), ckpt["ground_truth"],
                                            args.samples, th)
    md = table(results)
    print(md + f"\nCPU: {cpu_description()}, {args.threads} threads")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpu": cpu_description(), "samples": args.samples, "results": results,
                                          "table": md}, indent=2))


if __name__ == "__main__":
    main()
