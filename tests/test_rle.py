"""RLE patterns (issue 26): reading, writing, the library, and running a pattern through the model."""

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from interfere.ca.patterns import PATTERNS, centred, fitting_size, library_names, load_pattern
from interfere.ca.rle import Pattern, RLEError, parse_rle, parse_rle_rule, read_rle, to_rle, write_rle
from interfere.ca.rules import parse_rule
from interfere.ca.simulate import rollout
from interfere.commands.evaluate import main as eval_main
from interfere.commands.run import main as run_main

GLIDER = torch.tensor([[0, 1, 0], [0, 0, 1], [1, 1, 1]])


def test_reads_header_body_and_comments():
    p = parse_rle("#N Glider\n#O someone\n#C c/4\nx = 3, y = 3, rule = B3/S23\nbob$2bo$\n3o!")
    assert torch.equal(p.cells, GLIDER) and str(p.rule) == "B3/S23" and p.name == "Glider"
    assert p.comments == ["#N Glider", "#O someone", "#C c/4"]


@pytest.mark.parametrize("text,rule", [("B3/S23", "B3/S23"), ("23/3", "B3/S23"), ("S23/B36", "B36/S23"),
                                       ("b2/s", "B2/S"), ("/2", "B2/S"), ("B3/S23:T64,64", "B3/S23"),
                                       ("12345/3", "B3/S12345")])
def test_rules_in_both_orders(text, rule):
    assert str(parse_rle_rule(text)[0]) == rule


def test_multi_digit_runs_blank_rows_and_no_rule():
    p = parse_rle("x = 12, y = 4\n12o3$b10ob!")
    assert p.rule is None and p.cells[0].sum() == 12 and p.cells[1:3].sum() == 0 and p.cells[3].sum() == 10


@pytest.mark.parametrize("text,message", [
    ("x = 3, y = 3, rule = 23/3/2\nbob$2bo$3o!", "Generations"),
    ("x = 3, y = 3, rule = B2/S/C3\nbob$2bo$3o!", "Generations"),
    ("x = 3, y = 3, rule = B2a/S12\nbob$2bo$3o!", "non-totalistic"),
    ("x = 3, y = 3, rule = R2,C0,M1,S34..58,B34..45,NM\nbob!", "Larger than Life"),
    ("x = 3, y = 3, rule = B2/S34H\nbob!", "hexagonal"),
    ("x = 3, y = 3, rule = B9/S23\nbob!", "not a life-like rule"),
    ("x = 3, y = 1, rule = B3/S23\n.A.!", "two-state"),
    ("x = 2, y = 2, rule = B3/S23\n3o!", "runs past its declared size"),
    ("x = 2, y = 1, rule = B3/S23\no$o!", "runs past its declared size"),
    ("x = 3, y = 1\n2o2", "run count without a cell state"),
    ("x = 100000, y = 100000, rule = B3/S23\no!", "can be read"),  # refused before 80 GB are allocated
    ("bob$2bo$3o!", "bad header"),
    ("", "no 'x = W, y = H' header"),
])
def test_malformed_or_non_life_like_is_one_line(text, message):
    with pytest.raises(RLEError, match=message) as err:
        parse_rle(text)
    assert "\n" not in str(err.value)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 90), st.integers(1, 12), st.integers(0, 2**31))
def test_round_trip(width, height, seed):
    cells = (torch.rand(height, width, generator=torch.Generator().manual_seed(seed)) < 0.4).long()
    pattern = Pattern(cells, parse_rule("B36/S23"), ["#N test", "#C a comment"])
    text = to_rle(pattern)
    assert all(len(line) <= 70 for line in text.splitlines()[3:])
    back = parse_rle(text)
    assert torch.equal(back.cells, cells) and back.rule == pattern.rule and back.comments == pattern.comments


def test_library_patterns_behave_as_published():
    """The project's own entries, checked against the simulator."""
    def on(name, side):
        p = load_pattern(name)
        return p, centred(p, side, side)

    gun, board = on("gosper_glider_gun", 64)
    pops = rollout(board, gun.rule, 60).flatten(1).sum(1)
    assert (pops[0], pops[30], pops[60]) == (36, 41, 46)  # a glider (5 cells) every 30 generations
    pulsar, board = on("pulsar", 32)
    states = rollout(board, pulsar.rule, 3)
    assert torch.equal(states[3], states[0]) and not torch.equal(states[1], states[0])
    rep, board = on("highlife_replicator", 32)
    assert rollout(board, rep.rule, 12)[12].sum() == 2 * board.sum()  # two copies in HighLife
    glider, board = on("glider", 16)
    assert torch.equal(rollout(board, glider.rule, 4)[4], board.roll((1, 1), (0, 1)))
    assert {"block", "blinker", "glider", "lwss", "r_pentomino"} <= set(library_names())
    assert PATTERNS["glider"] == tuple(map(tuple, GLIDER.nonzero().tolist()))


