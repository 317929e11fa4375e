"""Universality: do independently trained seeds learn the same algorithm?

    python -m interfere universality --seeds 0 1 2 3 4 [--config-name exp/cpu_demo] [--samples 256]
                                     [--min-acc 0.999]
    python -m interfere universality --ckpts A/latest.pt B/latest.pt ...   # compare checkpoints as they are

Trains the config once per seed (run ids ``universality_<exp>_seed<S>``; an existing run is reused,
so an interrupted study resumes where it stopped; ``--ckpts`` compares given checkpoints instead), runs
the circuit analysis (:mod:`interfere.explore.circuit`) on each, and compares the seeds whose held-out accuracy
reaches ``--min-acc`` (a comparison of models that did not learn would compare failures) by their lookup maps: per
case, where the governing bit enters, which slot looks it up and which relay it. Heads are interchangeable within a
layer, so two seeds have the same algorithm when their routes agree up to a permutation of the heads of each layer
(:func:`signature`: the routes with head indices hidden, and per layer what each head does). Writes a side-by-side
table (``universality.md``), a figure of every case's route per seed and ``summary.json`` into
``assets/explorations/<timestamp>/``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from interfere.ca.rules import BIT_NAMES
from interfere.cli import add_thresholds_arg, command_line, exit_on_user_error, thresholds_from_args
from interfere.config import compose, resolve_device
from interfere.cpu import configure_cpu, cpu_description
from interfere.data.stream import DataConfig
from interfere.errors import UserError
from interfere.evaluate import heldout_metrics
from interfere.explore import circuit
from interfere.explore.account.routes import UNMEASURED
from interfere.explore.account.slots import Slot
from interfere.explore.analysis import jsonable
from interfere.explore.common import Context, staged_dir
from interfere.model.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, weights_hash
from interfere.viz.style import ACCENT, ACCENT_2, BIRTH_COLOR, CONTROL_COLOR, caption, save


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


def generic(name: str | None) -> str:
    """A slot with its head index hidden (``L1H2@targets`` -> ``L1H*@targets``); MLPs keep their names."""
    if not name:
        return "none"
    slot = Slot.from_name(name)
    c = slot.component
    return name if c.head is None else f"L{c.layer}H*@{slot.group}"


def signature(routes: dict[str, dict]) -> tuple[dict, dict]:
    """(per case: where the flip enters, the lookup and the relays with every head shown only by its layer; per layer:
    the multiset of what each of its heads does over the cases). Two seeds have equal signatures exactly when their
    routes agree up to a permutation of each layer's heads: the first part fixes everything but which head, the
    second that one head does in one seed what one head does in the other."""
    per_case, jobs = {}, {}
    for case in BIT_NAMES:
        r = routes[case]
        relays = [name for name, _ in r["relays"]]
        per_case[case] = (r["enters"], generic(r["lookup"]), tuple(sorted(generic(n) for n in relays)))
        for part, names in (("lookup", [r["lookup"]] if r["lookup"] else []), ("relay", relays)):
            for name in names:
                slot = Slot.from_name(name)
                if slot.component.head is not None:
                    jobs.setdefault(slot.component, set()).add((case, part, slot.group))
    per_layer: dict[int, list] = {}
    for component, job in jobs.items():
        per_layer.setdefault(component.layer, []).append(tuple(sorted(job)))
    return per_case, {layer: sorted(heads) for layer, heads in sorted(per_layer.items())}


def describe(route: tuple[str, str, tuple[str, ...]]) -> str:
    enters, lookup, relays = route
    return f"{enters}: {lookup}" + "".join(f" > {r}" for r in relays)


def compare(results: dict[str, dict]) -> str:
    """One line: the same routes (up to a permutation of the heads of each layer) in every compared seed, or what
    differs: the cases whose route differs, and the layers whose heads share the work differently."""
    sigs = {seed: signature(r["routes"]) for seed, r in results.items()}
    first_seed, (first_cases, first_heads) = next(iter(sigs.items()))
    diffs = []
    for seed, (cases, heads) in sigs.items():
        diffs += [f"{seed} {case} {describe(cases[case])} vs {first_seed} {describe(first_cases[case])}"
                  for case in BIT_NAMES if cases[case] != first_cases[case]]
        diffs += [f"{seed} layer {layer}'s heads share the cases differently from {first_seed}'s"
                  for layer in sorted(set(heads) | set(first_heads)) if heads.get(layer) != first_heads.get(layer)]
    if not diffs:
        return "the same routes in every compared seed, up to a permutation of the heads of each layer"
    return f"different algorithms: {len(diffs)} differences, e.g. " + "; ".join(diffs[:6])


def recurring(results: dict[str, dict]) -> list[str]:
    """What every compared seed shares, per case: where the flip enters, and the lookup's kind (an MLP, or a head of
    some layer) at which positions."""
    lines = []
    for case in BIT_NAMES:
        kinds = {(r["routes"][case]["enters"], _kind(r["routes"][case]["lookup"])) for r in results.values()}
        if len(kinds) == 1:
            enters, kind = kinds.pop()
            lines.append(f"{case}: enters the {enters}, looked up by {kind} in every seed")
    return lines


def _kind(name: str | None) -> str:
    if not name:
        return "no located slot"
    slot = Slot.from_name(name)
    if slot.component.head is None:
        return f"{slot.component.name} at the {slot.group}"
    return f"a layer-{slot.component.layer} head at the {slot.group}"


def table(results: dict[str, dict], compared: list[str]) -> str:
    """Markdown, one column per seed: every case's route, then the account's numbers."""
    seeds = list(results)
    mark = {s: "" if s in compared else " (not learned)" for s in seeds}
    rows = [["held-out accuracy"] + [f"{100 * results[s]['heldout_acc']:.3f}%{mark[s]}" for s in seeds],
            ["weights"] + [results[s]["weights_sha256"] for s in seeds]]
    rows += [[case] + [describe(_plain(results[s]["routes"][case])) for s in seeds] for case in BIT_NAMES]
    rows += [["all roles at once"] + [f"{100 * results[s]['account']['all_at_once']['acc']:.2f}%" for s in seeds],
             ["heads idealised at once"] + [f"{100 * results[s]['idealised']:.2f}%" for s in seeds],
             ["card verdict"] + [results[s]["verdict"] for s in seeds]]
    head = "| | " + " | ".join(seeds) + " |\n|---|" + "---|" * len(seeds) + "\n"
    return head + "".join("| " + " | ".join(r) + " |\n" for r in rows)


def _plain(route: dict) -> tuple[str, str, tuple[str, ...]]:
    return route["enters"], route["lookup"] or "none", tuple(name for name, _ in route["relays"])


def routes_figure(results: dict[str, dict], out: Path, command: str) -> Path:
    """Seeds x cases, coloured by where the flip enters, with the lookup written in."""
    seeds, kinds = list(results), ["board", "targets", "rule", "separators", UNMEASURED]
    grid = np.array([[kinds.index(results[s]["routes"][c]["enters"].split("+")[0]) for c in BIT_NAMES] for s in seeds])
    fig, ax = plt.subplots(figsize=(1.4 + 0.62 * len(BIT_NAMES), 1.3 + 0.42 * len(seeds)), layout="constrained")
    colours = [ACCENT, ACCENT_2, BIRTH_COLOR, CONTROL_COLOR, "#dddddd"]
    ax.imshow(grid, cmap=ListedColormap(colours), vmin=-0.5, vmax=len(kinds) - 0.5, aspect="auto")
    for (i, j), _ in np.ndenumerate(grid):
        lookup = results[seeds[i]]["routes"][BIT_NAMES[j]]["lookup"] or "?"
        ax.text(j, i, lookup.replace("@", "\n@"), ha="center", va="center", fontsize=5, color="white")
    ax.set_xticks(range(len(BIT_NAMES)), BIT_NAMES)
    ax.set_yticks(range(len(seeds)), seeds)
    labels = [k if k == UNMEASURED else f"enters the {k}" for k in kinds]
    ax.legend(handles=[Patch(color=c, label=label) for c, label in zip(colours, labels)], frameon=False,
              fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("where each case's governing bit enters, and the slot that looks it up, per training seed")
    caption(fig, command)
    return save(fig, out / "universality_routes.png")


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
    add_thresholds_arg(p)
    args = p.parse_args(argv)
    with exit_on_user_error():
        if args.ckpts is None and len(set(args.seeds)) < 2 or args.ckpts is not None and len(args.ckpts) < 2:
            raise UserError("give at least two different seeds (--seeds) or checkpoints (--ckpts)")
        compose(args.config_name)  # an unknown config fails before any training
        configure_cpu(args.threads)
        th = thresholds_from_args(args)
        ckpts = ([load_checkpoint(ckpt=path) for path in args.ckpts] if args.ckpts
                 else [checkpoint_for(args.config_name, seed, args.ckpt_dir) for seed in args.seeds])
        args.seeds = [int(c["config"].get("seed", i)) for i, c in enumerate(ckpts)]
        labels = column_labels(ckpts, args.seeds)
        t0, results = time.time(), {}
        with staged_dir(args.out) as (out, final):
            for label, ckpt in zip(labels, ckpts):
                results[label] = analyse_seed(ckpt, args.samples, th)
            summary = write_outputs(results, args, out, time.time() - t0)
        print(summary["table"] + "\n" + summary["verdict"] + f"\nuniversality: {final}")
        return summary


def column_labels(ckpts: list[dict], seeds: list[int]) -> list[str]:
    """One name per checkpoint: its training seed where those differ, else its run id, else its path; the same
    checkpoint twice is refused."""
    paths = [str(Path(c["path"]).resolve()) for c in ckpts]
    if len(set(paths)) < len(paths):
        raise UserError("a checkpoint is given twice: compare different checkpoints")
    for labels in ([f"seed {s}" for s in seeds], [str(c.get("run_id")) for c in ckpts]):
        if len(set(labels)) == len(labels):
            return labels
    return paths


def write_outputs(results: dict[str, dict], args: argparse.Namespace, out: Path, seconds: float) -> dict:
    compared = [s for s, r in results.items() if r["heldout_acc"] >= args.min_acc]
    if len(compared) >= 2:
        verdict = compare({s: results[s] for s in compared})
        common = recurring({s: results[s] for s in compared})
    else:
        verdict, common = f"fewer than two seeds reach {100 * args.min_acc:.1f}% held-out: nothing to compare", []
    md = table(results, compared)
    (out / "universality.md").write_text(f"# Universality over seeds {args.seeds}\n\nCPU: {cpu_description()}"
                                         f"\n\n{md}\n{verdict}\n\n"
                                         + "".join(f"- {line}\n" for line in common))
    routes_figure(results, out, command_line())
    summary = {"seeds": args.seeds, "compared": compared, "config": args.config_name, "cpu": cpu_description(),
               "verdict": verdict,
               "recurring": common, "results": results, "command": command_line(), "seconds": round(seconds, 1),
               "table": md}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else value


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
            "seconds": round(time.time() - t0, 1), "roles": {k: r.uses for k, r in result.roles.items()},
            "routes": jsonable(result.routes), "circuit": result.circuit, "account": jsonable(result.account),
            "verdict": result.verdict,
            "idealised": nan_if_none(result.idealised.all_case_conditional),
            "algorithm": result.algorithm, "card": result.card}


if __name__ == "__main__":
    main()
