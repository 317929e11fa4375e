"""Universality: do independently trained seeds learn the same algorithm?

    python -m interfere.universality --seeds 0 1 2 3 4 [--config-name exp/cpu_demo] [--samples 256]
                                     [--min-acc 0.999]
    python -m interfere.universality --ckpts A/latest.pt B/latest.pt ...   # compare checkpoints as they are

Trains the config once per seed (run ids ``universality_<exp>_seed<S>``; an existing run is reused,
so an interrupted study resumes where it stopped; ``--ckpts`` compares given checkpoints instead), runs
the circuit analysis (:mod:`interfere.explore.circuit`: roles in input variables, tested by interchange)
on each, and compares the seeds whose held-out accuracy reaches ``--min-acc``: a comparison of models
that did not learn would compare failures. Heads are interchangeable within a layer, so roles are
matched up to a permutation of the heads: per layer and position group, the multiset of head roles and
the MLP's role. Writes a side-by-side table (``universality.md``), a figure of every role per seed and
``summary.json`` into ``assets/explorations/<timestamp>/``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from interfere.cli import command_line, exit_on_user_error
from interfere.config import compose, resolve_device
from interfere.cpu import configure_cpu, cpu_description
from interfere.data.stream import DataConfig
from interfere.errors import UserError
from interfere.evaluate import heldout_metrics
from interfere.explore import circuit
from interfere.explore.common import Context, staged_dir
from interfere.explore.interchange import CELL_ROLES
from interfere.model.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, weights_hash
from interfere.thresholds import load_thresholds
from interfere.viz.style import caption, save


def run_id(exp_name: str, seed: int) -> str:
    return f"universality_{exp_name}_seed{seed}"


def checkpoint_for(config_name: str, seed: int, ckpt_dir: str) -> dict:
    """The seed's checkpoint: reused if it exists, else trained now (in this process)."""
    logs = Path(ckpt_dir).parent / "runs"  # checkpoints/ -> runs/, as training's defaults do
    cfg = compose(config_name, [f"seed={seed}", f"train.ckpt_dir={ckpt_dir}", f"train.log_dir={logs}"])
    rid = run_id(cfg.exp_name, seed)
    try:
        return load_checkpoint(run_id=rid, ckpt_dir=ckpt_dir)
    except CheckpointError:
        from interfere.train.loop import train  # only this command trains; the analyses never import the loop

        print(f"universality: training {config_name} seed {seed} as run {rid} ...", flush=True)
        cfg.train.run_id = rid
        train(cfg)
        return load_checkpoint(run_id=rid, ckpt_dir=ckpt_dir)


def signature(roles: dict[str, str]) -> dict[tuple[int, str], tuple[tuple[str, ...], str]]:
    """Per (layer, group): (the sorted head roles, the MLP's role): what must match for "the same algorithm"."""
    out: dict[tuple[int, str], tuple[list[str], str]] = {}
    for slot, role in roles.items():
        name, group = slot.split("@")
        layer = int(name[3:] if name.startswith("MLP") else name[1:].split("H")[0])
        heads, mlp = out.get((layer, group), ([], ""))
        out[(layer, group)] = (heads, role) if name.startswith("MLP") else (heads + [role], mlp)
    return {key: (tuple(sorted(h)), m) for key, (h, m) in sorted(out.items())}


def recurring(signatures: list[dict]) -> list[str]:
    """What every seed has, per (layer, group): the head roles common to all (as a multiset) and a shared
    MLP role."""
    lines = []
    for key in signatures[0]:
        common = Counter(signatures[0][key][0])
        for sig in signatures[1:]:
            common &= Counter(sig[key][0])
        mlps = {sig[key][1] for sig in signatures}
        layer, group = key
        parts = [f"heads {', '.join(sorted(common.elements()))}" if common else "no head role in common"]
        parts.append(f"MLP{layer} {mlps.pop()}" if len(mlps) == 1 else f"MLP{layer} differs")
        lines.append(f"L{layer} at {group}: " + "; ".join(parts))
    return lines


def compare(results: dict[int, dict]) -> str:
    """One line: the same algorithm (up to head order) in every compared seed, or what differs."""
    sigs = {seed: signature(r["roles"]) for seed, r in results.items()}
    first_seed, first = next(iter(sigs.items()))
    differ = [seed for seed, s in sigs.items() if s != first]
    if not differ:
        return "the same roles in every compared seed, up to the order of the heads"
    diffs = []
    for seed in differ:
        for key, (heads, mlp) in sigs[seed].items():
            ref_heads, ref_mlp = first[key]
            if heads != ref_heads:
                diffs.append(f"seed {seed} L{key[0]}@{key[1]} heads {list(heads)} vs seed {first_seed} "
                             f"{list(ref_heads)}")
            if mlp != ref_mlp:
                diffs.append(f"seed {seed} MLP{key[0]}@{key[1]} {mlp} vs seed {first_seed} {ref_mlp}")
    return f"different algorithms: {len(diffs)} differences, e.g. " + "; ".join(diffs[:6])


