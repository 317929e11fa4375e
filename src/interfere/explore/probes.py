"""H2 (and H4's probe half), linear world variables: what can a linear probe read off the residual?

    python explorations/probes.py --samples 512

For the residual stream before layer 0 and after every layer (the points of the logit lens, one
forward shared with it in the report), at t+1 target positions and at board positions: the
neighbour count (R^2 of a ridge regression, and how often its read rounds to the true count), the
prior state (ROC-AUC) and the next state (ROC-AUC). Train/test split by board (never by cell).
Controls, in the same figures: the same probes on ``--controls`` randomly initialised models of
the same shape (different init seeds: their mean and range are drawn, and a verdict compares with
the best of them, since one init draw can be lucky), and on labels shuffled across boards
(selectivity = real minus shuffled).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

from interfere.data.layout import SequenceLayout
from interfere.explore.analysis import Examples, View, Want, at_positions, cell_labels
from interfere.explore.common import Context, add_samples_arg, examples_of, parser, run_main
from interfere.explore.logit_lens import residual_points
from interfere.model.life_model import LifeTransformer
from interfere.viz.style import ACCENT, CONTROL_COLOR, GUIDE_COLOR, SHUFFLED_COLOR, caption, save

NAME = "probes"
TARGETS = ("count_r2", "count_acc", "prior_auc", "next_auc")
LABELS = {"count_r2": "neighbour count R²", "count_acc": "count accuracy (linear read, rounded)",
          "prior_auc": "prior state AUC", "next_auc": "next state AUC"}
MAX_CELLS = 6_000  # cells per probe fit, sampled by board; keeps a probe fit to about a second


@dataclass
class Params:
    samples: int = 256
    controls: int = 3  # random-init control models (init seeds)
    seed: int = 0  # the board split's and the controls' seed


@dataclass
class Result:
    samples: int
    points: list[str]  # the residual stream before layer 0 ("embed") and after every layer
    control_init_seeds: list[int]
    results: dict  # {"target" | "board": {"trained": [per point], "random_init": [[per point]], "shuffled_labels"}}


WHERE = ("target", "board")


def views(layout: SequenceLayout) -> dict[str, View]:
    return {"target": at_positions("targets", layout.targets[0]), "board": at_positions("board", layout.board)}


def wants(model: LifeTransformer, params: Params) -> list[Want]:
    return [(hook, view) for _, hook in residual_points(model.cfg.n_layers) for view in views(model.layout).values()]


def residuals(ex: Examples, model: LifeTransformer, where: str) -> np.ndarray:
    """``[n_points, batch, H*W, d_model]`` float32: the residual at each probe point, at ``where``."""
    view = views(model.layout)[where]
    return np.stack([ex.act(hook, view).numpy() for _, hook in residual_points(model.cfg.n_layers)])


def board_split(n_boards: int, seed: int, test_frac: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train/test masks over boards."""
    rng = np.random.default_rng(seed)
    test = np.zeros(n_boards, dtype=bool)
    test[rng.permutation(n_boards)[: max(1, int(test_frac * n_boards))]] = True
    return ~test, test


def fit_probes(x: np.ndarray, ex: dict[str, np.ndarray], train: np.ndarray, test: np.ndarray,
               seed: int) -> dict[str, float]:
    """All four probes on activations ``x`` ``[boards, cells, d]`` with per-cell labels ``ex``."""
    def cells(mask: np.ndarray, arr: np.ndarray) -> np.ndarray:
        flat = arr[mask].reshape(-1, *arr.shape[2:])
        return flat[:MAX_CELLS]

    # binary logistic probes: newton-cg converges in ~15 iterations where lbfgs stopped at its 100-iteration cap
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    xtr, xte = cells(train, x), cells(test, x)
    scaler = StandardScaler().fit(xtr)
    xtr, xte = scaler.transform(xtr), scaler.transform(xte)
    out = {}
    ctr, cte = cells(train, ex["count"]), cells(test, ex["count"])
    count = Ridge(alpha=1.0).fit(xtr, ctr).predict(xte)
    out["count_r2"] = float(r2_score(cte, count))
    out["count_acc"] = float((np.rint(count) == cte).mean())  # the linear read, rounded to a count
    for key, label in (("prior_auc", "prior"), ("next_auc", "next")):
        ytr, yte = cells(train, ex[label]), cells(test, ex[label])
        if len(np.unique(ytr)) < 2 or len(np.unique(yte)) < 2:
            out[key] = float("nan")
            continue
        p = LogisticRegression(max_iter=100, C=0.1, solver="newton-cg").fit(xtr, ytr).predict_proba(xte)[:, 1]
        out[key] = float(roc_auc_score(yte, p))
    return out


