"""Reference models (issue 44): weights that ship with the package, named ref:NAME wherever a checkpoint is accepted,
checked against their recorded sha256, and loaded like from_pretrained."""

import json
import shutil

import pytest
import torch

from interfere.errors import UserError
from interfere.model import load_reference, reference
from interfere.model.checkpoint import find_checkpoint, load_checkpoint, weights_hash


def test_every_reference_model_loads_and_matches_its_manifest():
    entries = reference.manifest()
    assert set(entries) == {"demo", "deep", "any"}  # the three issue 44 names
    for name, entry in entries.items():
        path = find_checkpoint(ckpt=f"ref:{name}")
        assert path.stat().st_size <= 2_000_000 and path.stat().st_size == entry["bytes"]
        assert weights_hash(path) == entry["weights_sha256"]
        ckpt = load_checkpoint(ckpt=f"ref:{name}")
        assert ckpt["ema"] is None and "optimizer" not in ckpt  # weights only
        model = load_reference(name)
        assert all(p.dtype == torch.float32 for p in model.parameters())


def test_the_demo_reference_predicts_a_glider_step_and_a_bad_name_or_file_is_one_line(tmp_path, monkeypatch, capsys):
    from interfere.ca.patterns import place
    from interfere.ca.rules import get_rule
    from interfere.ca.simulate import step
    from interfere.model.inference import predict

    model = load_reference("demo")
    board = place("glider", 8, 8, 2, 2)[None]
    assert torch.equal(predict(model, get_rule("B3/S23"), board, 1), step(board, get_rule("B3/S23")))
    with pytest.raises(UserError, match="unknown reference model 'nope': choose one of .*demo"):
        find_checkpoint(ckpt="ref:nope")
    copied = tmp_path / "weights"
    shutil.copytree(reference.WEIGHTS_DIR, copied)
    (copied / "demo.pt").write_bytes((copied / "demo.pt").read_bytes()[:-10] + b"0123456789")
    monkeypatch.setattr(reference, "WEIGHTS_DIR", copied)
    monkeypatch.setattr(reference, "MANIFEST", copied / "manifest.json")
    with pytest.raises(UserError, match="does not match its recorded sha256"):
        find_checkpoint(ckpt="ref:demo")
    manifest = json.loads((copied / "manifest.json").read_text())
    (copied / "manifest.json").write_text(json.dumps({**manifest, "ghost": {**manifest["demo"], "file": "no.pt"}}))
    with pytest.raises(UserError, match="'ghost' is listed but .* is missing"):
        find_checkpoint(ckpt="ref:ghost")


@pytest.mark.parametrize("name,sides", [("deep", [8]), ("any", [8, 10, 17, 24])])
def test_the_deep_and_size_free_references_step_a_glider_at_their_sizes(name, sides):
    from interfere.ca.patterns import place
    from interfere.ca.rules import get_rule
    from interfere.ca.simulate import step
    from interfere.model.inference import predict

    model = load_reference(name)
    assert model.size_free == (name == "any")
    for side in sides:
        board = place("glider", side, side, 2, 3)[None]
        with model.sized(side, side):
            assert torch.equal(predict(model, get_rule("B3/S23"), board, 1), step(board, get_rule("B3/S23"))), side
