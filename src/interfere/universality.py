"""Universality: do independently trained seeds learn the same algorithm?

    python -m interfere.universality --seeds 0 1 2 3 4 [--config-name exp/cpu_demo] [--samples 256]

Trains the config once per seed (run ids ``universality_<exp>_seed<S>``; an existing run is reused,
so an interrupted study resumes where it stopped), runs the circuit analysis
(:mod:`interfere.explore.circuit`) on each, and writes a side-by-side table (``universality.md``),
a figure of every component's role per seed and ``summary.json`` into
``assets/explorations/<timestamp>/``. Heads are interchangeable within a layer, so two seeds have
the same algorithm when every layer has the same multiset of head roles and the same MLP role.
"""

from __future__ import annotations

import argparse
import json
import time
from argparse import Namespace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from interfere.cli import command_line, exit_on_user_error
from interfere.config import compose, resolve_device
from interfere.cpu import configure_cpu
from interfere.data.stream import DataConfig
from interfere.errors import UserError
from interfere.evaluate import heldout_metrics
from interfere.explore import circuit
from interfere.explore.common import Context, staged_dir
from interfere.model.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from interfere.viz.style import caption, save


def run_id(exp_name: str, seed: int) -> str:
    return f"universality_{exp_name}_seed{seed}"


def checkpoint_for(config_name: str, seed: int, ckpt_dir: str) -> dict:
    """The seed's checkpoint: reused if it exists, else trained now (in this process)."""
    logs = Path(ckpt_dir).parent / "runs"  # checkpoints/ -> runs/, as training's defaults do
    cfg = compose(config_name, [f"seed={seed}", f"model.seed={seed}", f"train.ckpt_dir={ckpt_dir}",
                                f"train.log_dir={logs}"])
    rid = run_id(cfg.exp_name, seed)
    try:
        return load_checkpoint(run_id=rid, ckpt_dir=ckpt_dir)
    except CheckpointError:
        from interfere.train.loop import train  # only this command trains; the analyses never import the loop

        print(f"universality: training {config_name} seed {seed} as run {rid} ...", flush=True)
        cfg.train.run_id = rid
        train(cfg)
        return load_checkpoint(run_id=rid, ckpt_dir=ckpt_dir)


def signature(roles: dict[str, str]) -> dict[int, tuple]:
    """Per layer: (sorted head roles, MLP role): what must match for "the same algorithm"."""
    layers: dict[int, tuple[list[str], str]] = {}
    for name, role in roles.items():
        layer = int(name[3:] if name.startswith("MLP") else name[1:].split("H")[0])
        heads, mlp = layers.get(layer, ([], ""))
        layers[layer] = (heads, role) if name.startswith("MLP") else (heads + [role], mlp)
    return {layer: (tuple(sorted(h)), m) for layer, (h, m) in sorted(layers.items())}


def compare(results: dict[int, dict]) -> str:
    """One line: the same algorithm in every seed, or what differs."""
    sigs = {seed: signature(r["roles"]) for seed, r in results.items()}
    first_seed, first = next(iter(sigs.items()))
    differ = [seed for seed, s in sigs.items() if s != first]
    sizes = sorted({len(r["circuit"]) for r in results.values()})
    size = f"circuit size {sizes[0]}" if len(sizes) == 1 else f"circuit sizes {sizes[0]}-{sizes[-1]}"
    if not differ:
        return f"the same roles in every seed ({size}), carried by different heads where the table says so"
    diffs = []
    for seed in differ:
        for layer, (heads, mlp) in sigs[seed].items():
            ref_heads, ref_mlp = first.get(layer, ((), ""))
            if heads != ref_heads:
                diffs.append(f"seed {seed} L{layer} heads {list(heads)} vs seed {first_seed} {list(ref_heads)}")
            if mlp != ref_mlp:
                diffs.append(f"seed {seed} MLP{layer} {mlp} vs seed {first_seed} {ref_mlp}")
    return f"different algorithms ({size}): " + "; ".join(diffs)


