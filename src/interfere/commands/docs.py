"""Tables in the docs written by commands, not by hand: ``python -m interfere docs`` regenerates every marked table,
``--check`` compares instead and fails on any difference (CI runs the quick ones: ``--quick``).

A table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in a Markdown file under ``docs/`` or in
the README. Its first line states the model (weights hash), the command and the CPU it ran on; the check compares the
rows, not that line (another CPU may run it). Each table of :data:`TABLES` is a function of the reference models and
the hand-made models alone, seeded, so any machine regenerates the same rows (a reference model's weights are the
same everywhere; only training depends on the CPU).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch

from interfere.ca.rules import BIT_NAMES
from interfere.cli import exit_on_user_error
from interfere.cpu import configure_cpu, cpu_description
from interfere.data.stream import DataConfig, heldout_rules, random_boards
from interfere.errors import UserError
from interfere.explore import abstraction
from interfere.explore.account import kinds, routes
from interfere.explore.account.card import case_span
from interfere.explore.account.truth import route_key
from interfere.explore.common import examples_of
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint, weights_hash
from interfere.model.handmade import VARIANTS, build, ground_truth
from interfere.model.pretrained import load_reference
from interfere.model.reference import reference_path
from interfere.thresholds import load_thresholds

ROOT = Path(__file__).resolve().parents[3]
FILES = ("README.md", "docs/experiments.md", "docs/findings.md")
_BLOCK = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table:(?P=name) -->)", re.S)
MAP_BOARDS = 16  # the report's circuit map reads 32; 16 keep the CI check of this table quick


def _map(model, ex, th: dict) -> dict[str, routes.Route]:
    return kinds.lookup_map(model, ex, th)[2]


def reference_map(name: str) -> tuple[str, list[str]]:
    """A reference model's lookup map on 16 boards of held-out rules (seed 0)."""
    model, th = load_reference(name), load_thresholds()["circuit"]
    g = torch.Generator().manual_seed(0)
    rules = heldout_rules(64, 1234)
    rules = rules[torch.randint(0, len(rules), (MAP_BOARDS,), generator=g)]
    found = _map(model, examples_of(model, rules, random_boards(MAP_BOARDS, 8, 8, 0.1, 0.9, g)), th)
    last = f"MLP{model.cfg.n_layers - 1}"
    rows = [f"| case | cells | kind | enters | lookup(s) (carry) | relays (carry) | read-out {last} (carry / needed) |",
            "|---|---|---|---|---|---|---|"]
    for case in BIT_NAMES:
        r = found[case]
        looks = ", ".join(r.lookups) + (f" ({100 * r.lookup_share:.0f}%)" if r.lookup_share else "")
        relays = ", ".join(f"{n} ({100 * c:.0f}%)" for n, c in r.relays) or "-"
        out = r.readout[0][1] if r.readout else float("nan")
        necessary = float("nan") if r.readout_necessary is None else r.readout_necessary
        rows.append(f"| {case} | {r.cells} | {r.kind} | {r.enters} | {looks or '-'} | {relays} | "
                    f"{100 * out:.0f}% / {100 * necessary:.0f}% |")
    return f"ref:{name}, weights {weights_hash(reference_path(name))}", rows


def handmade_maps() -> tuple[str, list[str]]:
    """Every hand-made variant's lookup map against its ground truth (the covering boards of the tests)."""
    th = load_thresholds()["circuit"]
    rows = ["| variant | cases as built (kind, entry, lookups, relays) | kinds found |", "|---|---|---|"]
    for variant in VARIANTS:
        model = build(variant)
        g = torch.Generator().manual_seed(92)
        boards = torch.cat([random_boards(1, 8, 8, d, d, g) for d in (0.08, 0.3, 0.55, 0.8, 0.95)])
        rules = torch.rand(len(boards), 18, generator=g) < 0.5
        found = _map(model, examples_of(model, torch.cat([rules, ~rules]), torch.cat([boards, boards])), th)
        truth = ground_truth(variant)["routes"]
        right = sum(route_key(found[c]) == route_key(truth[c]) for c in BIT_NAMES)
        counts: dict[str, int] = {}
        for c in BIT_NAMES:
            counts[found[c].kind] = counts.get(found[c].kind, 0) + 1
        rows.append(f"| {variant} | {right} of 18 | " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + " |")
    return "hand-made models (interfere.model.handmade), default heads", rows


