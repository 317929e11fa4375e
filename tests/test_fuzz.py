"""Fuzzing what a user can type (issue 36): random bytes, huge and negative sizes, bad rules and overrunning bodies
fed to `python -m interfere run` and to the explorer's RLE upload. Every one either works or ends in one line (exit
2 / HTTP 400), never a traceback, and the command writes nothing."""

import os

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from interfere.commands.run import main as run_main
from interfere.explorer.app import create_app
from interfere.explorer.engine import Engine
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint

HEADERS = st.builds(lambda x, y, rule: f"x = {x}, y = {y}" + (f", rule = {rule}" if rule else ""),
                    st.integers(-5, 10**7), st.integers(-5, 10**7),
                    st.one_of(st.none(), st.sampled_from(["B3/S23", "B9/S2", "23/3/2", "B2a/S12", "Bx/S", ""])))
BODIES = st.text(alphabet="bo$!0123456789 \n.AxyB", max_size=60)
TEXTS = st.one_of(st.builds(lambda h, b: f"{h}\n{b}", HEADERS, BODIES), st.text(max_size=80))
FILES = st.one_of(TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=80))  # any bytes


@pytest.fixture(scope="module")
def window_ckpt(tiny_window_run):
    return tiny_window_run["checkpoint"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=FILES, size=st.one_of(st.none(), st.sampled_from(["-3", "0", "2", "8", "16x8", "99999", "x", "1e9"])))
@example(text=b"x = 3, y = 3, rule = B3/S23\nbo$2bo$3o!", size="8")  # a glider: the success branch runs every time
def test_run_never_tracebacks_and_writes_nothing(window_ckpt, tmp_path_factory, capsys, text, size):
    folder = tmp_path_factory.mktemp("fuzz")
    pattern = folder / "p.rle"
    pattern.write_bytes(text)
    before = sorted(os.listdir(folder))
    gif = folder / "out.gif"
    argv = [str(pattern), "--ckpt", window_ckpt, "--gens", "1", "--gif", str(gif), *(["--size", size] if size else [])]
    try:
        run_main(argv)
    except SystemExit as exit_:
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.code == 2 and len(err) == 1 and err[0].startswith("error: "), (text, size, err)
        assert sorted(os.listdir(folder)) == before  # a refused run writes no GIF and no partial file
    else:
        capsys.readouterr()
        assert gif.is_file() and gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a")  # a run that succeeds writes it


@pytest.fixture(scope="module")
def explorer(tiny_window_run):
    ckpt = load_checkpoint(ckpt=tiny_window_run["checkpoint"])
    engine = Engine.create(model_from_checkpoint(ckpt), 1234, 8, (0.1, 0.9))
    return TestClient(create_app(engine, {"run_id": ckpt["run_id"], "step": ckpt["step"], "checkpoint": "-"}))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS, height=st.integers(-2, 300), width=st.integers(-2, 300))
def test_the_explorers_rle_upload_answers_400_never_500(explorer, text, height, width):
    r = explorer.post("/api/rle", json={"text": text, "height": height, "width": width})
    assert r.status_code in (200, 400, 422), (text, height, width, r.status_code)
    if r.status_code in (400, 422):  # a user's mistake or a malformed request: one line, saying what
        error = r.json()["error"]
        assert error and "\n" not in error and "Traceback" not in error