def table(results: dict[int, dict], compared: list[int]) -> str:
    """Markdown, one column per seed (roles per component and position group)."""
    seeds = list(results)
    slots = list(next(iter(results.values()))["roles"])
    mark = {s: "" if s in compared else " (not learned)" for s in seeds}
    rows = [["held-out accuracy"] + [f"{100 * results[s]['heldout_acc']:.3f}%{mark[s]}" for s in seeds],
            ["minimal circuit size"] + [str(len(results[s]["circuit"])) for s in seeds]]
    rows += [[slot] + [results[s]["roles"][slot] for s in seeds] for slot in slots]
    rows += [["all roles at once"] + [f"{100 * results[s]['account']['all_at_once']['acc']:.2f}%" for s in seeds],
             ["board roles alone"] + [f"{100 * results[s]['account']['board_roles']['acc']:.2f}%" for s in seeds],
             ["lookup set (carry)"] + [f"{results[s]['lookup']['size']} ({100 * results[s]['lookup']['carry']:.0f}%)"
                                       for s in seeds],
             ["card verdict"] + [results[s]["verdict"] for s in seeds]]
    head = "| | " + " | ".join(f"seed {s}" for s in seeds) + " |\n|---|" + "---|" * len(seeds) + "\n"
    return head + "".join("| " + " | ".join(r) + " |\n" for r in rows)


def roles_figure(results: dict[int, dict], out: Path, command: str) -> Path:
    """Seeds x (component, group), coloured by role."""
    seeds = list(results)
    slots = list(next(iter(results.values()))["roles"])
    names = list(CELL_ROLES) + ["computed", "unexplained"]
    grid = np.array([[names.index(results[s]["roles"][slot]) for slot in slots] for s in seeds])
    fig, ax = plt.subplots(figsize=(1.2 + 0.62 * len(slots), 1.4 + 0.5 * len(seeds)), layout="constrained")
    cmap = plt.get_cmap("tab20", len(names))
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, names[v].replace("+", "+\n"), ha="center", va="center", fontsize=5.5)
    ax.set_xticks(range(len(slots)), slots, rotation=90, fontsize=6.5)
    ax.set_yticks(range(len(seeds)), [f"seed {s}" for s in seeds])
    ax.set_title("each component's role in input variables (interchange-tested), per training seed")
    caption(fig, command)
    return save(fig, out / "universality_roles.png")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="Train several seeds and compare the algorithms they learn.")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--config-name", default="exp/cpu_demo")
    p.add_argument("--ckpt-dir", default="checkpoints")
    p.add_argument("--samples", type=int, default=256, help="boards per accuracy in the circuit analysis")
    p.add_argument("--min-acc", type=float, default=0.999, help="compare only seeds this accurate on held-out rules")
    p.add_argument("--ckpts", nargs="+", default=None, metavar="PATH", help="compare these checkpoints (no training)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    with exit_on_user_error():
        if args.ckpts is None and len(set(args.seeds)) < 2 or args.ckpts is not None and len(args.ckpts) < 2:
            raise UserError("give at least two different seeds (--seeds) or checkpoints (--ckpts)")
        compose(args.config_name)  # an unknown config fails before any training
        configure_cpu(args.threads)
        th = load_thresholds()
        ckpts = ([load_checkpoint(ckpt=path) for path in args.ckpts] if args.ckpts
                 else [checkpoint_for(args.config_name, seed, args.ckpt_dir) for seed in args.seeds])
        args.seeds = [int(c["config"].get("seed", i)) for i, c in enumerate(ckpts)]
        t0, results = time.time(), {}
        with staged_dir(args.out) as (out, final):
            for seed, ckpt in zip(args.seeds, ckpts):
                results[seed] = analyse_seed(ckpt, args.samples, th)
            summary = write_outputs(results, args, out, time.time() - t0)
        print(summary["table"] + "\n" + summary["verdict"] + f"\nuniversality: {final}")
        return summary


def write_outputs(results: dict[int, dict], args: argparse.Namespace, out: Path, seconds: float) -> dict:
    compared = [s for s, r in results.items() if r["heldout_acc"] >= args.min_acc]
    if len(compared) >= 2:
        verdict = compare({s: results[s] for s in compared})
        common = recurring([signature(results[s]["roles"]) for s in compared])
    else:
        verdict, common = f"fewer than two seeds reach {100 * args.min_acc:.1f}% held-out: nothing to compare", []
    md = table(results, compared)
    (out / "universality.md").write_text(f"# Universality over seeds {args.seeds}\n\nCPU: {cpu_description()}"
                                         f"\n\n{md}\n{verdict}\n\n"
                                         + "".join(f"- {line}\n" for line in common))
    roles_figure(results, out, command_line())
    summary = {"seeds": args.seeds, "compared": compared, "config": args.config_name, "cpu": cpu_description(),
               "verdict": verdict,
               "recurring": common, "results": results, "command": command_line(), "seconds": round(seconds, 1),
               "table": md}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def analyse_seed(ckpt: dict, samples: int, th: dict) -> dict:
    model = model_from_checkpoint(ckpt, resolve_device("cpu"))
    data = DataConfig(**ckpt["config"]["data"])
    ctx = Context(model=model, ckpt=ckpt, layout=model.layout, data=data, out=Path(), seed=0, rule=None,
                  command=command_line())
    t0 = time.time()
    params = circuit.Params(samples=samples, density=(data.density_min, data.density_max), thresholds=th)
    ex = ctx.examples(samples)
    ex.acts.want(circuit.wants(model, params))
    result = circuit.measure(model, ex, params)
    return {"run_id": ckpt.get("run_id"), "checkpoint": ckpt["path"], "weights_sha256": weights_hash(ckpt["path"]),
            "heldout_acc": heldout_metrics(model, data, 1024, seed=0)["cell_acc"],
            "seconds": round(time.time() - t0, 1), "roles": {k: r["uses"] for k, r in result.roles.items()},
            "circuit": result.circuit, "account": result.account, "verdict": result.verdict,
            "lookup": {k: result.lookup[k] for k in ("size", "carry", "leak", "random_carry")},
            "algorithm": result.algorithm, "card": result.card}


if __name__ == "__main__":
    main()
