import json
import math
import os
from pathlib import Path

import pytest
import torch

from interfere.config import compose, sections
from interfere.data.stream import BatchStream
from interfere.model.checkpoint import (
    CheckpointError,
    find_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    read_checkpoint,
    weights_hash,
)
from interfere.train.loop import TrainingError, lr_factor, target_loss, train


def test_tiny_run_writes_checkpoint_and_log(tiny_run):
    ckpt = read_checkpoint(tiny_run["checkpoint"])
    assert ckpt["step"] == 60 and ckpt["run_id"] == "tiny"
    assert set(ckpt) >= {"format_version", "config", "vocab", "model", "optimizer", "scheduler", "rng"}
    link = Path(tiny_run["checkpoint"]).parents[1] / "latest.pt"
    assert link.is_symlink() and link.resolve() == Path(tiny_run["checkpoint"]).resolve()
    torch.load(tiny_run["checkpoint"], weights_only=True)  # plain tensors and containers only
    log = [json.loads(line) for line in (Path(tiny_run["checkpoint"]).parents[2] / "runs/tiny/log.jsonl").open()]
    assert any("validation" in r for r in log) and all(math.isfinite(r.get("loss", 0)) for r in log)


def test_loss_falls_well_below_the_prior(tmp_path, smoke_cfg):
    """Named rules only, 5x5 boards: 300 steps must beat the live/dead prior by a wide margin."""
    cfg = smoke_cfg(tmp_path, "train.steps=300", "data.named_frac=1.0", "train.final_eval=false",
                    "train.log_every=20", "train.eval_every=1000", "model.n_layers=2", "model.d_model=64",
                    "model.n_heads=4", "data.batch_size=32")
    result = train(cfg)
    log = [json.loads(line) for line in open(tmp_path / "runs" / result["run_id"] / "log.jsonl")]
    losses = [r["loss"] for r in log if "loss" in r]
    batch = BatchStream(sections(cfg)[0], seed=99).next(4096)
    p = batch.labels[batch.loss_mask].float().mean().item()  # the alive share of the targets
    prior_entropy = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert losses[-1] < 0.5 * prior_entropy, (losses, prior_entropy)


def test_checkpoint_round_trip_gives_identical_logits(tiny_run):
    ckpt = load_checkpoint(ckpt=tiny_run["checkpoint"])
    a, b = model_from_checkpoint(ckpt), model_from_checkpoint(ckpt)
    tokens = a.encode_prompt(torch.zeros(3, 18, dtype=torch.bool), torch.ones(3, 5, 5, dtype=torch.long))
    assert torch.equal(a(tokens), b(tokens))


def test_weights_hash_names_the_weights_not_the_file(tiny_run, tmp_path):
    """Same weights under another run id and optimizer state: same hash; one changed value: another."""
    ckpt = read_checkpoint(tiny_run["checkpoint"])
    torch.save({**ckpt, "run_id": "other", "optimizer": {}}, tmp_path / "renamed.pt")
    name = next(iter(ckpt["model"]))
    changed = {**ckpt["model"], name: ckpt["model"][name] + 1e-3}
    torch.save({**ckpt, "model": changed}, tmp_path / "changed.pt")
    original = weights_hash(tiny_run["checkpoint"])
    assert weights_hash(tmp_path / "renamed.pt") == original
    assert weights_hash(tmp_path / "changed.pt") != original
    # with EMA weights the hash is theirs, the weights every analysis loads
    torch.save({**ckpt, "ema": changed}, tmp_path / "ema.pt")
    assert weights_hash(tmp_path / "ema.pt") == weights_hash(tmp_path / "changed.pt")


@pytest.mark.parametrize("fine_tune", [False, True])
def test_resume_equals_uninterrupted(tmp_path, smoke_cfg, tiny_run, fine_tune):
    """Also for a run started from another's weights: the resume restores its own state, not the source's."""
    common = ["train.steps=16", "train.final_eval=false", "train.eval_every=1000", "train.save_every=1000",
              "train.ema_decay=0.9", *([f"train.init_from={tiny_run['checkpoint']}"] if fine_tune else [])]
    straight = train(smoke_cfg(tmp_path / "a", "train.run_id=r", *common))
    train(smoke_cfg(tmp_path / "b", "train.run_id=r", "train.stop_at=8", *common))
    assert read_checkpoint(tmp_path / "b/checkpoints/r/latest.pt")["step"] == 8
    resumed = train(smoke_cfg(tmp_path / "b", "train.run_id=r", "train.resume=true", *common))
    a, b = read_checkpoint(straight["checkpoint"]), read_checkpoint(resumed["checkpoint"])
    assert b["step"] == 16
    for key in a["model"]:
        assert torch.allclose(a["model"][key], b["model"][key], atol=1e-6), key
        assert torch.allclose(a["ema"][key], b["ema"][key], atol=1e-6), key


def test_existing_run_is_not_overwritten(tiny_run, smoke_cfg):
    root = Path(tiny_run["checkpoint"]).parents[2]
    with pytest.raises(TrainingError, match="already has a checkpoint"):
        train(smoke_cfg(root, "train.run_id=tiny"))


def test_truncated_checkpoint_is_reported(tiny_run, tmp_path):
    data = Path(tiny_run["checkpoint"]).read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(ckpt=bad)


