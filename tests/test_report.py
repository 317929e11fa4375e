import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from interfere import report
from interfere.data.stream import DataConfig
from interfere.explore.attn_maps import locality_measures
from interfere.explore.common import Context
from interfere.explore.physics_bits import rule_use
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint
from interfere.report import sections as report_sections
from interfere.report.verdicts import (
    AGGREGATES,
    INCONCLUSIVE,
    NON_LOCAL,
    NOT_SUPPORTED,
    PARTIAL,
    SELF_LOOKUP,
    SUPPORTED,
    all_verdicts,
    combine,
    head_roles,
    verdict_h1,
    verdict_h2,
    verdict_h3,
    verdict_h4,
)
from interfere.thresholds import load_thresholds

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


@pytest.fixture(scope="module")
def tiny_report(tiny_run, tmp_path_factory) -> Path:
    """The tiny model's report (two seeds, quick, no controls, two processes), written once for this module."""
    out = tmp_path_factory.mktemp("tiny_report") / "rep"
    report.main(["--ckpt", tiny_run["checkpoint"], "--out", str(out), "--seeds", "2", "--quick", "--no-controls"])
    return out


def test_report_builds_from_tiny_checkpoint(tiny_run, tiny_report):
    out = tiny_report
    data = json.loads((out / "summary.json").read_text())
    # a 60-step model that has not learned: no better than rule-blind (H3), and not even its final residual
    # classifies the next state (H4); the page's verdicts are the ones its numbers give
    assert data["verdicts"]["H3"]["verdict"] == NOT_SUPPORTED and data["verdicts"]["H4"]["verdict"] == NOT_SUPPORTED
    recomputed = all_verdicts(data["per_seed"], data["thresholds"])
    assert {h: v["verdict"] for h, v in data["verdicts"].items()} == {h: v.verdict for h, v in recomputed.items()}
    assert data["seeds"] == [0, 1] and len(data["per_seed"]) == 2 and data["checkpoint"] == tiny_run["checkpoint"]
    # the second seed and the model card ran in the second process (a CPU with two threads)
    assert {"shared forward (seed 0)", "h2 (seed 1) [process 2]", "circuit", "figures",
            "model card: evaluation and rollout [process 2]"} <= set(data["section_seconds"])
    page = (out / "report.html").read_text()
    parser = _Collect()
    parser.feed(page)
    assert parser.imgs and all(src.startswith("data:image/") for src in parser.imgs)
    magic = {"png": b"\x89PNG", "gif": b"GIF8"}  # every embedded image is what its type says (no MP4 as a PNG)
    for src in parser.imgs:
        kind, data = src.removeprefix("data:image/").split(";base64,")
        assert base64.b64decode(data).startswith(magic[kind]), kind
    assert not parser.urls and "http://" not in page and "https://" not in page
    assert "below 99%" in page  # the 60-step model has not learned: the warning is at the top
    md = (out / "report.md").read_text()
    for link in [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]:
        assert (out / link).is_file()


def _h1(own, neighbours, evenness, board=0.9, cells=64, layers=1):
    """Per-head H1 numbers for ``layers`` x 2 heads: head 0 as given, head 1 uniform over the board."""
    head = lambda a, b: [[a, b] for _ in range(layers)]  # noqa: E731
    profile = [own if i == 4 else neighbours / 8 for i in range(9)]
    return {"own_share": head(own, 1 / cells), "neighbour_share": head(neighbours, 8 / cells),
            "neighbour_evenness": head(evenness, 1.0), "board_share": head(board, 0.5),
            "stencil_share": head(own + neighbours, 9 / cells), "uniform_baseline": 9 / cells,
            "neighbour_uniform_baseline": 8 / cells, "stencil_profile": head(profile, [1 / cells] * 9)}


