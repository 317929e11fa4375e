"""Universality by variables: where each variable of the causal abstraction lives in several models (seeds), side
by side, from the ``summary.json`` files that ``python -m interfere abstraction`` wrote for them.

    python bench/abstraction_seeds.py assets/explorations/A/summary.json assets/explorations/B/summary.json ...

Prints two markdown tables. The first, per model and variable: each case group at the earliest site that holds it
(rank), then every head idealised at once with the aligned bit and the bit's joint interchange. The second, per model
and case: the earliest site that holds the governing bit, in a short code (``1rb``: the residual entering layer 1 at
the cell's board position; ``0at``: layer 0's attention output at the target; ``1H2t``: head L1H2's output at the
target; ``r``/``a``/``m``/``f``/``p``: the residual entering the block, the attention's output, the residual after
the attention, the MLP's output, the last block's output; ``-``: no site holds it; ``=``: held only where the
answer is, the residual at the target after the last attention, which a right model holds by construction). Nothing
is measured again: the numbers are those of the runs, each with the weights, CPU and seconds it reports; only the
earliest sites are re-derived from each run's entries by :func:`interfere.explore.abstraction.located` as it is
now, so runs made before a rule changed read as runs made after it (the joint IIA stays the run's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interfere.ca.rules import BIT_NAMES
from interfere.explore.abstraction import cases_by_site, forced_sites, located
from interfere.explore.account.card import case_span
from interfere.explore.alignment.sites import Site
from interfere.model.checkpoint import CheckpointError, load_checkpoint

SHORT = {"resid_pre": "r", "attn_out": "a", "resid_mid": "m", "mlp_out": "f", "resid_post": "p"}


def short(name: str) -> str:
    """A site in a few characters (``resid_pre.1@board`` -> ``1rb``, ``L1H2@targets`` -> ``1H2t``)."""
    site = Site.from_name(name)
    what = f"H{site.head}" if site.kind == "z" else SHORT[site.kind]
    return f"{site.layer}{what}{site.where[0]}"


def label(summary: dict) -> str:
    return f"{summary.get('run_id') or summary['checkpoint']} ({summary['weights_sha256'][:12]})"


def relocate(summary: dict) -> None:
    """Each variable's ``by_case`` and ``only_at_the_answer`` re-derived from its searched sites by today's rule."""
    try:
        n_layers = load_checkpoint(ckpt=summary["checkpoint"])["config"]["model"]["n_layers"]
    except CheckpointError as e:
        raise SystemExit(f"error: {e}: the summary's checkpoint (its path is relative to where the run was made) is "
                         f"needed for its layer count; run from that folder") from None
    for variable, v in summary["variables"].items():
        v["located"], v["by_case"], v["only_at_the_answer"] = located(v["sites"], forced_sites(variable, n_layers))


def groups(v: dict) -> str:
    """``cases at site (rank)`` for each site a variable is first held at, in the order of computation."""
    sites = cases_by_site(v["by_case"])
    out = [f"{case_span(sites[s][0])} at {s} ({sites[s][1]})" for s in sorted(sites, key=Site.from_name)]
    out += [f"{case_span(v['only_at_the_answer'])} only at the answer"] if v.get("only_at_the_answer") else []
    return "; ".join(out) or "nowhere"


def variables_table(summaries: list[dict]) -> list[str]:
    variables = [v for v in ("own", "count", "case", "bit") if any(v in s["variables"] for s in summaries)]
    rows = ["| model | " + " | ".join(f"`{v}`" for v in variables) + " | all heads aligned | joint IIA (random) | s |",
            "|---|" + "---|" * (len(variables) + 3)]
    for s in summaries:
        cells = [groups(s["variables"][v]) if v in s["variables"] else "not searched" for v in variables]
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
        bit = s["variables"].get("bit", {})
        by_case, forced = bit.get("by_case", {}), bit.get("only_at_the_answer", [])
        rows.append(f"| {label(s)} | " + " | ".join(short(by_case[c]["site"]) if c in by_case else
                                                  "=" if c in forced else "-" for c in BIT_NAMES) + " |")
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
        relocate(s)
        summaries.append(s)
    cpus = sorted({s.get("cpu", "?") for s in summaries})
    print(f"CPU: {'; '.join(cpus)}\n")
    print("\n".join(variables_table(summaries)) + "\n")
    print("\n".join(bit_table(summaries)))


if __name__ == "__main__":
    main()
