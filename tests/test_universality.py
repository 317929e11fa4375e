"""Universality (issue 12): do seeds learn the same routes, up to a permutation of each layer's heads? The
comparison on constructed routes, and the command end to end on two tiny seeds."""

import json

import pytest

from interfere.ca.rules import BIT_NAMES
from interfere.commands import universality


def _routes(**special):
    plain = {"enters": "board", "layer": 1, "lookup": "MLP0@board", "relays": [["L1H0@targets", 1.0]]}
    return {c: {**plain, **special.get(c, {})} for c in BIT_NAMES}


def test_universality_compares_routes_up_to_a_permutation_of_the_heads():
    relays = lambda *names: [[n, 1.0] for n in names]  # noqa: E731
    a = {"routes": _routes(B5={"enters": "rule", "lookup": "L1H2@targets", "relays": []},
                           S2={"relays": relays("L1H0@targets", "L1H1@targets")})}
    b = {"routes": {c: {**r, "relays": relays("L1H3@targets")} if r["relays"] == relays("L1H0@targets") else r
                    for c, r in _routes(B5={"enters": "rule", "lookup": "L1H1@targets", "relays": []},
                                        S2={"relays": relays("L1H2@targets", "L1H3@targets")}).items()}}
    # b is a with heads 0->3, 1->2, 2->1: the same algorithm
    assert universality.compare({"seed 0": a, "seed 1": b}) == ("the same routes in every compared seed, up to a "
                                                                "permutation of the heads of each layer")
    c = {"routes": _routes()}  # B5 on the board, S2 relayed by L1H0 alone
    verdict = universality.compare({"seed 0": a, "seed 1": b, "seed 2": c})
    assert verdict.startswith("different algorithms: 3 differences") and "seed 2 B5 board: MLP0@board" in verdict
    d = {"routes": {**a["routes"], "S3": {**a["routes"]["S3"], "relays": relays("L1H1@targets")}}}
    # every case's route has the same shape as a's, but S3 is relayed by the head that relays S2 with L1H0 in a
    assert "layer 1's heads share the cases differently" in universality.compare({"seed 0": a, "seed 1": d})
    common = universality.recurring({"seed 0": a, "seed 1": b, "seed 2": c})
    assert "S0: enters the board, looked up by MLP0 at the board in every seed" in common
    assert not any(line.startswith("B5") for line in common)


def test_universality_end_to_end_on_two_tiny_seeds(tmp_path, capsys):
    result = universality.main(["--config-name", "exp/life_smoke", "--seeds", "0", "1", "--ckpt-dir",
                                str(tmp_path / "ck"), "--samples", "8", "--out", str(tmp_path / "u"),
                                "--min-acc", "0"])
    assert set(result["results"]) == {"seed 0", "seed 1"} and result["compared"] == ["seed 0", "seed 1"]
    # the verdict is what compare() says of the two seeds' routes, and the table has a row per case
    assert result["verdict"] == universality.compare(result["results"])
    table = (tmp_path / "u/universality.md").read_text()
    assert all(f"| {case} |" in table for case in BIT_NAMES) and "| seed 0 | seed 1 |" in table
    again = universality.main(["--config-name", "exp/life_smoke", "--seeds", "0", "1", "--ckpt-dir",
                               str(tmp_path / "ck"), "--samples", "8", "--out", str(tmp_path / "u2"),
                               "--min-acc", "0"])  # the trained runs are reused: the same weights, the same routes
    assert [r["weights_sha256"] for r in again["results"].values()] == [r["weights_sha256"]
                                                                        for r in result["results"].values()]
    paths = [str(tmp_path / f"ck/universality_life_smoke_seed{s}/latest.pt") for s in (0, 1)]
    given = universality.main(["--ckpts", *paths, "--samples", "8", "--out", str(tmp_path / "u3"), "--min-acc", "0"])
    routes = lambda run: json.dumps({s: r["routes"] for s, r in run["results"].items()}, sort_keys=True)  # noqa: E731
    assert given["seeds"] == [0, 1] and routes(given) == routes(result)  # the same checkpoints: the same routes
    capsys.readouterr()
    with pytest.raises(SystemExit):
        universality.main(["--ckpts", paths[0], paths[0], "--out", str(tmp_path / "u4")])
    assert capsys.readouterr().err.strip() == "error: a checkpoint is given twice: compare different checkpoints"
    assert not (tmp_path / "u4").exists()
    # two models of one training seed (hand-made ones are all seed 0) are told apart by their run ids, then paths
    hand = [{"path": str(tmp_path / f"h{i}.pt"), "run_id": f"handmade_{v}"} for i, v in enumerate(("split", "late"))]
    assert universality.column_labels(hand, [0, 0]) == ["handmade_split", "handmade_late"]
    same_id = [{**h, "run_id": "x"} for h in hand]
    assert universality.column_labels(same_id, [0, 0]) == [str((tmp_path / f"h{i}.pt").resolve()) for i in (0, 1)]