def test_load_pattern_errors(tmp_path):
    with pytest.raises(RLEError, match="no library pattern"):
        load_pattern("no_such_pattern")
    with pytest.raises(RLEError, match="no pattern file"):
        read_rle(tmp_path / "missing.rle")
    assert fitting_size(load_pattern("glider")) == (19, 19)
    with pytest.raises(RLEError, match="does not fit"):
        centred(load_pattern("gosper_glider_gun"), 16, 16)


@pytest.fixture
def window_ckpt(tiny_window_run):
    return tiny_window_run["checkpoint"]


def test_run_command_rolls_out_next_to_the_simulator(window_ckpt, tmp_path, capsys):
    comparison = run_main(["glider", "--ckpt", window_ckpt, "--gens", "6", "--size", "16",
                           "--gif", str(tmp_path / "glider.gif")])
    out = capsys.readouterr().out
    assert comparison.truth.shape == (1, 7, 16, 16) and torch.equal(comparison.truth[0, 4],
                                                                     comparison.truth[0, 0].roll((1, 1), (0, 1)))
    assert "on a 16x16 torus" in out and "gen    1-6" in out and (tmp_path / "glider.gif").stat().st_size > 1000
    first = comparison.first_wrong()[0]
    assert ("exact" in out) if first is None else (f"first divergence: generation {first}" in out)


@pytest.mark.parametrize("args,message", [
    (["nope"], "no library pattern"),
    (["glider", "--rule", "B9/S2"], "Bad rule string"),
    (["glider", "--gens", "0"], "--gens must be"),
    (["glider", "--size", "2"], "window"),
    (["glider", "--gif", "out.png"], "must end in .gif or .mp4"),
    (["gosper_glider_gun", "--size", "16"], "does not fit"),
    (["glider", "--size", "100000"], "use a smaller board"),  # refused before its tables are allocated
    (["huge.rle"], "can be read"),
])
def test_run_command_errors_are_one_line_and_write_nothing(window_ckpt, tmp_path, capsys, monkeypatch, args,
                                                           message):
    monkeypatch.chdir(tmp_path)
    if args == ["huge.rle"]:
        (tmp_path / "huge.rle").write_text("x = 100000, y = 100000, rule = B3/S23\no!\n")
    with pytest.raises(SystemExit) as exit_:
        run_main([*args, "--ckpt", window_ckpt])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and message in err and len(err.splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == (["huge.rle"] if args == ["huge.rle"] else [])


def test_eval_patterns_table(window_ckpt, tmp_path, capsys):
    folder = tmp_path / "patterns"
    folder.mkdir()
    for name in ("glider", "blinker"):
        (folder / f"{name}.rle").write_text(to_rle(load_pattern(name)))
    eval_main(["--ckpt", window_ckpt, "--patterns", str(folder), "--gens", "3", "--size", "16"])
    out = capsys.readouterr().out
    assert "glider" in out and "blinker" in out and "of 2 patterns exact for 3 generations on 16x16" in out
    written = json.loads(Path(out.split("wrote ")[1].strip()).read_text())
    assert {r["pattern"] for r in written["patterns"]} == {"glider", "blinker"} and written["gens"] == 3


@pytest.mark.parametrize("topology", [None, "T64,64", "P32,16", "K20*,30"])
def test_write_rle_keeps_the_topology_suffix(tmp_path, topology):
    """A Golly topology suffix (``:T64,64``) is written back as it was read, and read back again."""
    cells = torch.tensor([[0, 1, 0], [0, 0, 1], [1, 1, 1]])
    path = write_rle(Pattern(cells, parse_rule("B3/S23"), ["#N glider"], topology), tmp_path / "g.rle")
    header = next(line for line in path.read_text().splitlines() if line.startswith("x"))
    assert header == "x = 3, y = 3, rule = B3/S23" + (f":{topology}" if topology else "")
    back = read_rle(path)
    assert back.topology == topology and torch.equal(back.cells, cells) and back.rule == parse_rule("B3/S23")