def table(results: dict[int, dict]) -> str:
    """Markdown, one column per seed."""
    seeds = list(results)
    comps = list(next(iter(results.values()))["roles"])
    rows = [["held-out accuracy"] + [f"{100 * results[s]['heldout_acc']:.3f}%" for s in seeds],
            ["minimal circuit size"] + [str(len(results[s]["circuit"])) for s in seeds]]
    rows += [[c] + [results[s]["roles"][c] + (" *" if c in results[s]["circuit"] else "") for s in seeds]
             for c in comps]
    rows += [["all roles at once"] + [f"{100 * results[s]['account_acc']:.2f}%" for s in seeds],
             ["card verdict"] + [results[s]["verdict"] for s in seeds]]
    head = "| | " + " | ".join(f"seed {s}" for s in seeds) + " |\n|---|" + "---|" * len(seeds) + "\n"
    return head + "".join("| " + " | ".join(r) + " |\n" for r in rows) + "\n(* in the minimal circuit)\n"


def roles_figure(results: dict[int, dict], out: Path, command: str) -> Path:
    """Seeds x components, coloured by role."""
    seeds = list(results)
    comps = list(next(iter(results.values()))["roles"])
    names = [v.name for v in circuit.VARIABLES] + [circuit.UNEXPLAINED]
    grid = np.array([[names.index(results[s]["roles"][c]) for c in comps] for s in seeds])
    fig, ax = plt.subplots(figsize=(1.2 + 0.85 * len(comps), 1.2 + 0.5 * len(seeds)), layout="constrained")
    cmap = plt.get_cmap("tab10", len(names))
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, names[v], ha="center", va="center", fontsize=6.5,
                fontweight="bold" if comps[j] in results[seeds[i]]["circuit"] else "normal")
    ax.set_xticks(range(len(comps)), comps)
    ax.set_yticks(range(len(seeds)), [f"seed {s}" for s in seeds])
    ax.set_title("each component's tested role, per training seed (bold: in the minimal circuit)")
    caption(fig, command)
    return save(fig, out / "universality_roles.png")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="Train several seeds and compare the algorithms they learn.")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--config-name", default="exp/cpu_demo")
    p.add_argument("--ckpt-dir", default="checkpoints")
    p.add_argument("--samples", type=int, default=256, help="boards per accuracy in the circuit analysis")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    with exit_on_user_error():
        if len(set(args.seeds)) < 2:
            raise UserError(f"--seeds needs at least two different seeds, got {args.seeds}")
        compose(args.config_name)  # an unknown config fails before any training
        configure_cpu(args.threads)
        t0, results = time.time(), {}
        with staged_dir(args.out) as (out, final):
            for seed in args.seeds:
                ckpt = checkpoint_for(args.config_name, seed, args.ckpt_dir)
                results[seed] = analyse_seed(ckpt, seed, out, args.samples)
            verdict = compare(results)
            md = table(results)
            (out / "universality.md").write_text(f"# Universality over seeds {args.seeds}\n\n{md}\n{verdict}\n")
            roles_figure(results, out, command_line())
            (out / "summary.json").write_text(json.dumps({
                "seeds": args.seeds, "config": args.config_name, "verdict": verdict, "results": results,
                "command": command_line(), "seconds": round(time.time() - t0, 1)}, indent=2, default=str))
        print(md + "\n" + verdict + f"\nuniversality: {final}")
        return {"verdict": verdict, "results": results}


def analyse_seed(ckpt: dict, seed: int, out: Path, samples: int) -> dict:
    model = model_from_checkpoint(ckpt, resolve_device("cpu"))
    data = DataConfig(**ckpt["config"]["data"])
    ctx = Context(model=model, ckpt=ckpt, layout=model.layout, data=data, out=out / f"seed{seed}", seed=0,
                  rule=None, command=command_line())
    ctx.out.mkdir(parents=True)
    t0 = time.time()
    numbers, _ = circuit.run(ctx, Namespace(samples=samples))
    keep = ("circuit", "circuit_acc", "roles", "account_acc", "verdict", "card", "importance", "first_decodable")
    return {"run_id": ckpt.get("run_id"), "checkpoint": ckpt["path"],
            "heldout_acc": heldout_metrics(model, data, 1024, seed=0)["cell_acc"],
            "seconds": round(time.time() - t0, 1), **{k: numbers[k] for k in keep}}


if __name__ == "__main__":
    main()
