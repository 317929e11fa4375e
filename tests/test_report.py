import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from interfere import report
from interfere.report import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    combine,
    load_thresholds,
    verdict_h1,
    verdict_h2,
    verdict_h3,
    verdict_h4,
)

TH = load_thresholds()


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.urls = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs.get("src", ""))
        for key in ("href", "src"):
            if attrs.get(key, "").startswith(("http:", "https:", "//")):
                self.urls.append(attrs[key])


def test_report_builds_from_tiny_checkpoint(tiny_run, tmp_path):
    out = tmp_path / "rep"
    summary = report.main(["--ckpt", tiny_run["checkpoint"], "--out", str(out), "--seeds", "2", "--quick"])
    data = json.loads((out / "summary.json").read_text())
    assert set(data["verdicts"]) == {"H1", "H2", "H3", "H4"}
    for v in data["verdicts"].values():
        assert v["verdict"] in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE) and any(c.isdigit() for c in v["reasons"][0])
    assert data["seeds"] == [0, 1] and len(data["per_seed"]) == 2 and summary["checkpoint"] == tiny_run["checkpoint"]
    page = (out / "report.html").read_text()
    parser = _Collect()
    parser.feed(page)
    assert parser.imgs and all(src.startswith("data:image/") for src in parser.imgs)
    assert not parser.urls and "http://" not in page and "https://" not in page
    assert "below 99%" in page  # the 60-step model has not learned: the warning is at the top
    md = (out / "report.md").read_text()
    for link in [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]:
        assert (out / link).is_file()


def _h1(share, board=0.9, base=9 / 64):
    return {"stencil_share": [[share, 0.1]], "board_share": [[board, 0.5]], "uniform_baseline": base}


@pytest.mark.parametrize("share,board,expected", [
    (0.5, 0.9, SUPPORTED),        # at the threshold
    (0.49, 0.9, INCONCLUSIVE),    # just below the support share, above 1.5x baseline
    (0.8, 0.49, INCONCLUSIVE),    # local but hardly looks at the board
    (1.5 * 9 / 64 - 1e-6, 0.9, NOT_SUPPORTED),
])
def test_verdict_h1(share, board, expected):
    assert verdict_h1(_h1(share, board), TH["h1"])[0] == expected


def _h2(r2, auc, r2_rand=0.5, auc_rand=0.6, r2_shuf=0.0):
    row = lambda a, b: {"count_r2": a, "next_auc": b}  # noqa: E731
    return {"results": {"target": {"trained": [row(0.0, 0.5), row(r2, auc)], "random_init": [row(r2_rand, auc_rand)],
                                   "shuffled_labels": [row(r2_shuf, 0.5)]}}}


@pytest.mark.parametrize("args,expected", [
    ((0.9, 0.99), SUPPORTED),
    ((0.89, 0.99), INCONCLUSIVE),
    ((0.9, 0.989), INCONCLUSIVE),
    ((0.95, 0.999, 0.9), INCONCLUSIVE),           # not 0.1 above random init
    ((0.95, 0.999, 0.5, 0.6, 0.11), INCONCLUSIVE),  # shuffled control too high
    ((0.51, 0.61, 0.5, 0.6), NOT_SUPPORTED),
])
def test_verdict_h2(args, expected):
    assert verdict_h2(_h2(*args), TH["h2"])[0] == expected


def _h3(prec, rec, mass=0.5, share=0.5):
    return {"flip_mean": {"precision": prec, "recall": rec, "false_flip_rate": 0.0},
            "rule_attention_mass": [[mass, 0.0]], "patching": {"best_head": {"layer": 0, "head": 0, "share": share}}}


@pytest.mark.parametrize("args,expected", [
    ((0.95, 0.95), SUPPORTED),
    ((0.94, 0.99), INCONCLUSIVE),
    ((0.99, 0.99, 0.09), INCONCLUSIVE),
    ((0.99, 0.99, 0.5, 0.29), INCONCLUSIVE),
    ((0.99, 0.49), NOT_SUPPORTED),
])
def test_verdict_h3(args, expected):
    assert verdict_h3(_h3(*args), TH["h3"])[0] == expected


@pytest.mark.parametrize("share,lens,expected", [
    (0.5, [0.5, 0.9, 0.99], SUPPORTED),
    (0.49, [0.5, 0.6, 1.0], INCONCLUSIVE),
    (0.9, [0.5, 0.91, 1.0], INCONCLUSIVE),
    (0.9, [0.5, 0.6, 0.98], INCONCLUSIVE),
    (0.9, [0.5, 0.99, 1.0], NOT_SUPPORTED),
])
def test_verdict_h4(share, lens, expected):
    h1 = _h1(share)
    assert verdict_h4(h1, _h2(0.9, 0.99), {"acc": lens}, TH["h4"])[0] == expected


def test_seeds_that_disagree_are_inconclusive():
    assert combine([(SUPPORTED, "a"), (SUPPORTED, "b")])[0] == SUPPORTED
    verdict, reasons = combine([(SUPPORTED, "a"), (NOT_SUPPORTED, "b")])
    assert verdict == INCONCLUSIVE and "differ" in reasons[-1]


def test_thresholds_file_is_the_one_printed():
    assert Path(report.__file__).parents[2].joinpath("cfg/report/thresholds.yaml").is_file()
    assert TH["min_heldout_acc"] == 0.99