def _tiled_h1(sides=("top", "right", "bottom", "left")):
    """One layer whose heads each read one side of the neighbourhood (3 cells), as a rule-blind model did."""
    cells = {"top": (0, 1, 2), "right": (2, 5, 8), "bottom": (6, 7, 8), "left": (0, 3, 6)}
    profiles = [[0.3 if i in cells[s] else 0.0 for i in range(9)] for s in sides]
    m = locality_measures(torch.tensor(profiles))
    return {"own_share": [m["own_share"].tolist()], "neighbour_share": [m["neighbour_share"].tolist()],
            "neighbour_evenness": [m["neighbour_evenness"].tolist()], "board_share": [[1.0] * len(sides)],
            "stencil_share": [[0.9] * len(sides)], "uniform_baseline": 9 / 64, "neighbour_uniform_baseline": 8 / 64,
            "stencil_profile": [profiles]}


def test_heads_that_tile_the_neighbourhood_aggregate_jointly():
    verdict, why = verdict_h1(_tiled_h1(), TH["h1"])
    assert verdict == SUPPORTED and "heads L0H0+L0H1+L0H2+L0H3 aggregate jointly" in why
    verdict, why = verdict_h1(_tiled_h1(("top", "bottom")), TH["h1"])  # the sides are missing: partial
    assert verdict == INCONCLUSIVE and "no aggregating head" in why


@pytest.mark.parametrize("numbers,expected", [
    ((0.11, 0.89, 0.9), SUPPORTED),            # a uniform 3x3 head
    ((0.11, 0.5, 0.5), SUPPORTED),             # at the thresholds
    ((0.11, 0.89, 0.9, 0.49), INCONCLUSIVE),   # aggregates, but hardly looks at the board
    ((0.996, 0.004, 0.5), NOT_SUPPORTED),      # a self-lookup head is not aggregation, and none looks around
    ((0.44, 0.52, 0.31), INCONCLUSIVE),        # plus-shaped: partial
    ((1 / 64, 1.5 * 8 / 64 - 1e-6, 1.0), NOT_SUPPORTED),  # no head beats 1.5x the uniform neighbour share
])
def test_verdict_h1(numbers, expected):
    verdict, why = verdict_h1(_h1(*numbers), TH["h1"])
    assert verdict == expected, why


def test_head_roles_name_self_lookup_and_partial_heads():
    roles = {r.name: r.role for r in head_roles(_h1(0.996, 0.004, 0.5), TH["h1"])}
    assert roles == {"L0H0": SELF_LOOKUP, "L0H1": NON_LOCAL}
    assert head_roles(_h1(0.44, 0.52, 0.31), TH["h1"])[0].role == PARTIAL
    assert head_roles(_h1(0.11, 0.89, 0.9), TH["h1"])[0].role == AGGREGATES
    _, why = verdict_h1(_h1(0.996, 0.004, 0.5), TH["h1"])
    assert "self-lookup: L0H0" in why


def _h2(r2, auc, controls=((0.5, 0.6),), r2_shuf=0.0):
    row = lambda a, b: {"count_r2": a, "next_auc": b}  # noqa: E731
    return {"results": {"target": {
        "trained": [row(0.0, 0.5), row(r2, auc)],
        "random_init": [[row(0.0, 0.5), row(a, b)] for a, b in controls],
        "shuffled_labels": [row(r2_shuf, 0.5)]}}}


@pytest.mark.parametrize("args,expected", [
    ((0.9, 0.99), SUPPORTED),
    ((0.89, 0.99), INCONCLUSIVE),
    ((0.9, 0.989), INCONCLUSIVE),
    ((0.95, 0.999, ((0.5, 0.6), (0.9, 0.6))), INCONCLUSIVE),   # the best of the controls is within the margin
    ((0.95, 0.999, ((0.5, 0.6),), 0.11), INCONCLUSIVE),         # shuffled control too high
    ((0.51, 0.61, ((0.5, 0.6), (0.3, 0.55))), NOT_SUPPORTED),   # no better than the best control
])
def test_verdict_h2(args, expected):
    verdict, why = verdict_h2(_h2(*args), TH["h2"])
    assert verdict == expected, why


def test_verdict_h2_shows_the_controls_spread():
    _, why = verdict_h2(_h2(0.95, 0.999, ((0.5, 0.6), (0.7, 0.65), (0.6, 0.7))), TH["h2"])
    assert "range 0.500-0.700 over 3 inits" in why