def abstraction_rows(variables: dict) -> list[str]:
    """Each aligned claim of a causal abstraction's ``variables``: the cases held at their earliest site, with the
    controls beside the subspace's IIA (held-out changed pairs)."""
    rows = ["| variable | cases | earliest site (rank) | IIA (a second draw) | full vector | control model (its base "
            "rate) | random init | base rate |", "|---|---|---|---|---|---|---|---|"]
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    for variable, v in variables.items():
        by_site = abstraction.cases_by_site(v["by_case"])
        for site, (cases, _) in by_site.items():
            e = next(e for e in v["sites"] if e["site"] == site)
            full = pct(e["iia_full"])
            if e.get("iia_same_rule") is not None:  # the full vector also carries the source's rule: pairs sharing it
                full += f" (same rule: {pct(e['iia_full_same_rule'])}, subspace {pct(e['iia_same_rule'])})"
            iia = f"{pct(e['iia'])} ({pct(e.get('iia_second_draw'))})"
            rows.append(f"| {variable} | {case_span(cases)} | {site} ({e['rank']}) | {iia} | {full} | "
                        f"{pct(e.get('iia_control'))} ({pct(e.get('control_base_rate'))}) | "
                        f"{pct(e.get('iia_random'))} | {pct(e['base_rate'])} |")
        if v.get("only_at_the_answer"):
            cases = case_span(v["only_at_the_answer"])
            rows.append(f"| {variable} | {cases} | {abstraction.AT_THE_ANSWER} | | | | | |")
        elif not by_site:
            rows.append(f"| {variable} | none | no site passes IIA >= 0.99 and its controls | | | | | |")
    return rows


def reference_abstraction(name: str) -> tuple[str, list[str]]:
    """A reference model's causal abstraction as ``python -m interfere abstraction --ckpt ref:NAME`` measures it."""
    ckpt = load_checkpoint(ckpt=f"ref:{name}")
    params = abstraction.params_for(DataConfig(**ckpt["config"]["data"]), load_thresholds())
    result = abstraction.measure(model_from_checkpoint(ckpt), None, params)
    joint = result.joint or {}
    heads = (f"every head idealised at once with the aligned bit {100 * result.all_heads_aligned:.2f}% of held-out "
             f"cells, input-only case-conditional templates {100 * result.heads['all_heads_case_conditional']:.2f}%; "
             + (f"the bit at its sites at once: joint IIA {100 * joint['iia']:.2f}% (random subspaces "
                f"{100 * joint['iia_random_subspaces']:.1f}%)" if joint.get("iia") is not None else "no bit claimed"))
    return f"ref:{name}, weights {weights_hash(reference_path(name))}; {heads}", abstraction_rows(result.variables)


TABLES: dict[str, tuple[Callable[[], tuple[str, list[str]]], bool]] = {  # name -> (writer, quick)
    "demo-map": (lambda: reference_map("demo"), True),
    "deep-map": (lambda: reference_map("deep"), False),
    "handmade-maps": (handmade_maps, False),
    "demo-abstraction": (lambda: reference_abstraction("demo"), False),
}


def render(name: str) -> str:
    t0 = time.perf_counter()
    what, rows = TABLES[name][0]()
    header = (f"_{what}; `python -m interfere docs --only {name}` ({time.perf_counter() - t0:.0f} s on "
              f"{cpu_description()})._")
    return header + "\n\n" + "\n".join(rows) + "\n"


def rows_of(body: str) -> list[str]:
    """A table's rows (the provenance line aside: it names the CPU and the seconds)."""
    return [line for line in body.splitlines() if line.startswith("|")]


def run(names: list[str], check: bool) -> list[str]:
    """Rewrite (or with ``check`` compare) every marked table named; the differences found."""
    rendered = {name: render(name) for name in names}
    problems = []
    for rel in FILES:
        path = ROOT / rel
        if not path.is_file():
            continue
        text = path.read_text()

        def replace(m: re.Match, rel: str = rel) -> str:
            name = m.group("name")
            if name not in rendered:
                return m.group(0)
            if rows_of(m.group("body")) != rows_of(rendered[name]):
                problems.append(f"{rel}: table {name} differs from what `python -m interfere docs --only {name}` "
                                "writes")
            return m.group(1) + rendered[name] + m.group(4)
        new = _BLOCK.sub(replace, text)
        if not check and new != text:
            path.write_text(new)
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Regenerate (or --check) the docs' tables from commands.")
    p.add_argument("--check", action="store_true", help="compare, do not write; exit 1 on a difference")
    p.add_argument("--quick", action="store_true", help="only the quick tables (CI)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help=f"tables among {', '.join(TABLES)}")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    with exit_on_user_error():
        unknown = [n for n in args.only or [] if n not in TABLES]
        if unknown:
            raise UserError(f"unknown table(s) {', '.join(unknown)}: choose from {', '.join(TABLES)}")
        configure_cpu(args.threads)
        names = args.only or [n for n, (_, quick) in TABLES.items() if quick or not args.quick]
        problems = run(names, args.check)
    for line in problems:
        print(line)
    print(f"docs: {len(names)} table(s) {'checked' if args.check else 'written'}"
          + (f", {len(problems)} differ" if problems else ""))
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