def test_mismatched_config_is_named(tiny_run, tmp_path, smoke_cfg):
    ckpt = load_checkpoint(ckpt=tiny_run["checkpoint"])
    ckpt["config"]["model"]["d_model"] = 48
    with pytest.raises(CheckpointError, match=r"W_E has shape \(44, 32\) but the model wants \(44, 48\)"):
        model_from_checkpoint(ckpt)
    root = Path(tiny_run["checkpoint"]).parents[2]
    with pytest.raises(CheckpointError, match="model.d_model: checkpoint 32 vs config 48"):
        train(smoke_cfg(root, "train.run_id=tiny", "train.resume=true", "model.d_model=48"))


def test_a_run_started_from_another_runs_weights_starts_from_them_and_only_for_the_same_model(tiny_run, tmp_path,
                                                                                             smoke_cfg):
    """train.init_from: step 0 of the new run is the source's weights (train.steps=0 writes them), not the seed's
    initialisation; a source of another shape is refused by name before any step."""
    source = read_checkpoint(tiny_run["checkpoint"])
    out = train(smoke_cfg(tmp_path, "train.run_id=tuned", "train.steps=0", "train.final_eval=false", "seed=5",
                          f"train.init_from={tiny_run['checkpoint']}"))
    tuned = read_checkpoint(out["checkpoint"])
    assert tuned["step"] == 0 and tuned["config"]["train"]["init_from"] == tiny_run["checkpoint"]
    assert all(torch.equal(tuned["model"][k], v) for k, v in source["model"].items())
    fresh = read_checkpoint(train(smoke_cfg(tmp_path, "train.run_id=fresh", "train.steps=0", "train.final_eval=false",
                                            "seed=5"))["checkpoint"])
    assert not torch.equal(fresh["model"]["embed.W_E"], tuned["model"]["embed.W_E"])
    averaged = read_checkpoint(train(smoke_cfg(tmp_path, "train.run_id=averaged", "train.steps=0", "seed=5",
                                               "train.final_eval=false", "train.ema_decay=0.9",
                                               f"train.init_from={tiny_run['checkpoint']}"))["checkpoint"])
    for weights in (averaged["model"], averaged["ema"]):  # the moving average starts from the source, not the seed
        assert all(torch.equal(weights[k], v) for k, v in source["model"].items())
    with pytest.raises(CheckpointError, match="train.init_from: Checkpoint '/nowhere/latest.pt' does not exist"):
        train(smoke_cfg(tmp_path, "train.run_id=nowhere", "train.init_from=/nowhere/latest.pt"))
    with pytest.raises(CheckpointError, match="is another model: model.d_model: checkpoint 32 vs config 48"):
        train(smoke_cfg(tmp_path, "train.run_id=wider", "model.d_model=48",
                        f"train.init_from={tiny_run['checkpoint']}"))


def test_discovery_rule(tiny_run, tmp_path):
    root = Path(tiny_run["checkpoint"]).parents[1]
    assert find_checkpoint(ckpt_dir=root) == Path(tiny_run["checkpoint"])
    assert find_checkpoint(run_id="tiny", ckpt_dir=root) == Path(tiny_run["checkpoint"])
    with pytest.raises(CheckpointError, match="No checkpoint for run id 'nope'"):
        find_checkpoint(run_id="nope", ckpt_dir=root)
    with pytest.raises(CheckpointError, match="Train one first"):
        find_checkpoint(ckpt_dir=tmp_path / "empty")
    only_link = tmp_path / "ck"
    only_link.mkdir()
    os.symlink(Path(tiny_run["checkpoint"]).resolve(), only_link / "latest.pt")
    assert find_checkpoint(ckpt_dir=only_link) == only_link / "latest.pt"


def test_nonfinite_loss_stops_with_clear_message(tmp_path, smoke_cfg):
    with pytest.raises(TrainingError, match="loss became nan"):
        train(smoke_cfg(tmp_path, "train.lr=1e30", "train.warmup_steps=1", "train.steps=10", "train.log_every=5"))
    assert not list((tmp_path / "checkpoints").glob("*/latest.pt"))


def test_focal_loss_weighs_cells_by_how_wrong_they_are():
    labels = torch.tensor([[1, 1, 0]])
    logits = torch.tensor([[[-4.0, 4.0], [0.0, 0.0], [-3.0, 3.0]]])  # right and sure, unsure, wrong and sure
    ce = torch.nn.functional.cross_entropy(logits[0], labels[0], reduction="none")
    assert torch.allclose(target_loss(logits, labels)[0], ce.mean())
    focal, correct = target_loss(logits, labels, focal_gamma=2.0)
    p = torch.exp(-ce)
    assert torch.allclose(focal, (ce * (1 - p) ** 2).mean()) and correct == 1
    weights = torch.tensor([[0.5, 1.0, 1.5]])
    assert torch.allclose(target_loss(logits, labels, weights, 2.0)[0], (ce * (1 - p) ** 2 * weights[0]).mean())
    assert (ce * (1 - p) ** 2)[0] < 1e-3 * ce[0] and (ce * (1 - p) ** 2)[2] > 0.99 * ce[2]


def test_lr_schedule_shape():
    _, _, tc = sections(compose("exp/life_smoke", ["train.steps=100", "train.warmup_steps=10"]))
    lrs = [lr_factor(s, tc) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(tc.min_lr_frac, abs=1e-3) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_all_shipped_configs_compose_and_unknown_ones_fail():
    from interfere.config import available_configs

    for name in available_configs():
        sections(compose(name))
    with pytest.raises(ValueError, match="Unknown config 'exp/nope'; choose from"):
        compose("exp/nope")
    with pytest.raises(ValueError, match="Unknown key"):
        sections({"data": {"bogus": 1}, "model": {}, "train": {}})
