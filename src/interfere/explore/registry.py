"""The analyses the report runs, in one table: adding one to the report is its module plus one line here
(docs/design.md, "Adding an analysis"). The report derives from it what each batch's shared forward computes, the
boards per analysis (full and ``--quick``), the params (thresholds passed in) and which section gets the figures;
the verdicts (:mod:`interfere.report.verdicts`) read each result under its key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from interfere.explore import attn_maps, layers, logit_lens, physics_bits, probes


@dataclass(frozen=True)
class Entry:
    key: str  # the key the verdicts and summary.json's per_seed read its result under
    module: ModuleType  # an analysis module (explore.analysis: Params, wants, measure, plot)
    samples: tuple[int, int]  # boards at 8x8, and the least at any size (explore.batched.scaled_samples)
    quick: int  # boards under --quick
    params: Callable[[int, dict, int], object]  # (boards, the whole thresholds file, data seed) -> its Params
    section: str  # the report section its figures go to


ANALYSES: tuple[Entry, ...] = (
    Entry("h1", attn_maps, (64, 2), 16, lambda n, th, seed: attn_maps.Params(samples=n), "H1"),
    Entry("h2", probes, (128, 8), 24, lambda n, th, seed: probes.Params(
        samples=n, controls=th["h2"]["random_init_controls"], seed=seed), "H2"),
    Entry("h3", physics_bits, (144, 4), 36, lambda n, th, seed: physics_bits.Params(samples=n, thresholds=th), "H3"),
    Entry("lens", logit_lens, (256, 4), 32, lambda n, th, seed: logit_lens.Params(samples=n), "H4"),
    Entry("layers", layers, (64, 4), 16, lambda n, th, seed: layers.Params(samples=n), "H4"),
)
BY_KEY = {entry.key: entry for entry in ANALYSES}