def _h3(clean=1.0, ablated=0.5, blind=0.52, prec=1.0, rec=1.0, mass=0.8, patch_effect=8.0):
    floors = TH["effect_floors"]
    path = {"clean_acc": clean, "ablated_acc": ablated, "rule_blind_best": blind}
    path["rule_use"] = rule_use(path, floors["rule_use_gain"])
    no_effect = abs(patch_effect) < floors["patch_effect_logits"]
    return {"rule_path": path, "flip_mean": {"precision": prec, "recall": rec, "false_flip_rate": 0.0},
            "rule_attention_mass": [[mass, 0.0]], "rule_attention_uniform": 18 / 86,
            "patching": {"no_effect": no_effect, "effect_logit": patch_effect,
                         "best_head": None if no_effect else {"layer": 0, "head": 0, "share": 0.5}}}


@pytest.mark.parametrize("kwargs,expected", [
    ({}, SUPPORTED),
    ({"ablated": 0.62}, INCONCLUSIVE),              # removing the rule path loses only ~80%... just under
    ({"mass": 0.3}, INCONCLUSIVE),                  # rule tokens attended to less than 2x their uniform share
    ({"prec": 0.9}, INCONCLUSIVE),                  # the flip test is not consistent
    ({"prec": float("nan")}, INCONCLUSIVE),         # nothing changed under any flip
    ({"clean": 0.55, "ablated": 0.55}, NOT_SUPPORTED),  # no better than rule-blind: no effect
    ({"ablated": 0.95}, NOT_SUPPORTED),             # removing the rule path changes little
])
def test_verdict_h3(kwargs, expected):
    verdict, why = verdict_h3(_h3(**kwargs), TH["h3"])
    assert verdict == expected, why


def test_effect_floor_reports_no_effect_instead_of_a_ratio():
    assert rule_use({"clean_acc": 0.53, "ablated_acc": 0.5, "rule_blind_best": 0.5}, 0.05) is None
    assert rule_use({"clean_acc": 1.0, "ablated_acc": 0.75, "rule_blind_best": 0.5}, 0.05) == pytest.approx(0.5)
    _, why = verdict_h3(_h3(clean=0.5, ablated=0.5, blind=0.5, patch_effect=0.01), TH["h3"])
    assert "rule use no effect" in why and "patching: no effect" in why


def _depth(locality: list[float], next_auc: list[float], final: float = 1.0):
    """H1, H2 and lens numbers of a model with one head per layer: ``locality`` its 8-neighbour share (evenly spread,
    all attention on the board), ``next_auc`` the next state's probe AUC after each layer."""
    n = len(locality)
    h1 = {"own_share": [[0.05]] * n, "neighbour_share": [[v] for v in locality], "neighbour_evenness": [[0.9]] * n,
          "board_share": [[1.0]] * n, "stencil_share": [[0.05 + v] for v in locality], "uniform_baseline": 9 / 64,
          "neighbour_uniform_baseline": 8 / 64, "stencil_profile": [[[v / 8] * 4 + [0.05] + [v / 8] * 4]
                                                                     for v in locality]}
    row = lambda auc: {"count_r2": 0.5, "next_auc": auc}  # noqa: E731
    h2 = {"results": {"target": {"trained": [row(0.5)] + [row(a) for a in next_auc]}}}
    return h1, h2, {"acc": [0.5] * n + [final]}


@pytest.mark.parametrize("locality,next_auc,final,expected", [
    ([0.9, 0.1], [0.7, 1.0], 1.0, SUPPORTED),                      # the two-layer demo's shape
    ([0.9, 0.8, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05], [0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0, 1.0], 1.0, SUPPORTED),
    ([0.9, 0.1], [0.995, 1.0], 1.0, NOT_SUPPORTED),                # decided in the early half: no later gain
    ([0.1, 0.9], [0.7, 1.0], 1.0, NOT_SUPPORTED),                  # the late layers are the local ones
    ([0.9, 0.1], [0.55, 0.56], 0.55, NOT_SUPPORTED),               # nothing classifies: an untrained model
    ([0.9, 0.1], [0.7, 1.0], 0.98, INCONCLUSIVE),                  # the final residual falls just short
    ([0.3, 0.25], [0.7, 1.0], 1.0, INCONCLUSIVE),                  # no aggregating head, locality flat
    ([0.9], [1.0], 1.0, INCONCLUSIVE),                             # one layer: no halves to compare
    ([0.9], [0.55], 0.55, NOT_SUPPORTED),                          # ... but a final residual that classifies nothing
])
def test_verdict_h4(locality, next_auc, final, expected):
    verdict, why = verdict_h4(*_depth(locality, next_auc, final), TH["h1"], TH["h4"])
    assert verdict == expected, why


