"""The live explorer (issue 14): every endpoint with good and bad input, and a real headless browser."""

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from interfere.data.stream import DataConfig
from interfere.errors import UserError
from interfere.explorer.app import create_app
from interfere.explorer.engine import Engine
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint

CONWAY = [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]


@pytest.fixture(scope="module")
def app(tiny_run):
    ckpt = load_checkpoint(ckpt=tiny_run["checkpoint"])
    model = model_from_checkpoint(ckpt)
    data = DataConfig(**ckpt["config"]["data"])
    engine = Engine.create(model, data.heldout_seed, data.n_heldout, (data.density_min, data.density_max))
    return create_app(engine, {"run_id": ckpt["run_id"], "step": ckpt["step"], "checkpoint": ckpt["path"]})


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


@pytest.fixture(scope="module")
def window_app(tiny_window_run):
    ckpt = load_checkpoint(ckpt=tiny_window_run["checkpoint"])
    model = model_from_checkpoint(ckpt)
    engine = Engine.create(model, 1234, 8, (0.1, 0.9))
    return create_app(engine, {"run_id": ckpt["run_id"], "step": ckpt["step"], "checkpoint": ckpt["path"]})


GLIDER_RLE = "#N Glider\nx = 3, y = 3, rule = B3/S23\nbob$2bo$3o!\n"


def _board(client):
    return client.get("/api/pattern/glider").json()["board"]


def test_page_info_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "interfere explorer" in page.text and "http" not in page.text.split("<body>")[1]
    info = client.get("/api/info").json()
    assert (info["height"], info["width"], info["n_heads"]) == (5, 5, 2) and "glider" in info["patterns"]
    assert info["named_rules"]["Conway's Life"]["bits"] == CONWAY
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/index.html").status_code == 404  # only the listed files, by name
    assert client.get("/static/..%2F..%2Fpyproject.toml").status_code == 404


def test_rule_endpoint(client):
    assert client.post("/api/rule", json={"text": "highlife"}).json()["rule"] == "B36/S23"
    for text in ("B9/S2", "", "nonsense"):
        r = client.post("/api/rule", json={"text": text})
        assert r.status_code == 400 and "\n" not in r.json()["error"]


def test_step_attention_flip_and_heads_off(client):
    board = _board(client)
    r = client.post("/api/step", json={"bits": CONWAY, "model_board": board, "sim_board": board}).json()
    assert len(r["model"]) == 5 and r["rule"] == "B3/S23" and len(r["wrong"][0]) == 5
    att = client.post("/api/attention", json={"bits": CONWAY, "board": board, "row": 2, "col": 3}).json()
    head = att["layers"][0][1]
    total = sum(map(sum, head["board"])) + sum(head["rule"]) + head["other"]
    assert len(att["layers"]) == 1 and len(head["rule"]) == 18 and total == pytest.approx(1.0, abs=1e-5)
    flip = client.post("/api/flip", json={"bits": CONWAY, "board": board, "bit": 3}).json()
    assert flip["bit"] == "S3" and sum(map(sum, flip["governed"])) > 0  # glider cells with 3 neighbours
    off = client.post("/api/heads_off", json={"bits": CONWAY, "board": board, "heads": ["L0H0", "L0H1"]}).json()
    truth = client.post("/api/step", json={"bits": CONWAY, "model_board": board, "sim_board": board}).json()
    agree = sum(a == b for row, truth_row in zip(off["model"], truth["simulator"]) for a, b in zip(row, truth_row))
    assert off["accuracy"] == pytest.approx(agree / 25) and len(off["model"]) == 5


@pytest.mark.parametrize("path,body,status,message", [
    ("/api/step", {"bits": CONWAY, "model_board": [[0] * 4] * 4, "sim_board": [[0] * 4] * 4}, 400, "must be 5x5"),
    ("/api/step", {"bits": CONWAY[:5], "model_board": [[0] * 5] * 5, "sim_board": [[0] * 5] * 5}, 422, "bits"),
    ("/api/step", {"bits": [2] * 18, "model_board": [[0] * 5] * 5, "sim_board": [[0] * 5] * 5}, 400, "0 or 1"),
    ("/api/step", {"bits": CONWAY, "model_board": [[7] * 5] * 5, "sim_board": [[0] * 5] * 5}, 400, "0 or 1"),
    ("/api/step", {"bits": CONWAY, "model_board": [[0] * 300] * 300, "sim_board": [[0]]}, 422, "model_board"),
    ("/api/attention", {"bits": CONWAY, "board": [[0] * 5] * 5, "row": 9, "col": 0}, 400, "outside the 5x5"),
    ("/api/flip", {"bits": CONWAY, "board": [[0] * 5] * 5, "bit": 18}, 422, "bit"),
    ("/api/heads_off", {"bits": CONWAY, "board": [[0] * 5] * 5, "heads": ["L7H0"]}, 400, "unknown component"),
    ("/api/heads_off", {"bits": CONWAY, "board": [[0] * 5] * 5, "heads": ["MLP0"]}, 400, "only heads"),
])
def test_bad_input_gets_a_4xx_with_one_line(client, path, body, status, message):
    r = client.post(path, json=body)
    assert r.status_code == status and message in r.json()["error"] and "\n" not in r.json()["error"]


