"""Universality by variables: where each variable of the causal abstraction lives in several models (seeds), side
by side, from the ``summary.json`` files that ``python -m interfere abstraction`` wrote for them.

    python bench/abstraction_seeds.py assets/explorations/A/summary.json assets/explorations/B/summary.json ...

Prints two markdown tables. The first, per model and variable: each case group at the earliest site that holds it
(rank), then every head idealised at once with the aligned bit and the bit's joint interchange. The second, per model
and case: the earliest site that holds the governing bit, in a short code (``1rb``: the residual entering layer 1 at
the cell's board position; ``0at``: layer 0's attention output at the target; ``1H2t``: head L1H2's output at the
target; ``r``/``a``/``m``/``f``/``p``: the residual entering the block, the attention's output, the residual after
the attention, the MLP's output, the last block's output; ``-``: no site holds it). Nothing is recomputed: the
numbers are those of the runs, each with the weights, CPU and seconds it reports.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interfere.ca.rules import BIT_NAMES
from interfere.explore.account.card import case_span
from interfere.explore.alignment.sites import Site

SHORT = {"resid_pre": "r", "attn_out": "a", "resid_mid": "m", "mlp_out": "f", "resid_post": "p"}


def short(name: str) -> str:
    """A site in a few characters (``resid_pre.1@board`` -> ``1rb``, ``L1H2@targets`` -> ``1H2t``)."""
    site = Site.from_name(name)
    what = f"H{site.head}" if site.kind == "z" else SHORT[site.kind]
    return f"{site.layer}{what}{site.where[0]}"


def label(summary: dict) -> str:
    return f"{summary.get('run_id') or summary['checkpoint']} ({summary['weights_sha256'][:12]})"


def groups(by_case: dict[str, dict]) -> str:
    """``cases at site (rank)`` for each site a variable is first held at, in the order of computation."""
    sites: dict[str, list[str]] = {}
    for case, at in by_case.items():
        sites.setdefault(at["site"], []).append(case)
    order = sorted(sites, key=Site.from_name)
    return "; ".join(f"{case_span(sites[s])} at {s} ({by_case[sites[s][0]]['rank']})" for s in order) or "nowhere"


def variables_table(summaries: list[dict]) -> list[str]:
    variables = [v for v in ("own", "count", "case", "bit") if any(v in s["variables"] for s in summaries)]
    rows = ["| model | " + " | ".join(f"`{v}`" for v in variables) + " | all heads aligned | joint IIA (random) | s |",
            "|---|" + "---|" * (len(variables) + 3)]
    for s in summaries:
        cells = [groups(s["variables"][v]["by_case"]) if v in s["variables"] else "not searched" for v in variables]
        aligned = "-" if s.get("all_heads_aligned") is None else f"{100 * s['all_heads_aligned']:.2f}%"
        joint = s.get("joint") or {}
        j = "-"
        if joint.get("iia") is not None:
            j = f"{100 * joint['iia']:.2f}% ({100 * joint['iia_random_subspaces']:.1f}%)"
        rows.append(f"| {label(s)} | " + " | ".join(cells) + f" | {aligned} | {j} | {s.get('seconds', '-')} |")
    return rows


def bit_table(summaries: list[dict]) -> list[str]:
    rows = ["| model | " + " | ".join(BIT_NAMES) + " |", "|---|" + "---|" * len(BIT_NAMES)]
    for s in summaries:
        by_case = s["variables"].get("bit", {}).get("by_case", {})
        rows.append(f"| {label(s)} | " + " | ".join(short(by_case[c]["site"]) if c in by_case else "-"
                                                  for c in BIT_NAMES) + " |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("summaries", nargs="+", type=Path, help="summary.json files of `python -m interfere abstraction`")
    args = p.parse_args()
    summaries = []
    for path in args.summaries:
        s = json.loads(path.read_text())
        if s.get("exploration") != "abstraction":
            raise SystemExit(f"{path}: not an abstraction summary (exploration {s.get('exploration')!r}); run "
                             f"python -m interfere abstraction --ckpt CKPT first")
        summaries.append(s)
    cpus = sorted({s.get("cpu", "?") for s in summaries})
    print(f"CPU: {'; '.join(cpus)}\n")
    print("\n".join(variables_table(summaries)) + "\n")
    print("\n".join(bit_table(summaries)))


if __name__ == "__main__":
    main()
