"""Defects a reliability audit found (issue 15): each test failed before its fix."""

import os
import re
import stat
from pathlib import Path

import pytest
import torch

from interfere.commands import evaluate as evaluate_cli
from interfere.config import compose, sections
from interfere.explore import attn_maps
from interfere.model.checkpoint import CheckpointError, default_file_mode, load_checkpoint, read_checkpoint
from interfere.train.loop import TrainingError, train
from interfere.train.runs import RunClaim

REPO = Path(__file__).resolve().parents[1]


def _all_finite(ckpt: dict) -> bool:
    """Every weight finite (TransformerLens' ``attn.IGNORE`` buffer is -inf by design)."""
    return all(torch.isfinite(v).all() for k, v in ckpt["model"].items()
               if v.is_floating_point() and not k.endswith("IGNORE"))


@pytest.mark.parametrize("save_every,saved", [(1, True), (5, False)])
def test_a_diverged_run_never_saves_nonfinite_weights_and_names_the_last_good_checkpoint(tmp_path, smoke_cfg,
                                                                                         save_every, saved):
    """lr 1e30: the first step's weights are huge but finite, the second step's loss is not. Saving every step
    keeps step 1 (named in the message); saving every 5 steps keeps nothing (and says so)."""
    with pytest.raises(TrainingError) as info:
        train(smoke_cfg(tmp_path, "train.lr=1e30", f"train.save_every={save_every}", "train.run_id=x",
                        "train.steps=20"))
    message = str(info.value)
    assert "loss became nan at step 2" in message or "loss became inf at step 2" in message, message
    path = tmp_path / "checkpoints/x/latest.pt"
    assert path.exists() == saved
    if saved:
        ckpt = read_checkpoint(path)
        assert _all_finite(ckpt) and ckpt["step"] == 1
        assert f"the last good checkpoint is step 1: {path}" in message
    else:
        assert "no checkpoint of this run was written" in message


def test_a_second_process_cannot_claim_a_running_run(tmp_path, smoke_cfg):
    claim = RunClaim(tmp_path / "checkpoints/busy")  # stands for a live run with this id
    try:
        with pytest.raises(TrainingError, match=r"Run 'busy' is in use by pid \d+"):
            train(smoke_cfg(tmp_path, "train.run_id=busy"))
    finally:
        claim.release()
    assert not (tmp_path / "runs/busy").exists()  # nothing was logged by the second run


def test_resume_refuses_a_changed_hyperparameter_and_lists_it(tmp_path, smoke_cfg):
    train(smoke_cfg(tmp_path, "train.run_id=r", "train.stop_at=4", "train.final_eval=false"))
    with pytest.raises(CheckpointError, match=r"train\.lr: checkpoint 0\.003 vs config 1e\+30.*train\.warmup_steps"):
        train(smoke_cfg(tmp_path, "train.run_id=r", "train.resume=true", "train.lr=1e30", "train.warmup_steps=3"))
    # what only decides where output goes and how often may change
    done = train(smoke_cfg(tmp_path, "train.run_id=r", "train.resume=true", "train.log_every=2",
                           "train.final_eval=false"))
    assert done["step"] == 20


@pytest.mark.parametrize("override,message", [
    ("train.steps=-5", "train.steps must be >= 0, got -5"),
    ("model.n_heads=3", "model.d_model 32 is not divisible by model.n_heads 3"),
    ("model.d_model=36", "d_head 18 (model.d_model / model.n_heads) is not a multiple of 4"),
    ("data.batch_size=0", "data.batch_size must be >= 1, got 0"),
    ("data.density_min=0.95", "data.density_min (0.95) must not exceed data.density_max (0.9)"),
    ("train.autocast=fp8", "train.autocast must be one of auto, none, bf16"),
    ("train.ema_decay=1.0", "train.ema_decay must be in [0.0, 1.0)"),
])
def test_nonsense_config_is_refused_up_front(override, message, tmp_path, smoke_cfg):
    with pytest.raises(ValueError, match=re.escape(message)):
        sections(smoke_cfg(tmp_path, override))