def test_malformed_json_and_unknown_pattern(client):
    r = client.post("/api/step", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "\n" not in r.json()["error"]
    assert client.get("/api/pattern/nope").status_code == 400


def test_size_free_checkpoint_takes_any_offered_size_and_rle(window_app):
    client = TestClient(window_app)
    info = client.get("/api/info").json()
    assert info["size_free"] and 64 in info["sides"] and "gosper_glider_gun" in info["patterns"]
    placed = client.post("/api/rle", json={"text": GLIDER_RLE, "height": 64, "width": 64}).json()
    board = placed["board"]
    assert (len(board), len(board[0]), sum(map(sum, board))) == (64, 64, 5) and placed["bits"] == CONWAY
    assert placed["name"] == "Glider" and board[31][32] == 1  # the 3x3 glider's top row, in the middle
    run = client.post("/api/run", json={"bits": CONWAY, "model_board": board, "sim_board": board, "gens": 4}).json()
    assert len(run["simulator"]) == 4 and sum(map(sum, run["simulator"][3])) == 5  # a glider stays 5 cells
    gun = client.get("/api/pattern/gosper_glider_gun", params={"height": 64, "width": 64}).json()
    assert sum(map(sum, gun["board"])) == 36


@pytest.mark.parametrize("path,body,message", [
    ("/api/rle", {"text": "x = 3, y = 3, rule = 23/3/2\nbob$2bo$3o!", "height": 16, "width": 16}, "Generations"),
    ("/api/rle", {"text": "x = 2, y = 2\n3o!", "height": 16, "width": 16}, "runs past its declared size"),
    ("/api/rle", {"text": "x = 3, y = 1, rule = B3/S23\n2A!", "height": 16, "width": 16}, "two-state"),
    ("/api/rle", {"text": "x = 40, y = 1, rule = B3/S23\n40o!", "height": 16, "width": 16}, "does not fit"),
    ("/api/rle", {"text": GLIDER_RLE, "height": 20, "width": 20}, "must be 8x8, 16x16"),
    ("/api/attention", {"bits": CONWAY, "board": [[0] * 64] * 64, "row": 1, "col": 1}, "32x32 or smaller"),
])
def test_bad_patterns_and_sizes_get_one_line(window_app, path, body, message):
    r = TestClient(window_app).post(path, json=body)
    assert r.status_code == 400 and message in r.json()["error"] and "\n" not in r.json()["error"]


# --- a real browser ---------------------------------------------------------------------------
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@contextlib.contextmanager
def serving(app):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(app):
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def window_server(window_app):
    with serving(window_app) as url:
        yield url


BROWSER = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and os.environ.get("CI") != "true",
                             reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium look for drivers on the network
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


ALIVE_RGB = (0x1D, 0x35, 0x57)  # --alive in style.css: live cells of the drawn boards


def screenshot(driver, tmp_path, name: str, live_cells: int):
    """Save a screenshot (in $INTERFERE_SCREENSHOTS when set, to keep it) and check that it shows the boards:
    at least ``live_cells`` cells' worth of pixels in the live-cell colour (a blank or unstyled page has none)."""
    from PIL import Image

    folder = Path(os.environ.get("INTERFERE_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / name
    driver.save_screenshot(str(shot))
    pixels = Image.open(shot).convert("RGB").getdata()
    alive = sum(1 for p in pixels if all(abs(a - b) <= 8 for a, b in zip(p, ALIVE_RGB)))
    assert alive >= 25 * live_cells, f"{alive} live-cell pixels: the boards are not drawn"
    return shot


@BROWSER
def test_browser_click_a_cell_step_and_see_attention(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(server)
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#board-model rect.cell"))
    driver.find_element(By.ID, "edit").click()  # off: a click selects the cell to inspect
    driver.find_element(By.CSS_SELECTOR, '#board-model rect.cell[data-row="2"][data-col="3"]').click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#attention .head .attention-map rect.cell"))
    driver.find_element(By.ID, "step").click()
    wait.until(lambda d: d.find_element(By.ID, "generation").text == "1")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#board-model rect.cell")) == 25
    assert driver.find_element(By.ID, "query-cell").text == "(2, 3)"
    assert len(driver.find_elements(By.CSS_SELECTOR, "#attention .head")) == 2
    assert driver.find_element(By.ID, "status").text == ""  # no error shown
    screenshot(driver, tmp_path, "explorer.png", live_cells=5)  # the glider, on the model's board


@BROWSER
def test_browser_paste_an_rle_at_64x64_and_play(window_server, browser, tmp_path):
    """A size-free checkpoint: choose 64x64, paste an RLE, play with the view following the pattern."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser
    driver.get(window_server)
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#board-model rect.cell, #board-model canvas"))
    Select(driver.find_element(By.ID, "size")).select_by_value("64")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#board-model canvas"))
    driver.find_element(By.CSS_SELECTOR, "#rle-panel summary").click()
    driver.find_element(By.ID, "rle-text").send_keys(GLIDER_RLE)
    driver.find_element(By.ID, "rle-load").click()
    wait.until(lambda d: d.find_element(By.ID, "rle-name").text == "Glider (B3/S23)")
    driver.find_element(By.ID, "follow").click()
    driver.find_element(By.ID, "play").click()
    wait.until(lambda d: int(d.find_element(By.ID, "generation").text) >= 8)
    driver.find_element(By.ID, "play").click()
    assert driver.find_element(By.ID, "status").text == ""  # no error shown
    assert driver.find_element(By.ID, "rule-current").text == "B3/S23"
    screenshot(driver, tmp_path, "explorer_rle_64x64.png", live_cells=5)  # the glider, on the simulator's board


@pytest.fixture(scope="module")
def hand_engine():
    """The split hand-made model's explorer engine, with thresholds (its lookup map computed once, when first asked,
    on 8 boards instead of 16: the built model's routes need no more, and its window attention is slow hooked)."""
    from interfere.explorer import engine
    from interfere.model.handmade import build
    from interfere.thresholds import load_thresholds

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "MAP_BOARDS", 8)
        yield Engine.create(build("split"), 1234, 64, (0.1, 0.9), load_thresholds()["circuit"])


def test_a_clicked_cell_shows_the_route_of_its_case_in_a_hand_made_model(client, hand_engine):
    """The split hand-made model (known routes): a live cell with 7 live neighbours takes the targets route, a dead
    one with 5 the rule-token route by the lookup head; the trained tiny model's explorer has no thresholds, and
    says so in one line."""
    from interfere.model.handmade import ground_truth

    hand = TestClient(create_app(hand_engine, {"run_id": "handmade_split", "step": 0, "checkpoint": "-"}))
    assert hand.get("/api/info").json()["routes"] is True
    board = [[0] * 8 for _ in range(8)]
    for r, c in ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2), (1, 1)):
        board[r][c] = 1  # (1, 1): alive with 8 neighbours; (1, 3): dead with 3 (0,2 1,2 2,2)
    body = {"bits": CONWAY, "board": board}
    truth = ground_truth("split")["routes"]
    for (row, col), case in (((1, 1), "S8"), ((1, 3), "B3"), ((4, 4), "B0")):
        got = hand.post("/api/route", json={**body, "row": row, "col": col}).json()
        assert got["case"] == case and got["lookup"] == truth[case]["lookup"], (case, got)
        assert [name for name, _ in got["relays"]] == truth[case]["relays"]
    # switching heads off: the unused L0H3 changes nothing, the count head L0H0 breaks the next board
    unused = hand.post("/api/heads_off", json={**body, "heads": ["L0H3"]}).json()
    count = hand.post("/api/heads_off", json={**body, "heads": ["L0H0"]}).json()
    assert unused["accuracy"] == 1.0 and count["accuracy"] < 0.9
    bad = hand.post("/api/route", json={**body, "row": 9, "col": 0})
    assert bad.status_code == 400 and bad.json()["error"] == "cell (9, 0) is outside the 8x8 board"
    tiny = client.post("/api/route", json={"bits": CONWAY, "board": [[0] * 5] * 5, "row": 0, "col": 0})
    assert tiny.status_code == 400 and "without thresholds" in tiny.json()["error"]
    assert got["variables"] is None  # started without a causal abstraction


def test_a_clicked_cell_shows_where_its_variables_live_from_an_abstraction_of_the_same_weights(tmp_path, hand_engine):
    """The explorer reads an abstraction's summary.json made on this very checkpoint (by weights), refuses one made on
    other weights or a file that is not one, and a clicked cell's route carries its case's sites."""
    import json

    from interfere.commands import handmade as handmade_cli
    from interfere.explorer.__main__ import read_abstraction
    from interfere.model.checkpoint import load_checkpoint, weights_hash

    ckpt = load_checkpoint(ckpt=handmade_cli.main(["--variant", "split", "--out", str(tmp_path / "h" / "latest.pt")]))
    by_case = {"count": {"S3": {"site": "resid_mid.0@board", "rank": 1}}, "bit": {"B5": {"site": "L1H2@targets",
                                                                                         "rank": 1}}}
    summary = {"weights_sha256": weights_hash(ckpt["path"]),
               "variables": {v: {"by_case": c, "located": None, "sites": []} for v, c in by_case.items()}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert read_abstraction(str(tmp_path / "summary.json"), ckpt) == by_case
    (tmp_path / "other.json").write_text(json.dumps({**summary, "weights_sha256": "0" * 12}))
    with pytest.raises(UserError, match="made on other weights"):
        read_abstraction(str(tmp_path / "other.json"), ckpt)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not a summary.json"):
        read_abstraction(str(tmp_path / "bad.json"), ckpt)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hand_engine, "abstraction", by_case)
        board = torch.zeros(8, 8, dtype=torch.long)
        board[0, 0:3] = 1
        board[2, 0:2] = 1  # (1, 1): dead, 5 live neighbours: case B5
        got = hand_engine.route(board, 1, 1)
    assert got["case"] == "B5" and got["variables"] == {"count": None, "bit": {"site": "L1H2@targets", "rank": 1}}


@BROWSER
def test_browser_opens_an_rle_file_from_the_file_chooser(window_server, browser, tmp_path):
    """The file chooser reads a local .rle file: its name and rule show, and its cells are on the board."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pattern = tmp_path / "r_pentomino.rle"
    pattern.write_text("#N R-pentomino\nx = 3, y = 3, rule = B36/S23\nb2o$2ob$bo!\n")
    driver = browser
    driver.get(window_server)
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#board-model rect.cell, #board-model canvas"))
    driver.find_element(By.CSS_SELECTOR, "#rle-panel summary").click()
    driver.find_element(By.ID, "rle-file").send_keys(str(pattern))
    wait.until(lambda d: d.find_element(By.ID, "rle-name").text == "R-pentomino (B36/S23)")
    assert driver.find_element(By.ID, "rule-current").text == "B36/S23"
    assert driver.find_element(By.ID, "status").text == ""
    screenshot(driver, tmp_path, "explorer_file.png", live_cells=5)  # the five cells of the R-pentomino


@BROWSER
def test_browser_shows_the_route_of_a_clicked_cells_case(browser, tmp_path, hand_engine):
    """A hand-made model with known routes: clicking a dead cell with 3 live neighbours names its case (B3) and its
    route (looked up by MLP0 at the board, relayed by the copy head), and outlines that head."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app = create_app(hand_engine, {"run_id": "handmade_split", "step": 0, "checkpoint": "-"})
    with serving(app) as url:
        driver = browser
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#board-model rect.cell"))
        driver.find_element(By.ID, "edit").click()  # off: a click selects the cell to inspect
        board = driver.execute_script("return S.model")  # the glider the page opens with (32x32: size-free)
        n = len(board)
        row, col = next((r, c) for r in range(n) for c in range(n) if not board[r][c]
                        and sum(board[(r + dr) % n][(c + dc) % n] for dr in (-1, 0, 1) for dc in (-1, 0, 1)) == 3)
        driver.find_element(By.CSS_SELECTOR, f'#board-model rect.cell[data-row="{row}"][data-col="{col}"]').click()
        wait.until(lambda d: d.find_element(By.ID, "route").text.startswith("Case"))
        text = driver.find_element(By.ID, "route").text
        assert text.startswith("Case B3 (dead, 3 live neighbours)") and "looked up by MLP0@board" in text
        assert [e.get_attribute("data-head") for e in driver.find_elements(By.CSS_SELECTOR, "#attention .head.route")] \
            == ["L1H0"]  # the copy head relays it; MLP0 is no head
        screenshot(driver, tmp_path, "explorer_route.png", live_cells=5)