def labels_of(ex: Examples) -> dict[str, np.ndarray]:
    """The labels H2's probes read (:func:`interfere.explore.analysis.cell_labels`), as arrays; ``prior`` is the
    own state."""
    labels = cell_labels(ex)
    return {"count": labels["count"].numpy(), "prior": labels["own"].numpy(), "next": labels["next"].numpy()}


def shuffled(labels: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Labels permuted across boards: keeps each label's marginal, breaks its link to the input."""
    perm = np.random.default_rng(seed + 1).permutation(len(labels["count"]))
    return {k: v[perm] for k, v in labels.items()}


def probe_model(model: LifeTransformer, ex: Examples, labels: dict[str, np.ndarray], where: str,
                seed: int) -> list[dict[str, float]]:
    acts = residuals(ex, model, where)
    train, test = board_split(len(ex.boards), seed)
    return [fit_probes(a, labels, train, test, seed) for a in acts]


def random_twin(model: LifeTransformer, seed: int) -> LifeTransformer:
    """A randomly initialised model of the same shape and layout (the untrained control)."""
    cfg = model.life_cfg
    twin_cfg = type(cfg)(**{**cfg.__dict__, "seed": seed + 12345})
    twin = LifeTransformer(twin_cfg, model.layout, model.cfg.device)
    return twin.eval()


def control_seeds(seed: int, n: int) -> list[int]:
    """Init seeds of the ``n`` random-init controls for data seed ``seed`` (distinct across data seeds)."""
    return [seed + 1000 * k for k in range(n)]


def measure(model: LifeTransformer, ex: Examples, params: Params) -> Result:
    labels = labels_of(ex)
    seeds = control_seeds(params.seed, params.controls)
    twins = [examples_of(twin, ex.rules, ex.boards) for twin in (random_twin(model, s) for s in seeds)]
    for twin_ex in twins:
        twin_ex.acts.want(wants(twin_ex.acts.model, params))  # one forward per control, both positions
    results = {where: {
        "trained": probe_model(model, ex, labels, where, params.seed),
        "random_init": [probe_model(t.acts.model, t, labels, where, params.seed) for t in twins],
        "shuffled_labels": probe_model(model, ex, shuffled(labels, params.seed), where, params.seed),
    } for where in WHERE}
    points = [label for label, _ in residual_points(model.cfg.n_layers)]
    return Result(len(ex), points, seeds, results)


def plot(result: Result, out: Path, provenance: Callable[..., str]) -> list[Path]:
    files = []
    x = range(len(result.points))
    for where, res in result.results.items():
        fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
        for ax, key in zip(axes, TARGETS):
            ax.plot(x, [r[key] for r in res["trained"]], "-o", color=ACCENT, label="trained", ms=4)
            controls = np.array([[r[key] for r in twin] for twin in res["random_init"]], dtype=float)
            ax.fill_between(x, controls.min(0), controls.max(0), color=CONTROL_COLOR, alpha=0.3, lw=0)
            ax.plot(x, controls.mean(0), "--s", color=CONTROL_COLOR, ms=4,
                    label=f"random init (mean, range of {len(controls)})")
            ax.plot(x, [r[key] for r in res["shuffled_labels"]], ":^", color=SHUFFLED_COLOR,
                    label="shuffled labels", ms=4)
            ax.set_xticks(list(x), result.points)
            ax.set_xlabel("residual stream")
            ax.set_ylabel(LABELS[key])
            ax.set_title(LABELS[key])
            ax.set_ylim(-0.05 if key == "count_r2" else 0.0, 1.02)
            ax.axhline(0.5 if key.endswith("auc") else 0.0, color=GUIDE_COLOR, lw=0.8, zorder=0)
        axes[0].legend(frameon=False, fontsize=7)
        fig.suptitle(f"H2: linear probes at {where} positions (held-out boards)")
        caption(fig, provenance(samples=result.samples))
        files.append(save(fig, out / f"probes_{where}.png"))
    return files


def params_from_args(args: argparse.Namespace, ctx: Context, thresholds: dict) -> Params:
    return Params(samples=args.samples, controls=args.controls, seed=ctx.seed)


def build_parser() -> argparse.ArgumentParser:
    p = parser("H2: linear probes for neighbour count, prior state and next state, with controls.")
    add_samples_arg(p, 256, 8, "boards (split 75/25 by board)")
    p.add_argument("--controls", type=int, default=3, help="random-init control models (init seeds)")
    return p


def main(argv: list[str] | None = None) -> dict:
    return run_main(__spec__.name, argv)


if __name__ == "__main__":
    main()