def test_a_board_that_cannot_fit_is_refused_before_training(tmp_path, smoke_cfg):
    with pytest.raises(ValueError, match=r"512x512 boards with data.batch_size=16 need about [\d,.]+ GB per training "
                                         r"step .* GB free; not even one sequence fits"):
        train(smoke_cfg(tmp_path, "data.height=512", "data.width=512", "train.run_id=big"))
    assert not (tmp_path / "checkpoints/big").exists()


def test_empty_and_incomplete_checkpoints_are_one_line_errors(tiny_run, tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_checkpoint(ckpt=empty)
    ckpt = torch.load(tiny_run["checkpoint"], weights_only=True)
    del ckpt["vocab"]
    torch.save(ckpt, tmp_path / "novocab.pt")
    with pytest.raises(CheckpointError, match=r"lacks \['vocab'\]"):
        load_checkpoint(ckpt=tmp_path / "novocab.pt")


def test_stale_temp_files_of_a_killed_run_are_removed_on_resume_but_not_other_runs(tmp_path, smoke_cfg):
    train(smoke_cfg(tmp_path, "train.run_id=k", "train.stop_at=2", "train.final_eval=false"))
    stale = tmp_path / "checkpoints/k/.latest.pt.dead1234.tmp"
    stale.write_bytes(b"half")
    other = tmp_path / "checkpoints/other/.latest.pt.live5678.tmp"
    other.parent.mkdir()
    other.write_bytes(b"someone else's")
    link_tmp = tmp_path / "checkpoints/.latest.pt.999999999.tmp"  # no such pid
    os.symlink("k/latest.pt", link_tmp)
    train(smoke_cfg(tmp_path, "train.run_id=k", "train.resume=true", "train.final_eval=false"))
    assert not stale.exists() and not link_tmp.is_symlink() and other.exists()


def test_checkpoints_get_the_umask_default_mode(tiny_run):
    mode = stat.S_IMODE(os.stat(tiny_run["checkpoint"]).st_mode)
    assert mode == default_file_mode() and mode & 0o044  # readable by group and others under umask 022


def test_same_seed_same_threads_gives_a_bit_identical_checkpoint(tmp_path):
    """2 threads, the demo's shape: before deterministic algorithms, runs differed from step ~10."""
    paths = []
    for name in ("a", "b"):
        cfg = compose("exp/cpu_demo", [f"train.ckpt_dir={tmp_path}/{name}", f"train.log_dir={tmp_path}/{name}-runs",
                                       "train.steps=30", "train.run_id=d", "train.final_eval=false",
                                       "train.eval_every=1000", "train.threads=2"])
        paths.append(train(cfg)["checkpoint"])
    a, b = (read_checkpoint(p) for p in paths)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert torch.equal(a["rng"]["stream"][0], b["rng"]["stream"][0])


def test_flags_are_validated_before_any_work(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for gif in ("garbage", ""):
        with pytest.raises(SystemExit):
            evaluate_cli.main(["--ckpt", tiny_run["checkpoint"], "--gif", gif, "--no-rollouts", "--boards", "8"])
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and len(err.splitlines()) == 1
    assert not list(tmp_path.rglob("eval.json"))
    with pytest.raises(SystemExit):
        attn_maps.main(["--ckpt", tiny_run["checkpoint"], "--rule", "", "--out", str(tmp_path / "x")])
    assert "Empty rule ''" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_every_command_the_readme_names_exists():
    readme = (REPO / "README.md").read_text()
    scripts = set(re.findall(r"python ((?:explorations|bench)/\w+\.py|\w+\.py)", readme))
    missing = sorted(s for s in scripts if not (REPO / s).is_file())
    assert scripts and not missing, missing
