"""When training stops (train.stop_when, the cap, the triggered decay) and what it says about it."""

import json

import pytest
import torch

from interfere.ca.rules import named_rule_bits, rule_codes
from interfere.config import TrainConfig
from interfere.data.stream import BatchStream
from interfere.errors import UserError
from interfere.stopping import needs_named, parse_stop_when, shortfall, stop_reason
from interfere.train.loop import lr_factor, train

METRICS = {"cell_acc": 0.9995, "board_exact": 0.97, "named_worst_acc": 0.998, "named_worst_rule": "Replicator"}


def test_a_target_holds_only_when_every_clause_does():
    both = parse_stop_when("validation_acc >= 0.999 and validation_exact >= 0.95")
    assert stop_reason(both, METRICS) == "validation_acc 0.999500 >= 0.999 and validation_exact 0.970000 >= 0.95"
    stricter = parse_stop_when("validation_acc >= 0.999 and validation_exact > 0.97")
    assert stop_reason(stricter, METRICS) is None
    assert shortfall(stricter, METRICS) == "validation_exact 0.970000 (needs > 0.97)"


def test_named_acc_reads_the_worst_named_rule_and_names_it():
    clauses = parse_stop_when("validation_acc >= 0.999 and named_acc >= 0.9999")
    assert stop_reason(clauses, METRICS) is None
    assert shortfall(clauses, METRICS) == "named_acc 0.998000 (Replicator) (needs >= 0.9999)"


def test_named_rules_are_measured_only_once_the_rest_of_the_target_holds():
    clauses = parse_stop_when("validation_acc >= 0.999 and named_acc >= 0.9999")
    validation = {"cell_acc": 0.9995, "board_exact": 0.97}
    assert needs_named(clauses, validation)
    assert not needs_named(clauses, {**validation, "cell_acc": 0.99})
    assert not needs_named(parse_stop_when("validation_acc >= 0.999"), validation)
    assert stop_reason(clauses, validation) is None  # not measured: does not hold
    assert "named_acc not measured" in shortfall(clauses, {**validation, "cell_acc": 0.99})


@pytest.mark.parametrize("text, complaint", [
    ("validation_loss <= 0.1", "cannot read"),
    ("held_out_acc >= 0.9", "unknown metric 'held_out_acc'"),
    ("validation_acc >= 0.9 or named_acc >= 0.9", "cannot read"),
])
def test_unreadable_targets_are_one_line_errors(text, complaint):
    with pytest.raises(UserError, match=complaint):
        parse_stop_when(text)
    with pytest.raises(UserError, match=complaint):
        TrainConfig(stop_when=text)


def test_triggered_schedule_is_constant_until_the_trigger_then_decays_linearly():
    tc = TrainConfig(steps=1000, warmup_steps=10, schedule="triggered", decay_steps=100, min_lr_frac=0.0,
                     decay_when="validation_acc >= 0.99")
    assert lr_factor(500, tc) == 1.0  # not triggered, far from the cap
    assert [lr_factor(s, tc, decay_start=400) for s in (400, 450, 500, 600)] == [1.0, 0.5, 0.0, 0.0]
    assert lr_factor(950, tc) == 0.5  # never triggered: the decay still ends at the cap


def _log(tmp_path, run_id):
    return [json.loads(line) for line in open(tmp_path / "runs" / run_id / "log.jsonl")]


def test_a_reached_target_stops_training_and_says_so(tmp_path, smoke_cfg):
    cfg = smoke_cfg(tmp_path, "train.run_id=early", "train.steps=40", "train.eval_every=10",
                    "train.final_eval=false", "train.stop_when='validation_acc >= 0.0 and named_acc >= 0.0'")
    result = train(cfg)
    assert result["stopped"]["step"] == 10 and result["stopped"]["target_reached"] is True
    validation = next(r["validation"] for r in _log(tmp_path, "early") if "validation" in r)
    # the logged worst named rule is the one a fresh check of the saved model finds (same boards, same seed)
    from interfere.config import sections
    from interfere.evaluate import named_check
    from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint

    data, _, tc = sections(cfg)
    again = named_check(model_from_checkpoint(load_checkpoint(ckpt=result["checkpoint"])), data, tc.named_boards,
                        seed=cfg.seed)
    assert validation["named_worst_rule"] == again["named_worst_rule"]
    assert validation["named_worst_acc"] == pytest.approx(again["named_worst_acc"], abs=1e-9)


def test_a_missed_target_runs_to_the_cap_and_says_what_was_missing(tmp_path, smoke_cfg, capsys):
    cfg = smoke_cfg(tmp_path, "train.run_id=capped", "train.steps=20", "train.eval_every=10",
                    "train.final_eval=false", "train.stop_when='validation_acc > 1.0'")
    result = train(cfg)
    assert result["stopped"]["step"] == 20 and result["stopped"]["target_reached"] is False
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("trained the full 20 steps") and "(needs > 1.0)" in last
    assert all("named_worst_acc" not in r.get("validation", {}) for r in _log(tmp_path, "capped"))


def test_the_triggered_decay_ending_stops_a_run_before_its_cap(tmp_path, smoke_cfg):
    cfg = smoke_cfg(tmp_path, "train.run_id=decayed", "train.steps=100", "train.eval_every=10",
                    "train.warmup_steps=5", "train.final_eval=false", "train.schedule=triggered",
                    "train.decay_when='validation_acc >= 0.0'", "train.decay_steps=20",
                    "train.stop_when='validation_acc > 1.0'")
    result = train(cfg)
    log = _log(tmp_path, "decayed")
    assert next(r["decay_started"] for r in log if "decay_started" in r) == 10
    assert result["stopped"]["step"] == 30 and result["stopped"]["reason"].startswith("decayed")


def test_the_batch_mix_switches_to_decay_named_frac_when_the_decay_starts_and_after_a_resume(
        tmp_path, smoke_cfg, monkeypatch):
    named = rule_codes(named_rule_bits())
    shares = []
    make_batch = BatchStream.make_batch

    def spy(self, rules, boards):
        shares.append(float(torch.isin(rule_codes(rules), named).float().mean()))
        return make_batch(self, rules, boards)

    monkeypatch.setattr(BatchStream, "make_batch", spy)
    common = ("train.run_id=mix", "train.steps=30", "train.eval_every=10", "train.warmup_steps=5",
              "train.final_eval=false", "train.schedule=triggered", "train.decay_when='validation_acc >= 0.0'",
              "train.decay_steps=20", "data.named_frac=0.0", "train.decay_named_frac=1.0")
    train(smoke_cfg(tmp_path, "train.stop_at=15", *common))
    train(smoke_cfg(tmp_path, "train.resume=mix", *common))
    assert shares == [0.0] * 10 + [1.0] * 20