def test_seeds_that_disagree_are_inconclusive():
    assert combine([(SUPPORTED, "a"), (SUPPORTED, "b")])[0] == SUPPORTED
    result = combine([(SUPPORTED, "a"), (NOT_SUPPORTED, "b")])
    assert result.verdict == INCONCLUSIVE and result.reasons == ["seed 0: a", "seed 1: b",
                                                                 "verdicts differ between seeds: inconclusive"]


def test_every_analysis_applies_the_thresholds_it_is_given(tiny_run, tmp_path):
    """A changed thresholds file: the report prints it, and H3's floors and the circuit's bars are its."""
    import yaml

    changed = json.loads(json.dumps(TH))
    changed["effect_floors"]["rule_use_gain"] = 0.123
    changed["effect_floors"]["patch_effect_logits"] = 7.5
    changed["circuit"]["role_acc"] = 0.5
    changed["circuit"]["account_acc"] = 0.25
    changed["h1"]["refute_ratio"] = 1.7
    path = tmp_path / "thresholds.yaml"
    path.write_text(yaml.safe_dump(changed))
    summary = report.main(["--ckpt", tiny_run["checkpoint"], "--out", str(tmp_path / "rep"), "--seeds", "1",
                           "--quick", "--no-controls", "--one-process", "--thresholds", str(path)])
    assert summary["thresholds"] == changed
    assert summary["per_seed"][0]["h3"]["effect_floors"] == changed["effect_floors"]
    assert summary["per_seed"][0]["h3"]["patching"]["effect_floor"] == 7.5
    assert summary["how"]["thresholds"] == changed["circuit"]
    assert "refute_ratio = 1.7" in (tmp_path / "rep/report.md").read_text()


def test_the_report_runs_one_hooked_forward_for_all_of_h1_to_h4(tiny_run):
    model = model_from_checkpoint(load_checkpoint(ckpt=tiny_run["checkpoint"]))
    ex = Context(model=model, ckpt={}, layout=model.layout, data=DataConfig(), out=Path(), seed=0, rule=None,
                 command="").examples(24)
    samples = report_sections.report_samples(True, model.layout.n_cells)
    report_sections.analyse(model, ex, report_sections.hypothesis_params(samples, TH, 0), report_sections.Timer(),
                            "test")
    assert ex.acts.forwards == 1


def test_controls_reach_their_expected_verdicts_on_tiny_models(tiny_run, tmp_path, smoke_cfg):
    """Random init: no hypothesis supported. Rule-blind (Conway only): H3 not supported. Both appear as
    control columns of the trained model's report."""
    from interfere.train.loop import train

    train(smoke_cfg(tmp_path, "train.run_id=control_random_init", "train.steps=0", "train.final_eval=false"))
    train(smoke_cfg(tmp_path, "train.run_id=control_rule_blind", "data.rules=[B3/S23]", "train.steps=60",
                    "train.final_eval=false"))
    out = tmp_path / "rep"
    summary = report.main(["--ckpt", tiny_run["checkpoint"], "--ckpt-dir", str(tmp_path / "checkpoints"), "--out",
                           str(out), "--seeds", "1", "--quick"])
    controls = summary["controls"]
    assert set(controls) == {"random init", "rule-blind"}
    assert all(v["verdict"] != SUPPORTED for v in controls["random init"]["verdicts"].values())
    assert controls["rule-blind"]["verdicts"]["H3"]["verdict"] == NOT_SUPPORTED
    page = (out / "report.html").read_text()
    assert "control: random init" in page and "control: rule-blind" in page


