"""The notebook tour runs top to bottom (on the session's tiny model; with no checkpoint it loads ref:demo)."""

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TOUR = Path(__file__).resolve().parents[1] / "notebooks" / "tour.ipynb"


def test_tour_executes_without_error(tiny_run, monkeypatch):
    monkeypatch.setenv("INTERFERE_TOUR_CKPT_DIR", str(Path(tiny_run["checkpoint"]).parents[1]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(TOUR, as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "commit it without outputs"
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(TOUR.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "run tiny, step" in text and "verdict:" in text and "count R2" in text and "share restored per head" in text
    print(f"tour executed in {time.perf_counter() - t0:.1f} s")
