"""The causal abstraction's map scored against a hand-made model's ground truth (``ground_truth(...)["variables"]``,
:func:`interfere.model.handmade.variable_sites`): per variable, how well ranking the searched sites by their IIA
separates the sites that hold it from those that do not (AUROC, InterpBench's node-level measure), which sites were
claimed, and whether each claimed site's case group is the built one."""

from __future__ import annotations

from interfere.explore.analysis import fast_auc


def site_score(entry: dict) -> float:
    """A site's IIA for the ranking: on its case group where a group was fitted, else on all cases."""
    value = entry.get("iia") if entry.get("iia") is not None else entry.get("iia_all_cases")
    return float(value) if value is not None and value == value else 0.0


def score(truth: dict[str, dict[str, list[str]]], found: dict[str, dict]) -> dict[str, dict]:
    """``truth``: variable -> site -> cases; ``found``: the map's ``variables``. Per variable: AUROC of the sites'
    scores against holding the variable at all, the sites claimed and built, and for each claimed site that holds it
    whether its cases are the built ones."""
    out = {}
    for variable, mapped in found.items():
        entries = mapped["sites"]
        built = truth.get(variable, {})
        labels = [e["site"] in built for e in entries]
        scores = [site_score(e) for e in entries]
        claimed = {e["site"]: e["cases"] for e in entries if e.get("failed") is None and "rank" in e}
        negatives = [s for s, held in zip(scores, labels) if not held]
        out[variable] = {
            "auroc": fast_auc(labels, scores), "sites": len(entries), "built": sorted(built),
            "claimed": sorted(claimed), "missed": sorted(set(built) - set(claimed) & {e["site"] for e in entries}),
            "false": sorted(set(claimed) - set(built)),
            "cases_wrong": sorted(s for s, cases in claimed.items()
                                  if s in built and sorted(cases) != sorted(built[s])),
            "max_negative": max(negatives, default=float("nan")),
            "min_positive": min((s for s, held in zip(scores, labels) if held), default=float("nan")),
        }
    return out