def test_two_processes_report_what_one_process_reports(tiny_run, tiny_report, tmp_path):
    """The second process (the second seed, the model card) gives the numbers this process would give: the
    same verdicts and evaluation, and every analysis' numbers equal up to the rounding of another thread count."""
    two = json.loads((tiny_report / "summary.json").read_text())
    one = report.main(["--ckpt", tiny_run["checkpoint"], "--seeds", "2", "--quick", "--no-controls", "--out",
                       str(tmp_path / "one"), "--one-process"])
    assert any(name.endswith("[process 2]") for name in two["section_seconds"])
    assert not any(name.endswith("[process 2]") for name in one["section_seconds"])
    for key in ("verdicts", "eval", "how"):  # as JSON: NaN equals NaN there
        assert json.dumps(two[key]) == json.dumps(one[key]), key
    analyses = [sorted(run) for run in two["per_seed"]]
    assert analyses == [sorted(run) for run in one["per_seed"]] and {"h1", "h2", "layers"} <= set(analyses[0])
    for key in analyses[0]:  # every analysis, also one added later; the same to rounding (0 here: 1 vs 2 threads)
        assert _numbers(two["per_seed"], key) == pytest.approx(_numbers(one["per_seed"], key), abs=1e-5,
                                                               nan_ok=True), key
    assert sorted(p.name for p in tiny_report.iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def _numbers(per_seed: list[dict], key: str) -> list[float]:
    """Every number of one analysis' results, over the seeds, in order."""
    def walk(value):
        if isinstance(value, dict):
            return [n for k in sorted(value) for n in walk(value[k])]
        if isinstance(value, list):
            return [n for v in value for n in walk(v)]
        return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []
    return [n for run in per_seed for n in walk(run[key])]


def test_a_failing_second_process_leaves_no_report(tiny_run, tmp_path, monkeypatch, capsys):
    """The second process refuses (a user error): one line, exit 2, and no report folder, not even a partial one."""
    from interfere.errors import UserError

    def refuse(*args, **kwargs):
        raise UserError("the model card cannot be written here")

    monkeypatch.setattr(report.run, "run_later", refuse)
    with pytest.raises(SystemExit) as exit_:
        report.main(["--ckpt", tiny_run["checkpoint"], "--seeds", "1", "--quick", "--no-controls", "--out",
                     str(tmp_path / "r")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: the model card cannot be written here"]
    assert list(tmp_path.iterdir()) == []


def test_an_analysis_registered_in_one_line_is_run_sized_and_drawn_by_the_report(tiny_run, tmp_path, monkeypatch):
    """Adding an analysis is its module and one registry line: the report asks it for its boards (full and --quick),
    runs it on the shared batch, stores its result under its key and draws its figures in a section of its own."""
    import dataclasses
    import types

    import matplotlib.pyplot as plt

    from interfere.explore import registry

    @dataclasses.dataclass
    class Params:
        samples: int

    @dataclasses.dataclass
    class Result:
        samples: int
        mean_target_state: float

    def plot(result, out, provenance):
        fig, ax = plt.subplots()
        ax.bar([0], [result.mean_target_state])
        fig.savefig(out / "toy.png")
        plt.close(fig)
        return [out / "toy.png"]

    toy = types.SimpleNamespace(
        Params=Params, wants=lambda model, params: [],
        measure=lambda model, ex, params: Result(len(ex), float(ex.next_boards.float().mean())), plot=plot)
    entry = registry.Entry("toy", toy, (48, 4), 12, lambda n, th, seed: Params(samples=n), "a toy section")
    monkeypatch.setattr(registry, "ANALYSES", (*registry.ANALYSES, entry))
    monkeypatch.setattr(registry, "BY_KEY", {**registry.BY_KEY, "toy": entry})
    assert report_sections.report_samples(True, 64)["toy"] == 12
    assert report_sections.report_samples(False, 64)["toy"] == 48
    out = tmp_path / "report"
    report.main(["--ckpt", tiny_run["checkpoint"], "--seeds", "1", "--quick", "--no-controls", "--one-process",
                 "--out", str(out)])
    data = json.loads((out / "summary.json").read_text())
    assert data["per_seed"][0]["toy"]["samples"] == 12
    md = (out / "report.md").read_text()
    assert "## a toy section" in md and "![toy.png](toy.png)" in md
