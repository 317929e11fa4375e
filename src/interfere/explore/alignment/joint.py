"""The joint interchange: the governing bit intervened at every site that holds it for some cases, all at once.

Each claim says that a site holds the bit for its case group. Together they are one causal model only if patching
every claimed subspace at once from a source still gives the source's bit: the site of the base cell's own case
carries it, and the others, which hold nothing of that case in the abstraction, must not spoil it. So one pair is a
base cell and a source cell, both of cases some claim covers; every claimed site takes its subspace from the source
(the board and target sites at the cell, in one forward that starts at the earliest), and the label is the source's
bit. Against it, the same sites with random subspaces of the same ranks (the control): interventions of that size
that do not follow the claims.
"""

from __future__ import annotations

import torch

from interfere.ca.rules import BIT_NAMES
from interfere.explore.alignment import das
from interfere.explore.alignment.causal import base_rate
from interfere.explore.alignment.search import Data, case_mask
from interfere.explore.alignment.sites import Site

PAIRS = 1024  # base and source cells, one per pair
CONTROL_SEED = 11


def claimed_sites(by_case: dict[str, dict]) -> list[Site]:
    """The earliest site of every case group, in the order of computation."""
    return sorted({Site.from_name(at["site"]) for at in by_case.values()})


def joint_iia(data: Data, by_case: dict[str, dict], bases: dict[str, torch.Tensor]) -> dict:
    """The bit's joint interchange over the sites of ``by_case`` (case -> its earliest site), with ``bases`` (site
    name -> the claim's ``[d, k]`` subspace): IIA on changed pairs, per base case, its base rate and the random-subspace
    control."""
    sites = claimed_sites(by_case)
    if not sites:
        return {"sites": [], "cases": [], "iia": None}
    cases = list(by_case)
    test = data.test
    one_cell = Site.from_name("resid_pre.0@board")  # pairs of one base and one source cell
    data.draws_for("joint")
    pairs = das.draw_pairs(test, "bit", one_cell, data.real, PAIRS, False, data.g, case_mask(cases))
    sources = [das.source_values(test, s, pairs) for s in sites]
    g = torch.Generator().manual_seed(CONTROL_SEED)
    random = [torch.linalg.qr(torch.randn(b.shape, generator=g))[0] for b in (bases[s.name] for s in sites)]
    where = pairs.mask & pairs.changed
    hits = {}
    with torch.no_grad():
        for label, chosen in (("claimed", [bases[s.name] for s in sites]), ("random", random)):
            logits = das.intervened_logits(test, sites, pairs, chosen, sources)
            hits[label] = logits.argmax(-1) == pairs.label
    hit = hits["claimed"]
    per_case = {BIT_NAMES[c]: round(float(hit[where & (pairs.base_case == c)].float().mean()), 4)
                for c in range(len(BIT_NAMES)) if bool((where & (pairs.base_case == c)).sum() >= 8)}
    return {"sites": [s.name for s in sites], "cases": cases, "pairs": int(where.sum()),
            "iia": das.accuracy_on_changed(hit, pairs), "per_case": per_case,
            "iia_random_subspaces": das.accuracy_on_changed(hits["random"], pairs),
            "base_rate": base_rate(pairs.label[where])}
