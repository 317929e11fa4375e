"""The training loop: single process or DDP under `torchrun`, read top to bottom (docs/design.md, "Training").

AdamW on fp32 master weights, linear warm-up then cosine decay (in optimizer steps), gradient
clipping, optional EMA, bf16 autocast where it pays (``train.precision``), cross-entropy over the two
outputs at target positions only. Rank 0 alone evaluates, logs and writes checkpoints.

Every ``train.eval_every`` steps the model is checked on the validation rules; training stops when
they reach ``train.stop_when`` (``stopping``) or at the cap ``train.steps``, and only then is it
measured on the held-out test rules (``eval.json`` says when and why it stopped).

A run is reproducible bit for bit for a given seed, device and thread count
(``train.deterministic``); it never writes a checkpoint with non-finite weights, and says which
step its last good checkpoint is when it stops on a non-finite loss.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from interfere.config import TrainConfig, layout_of, resolve_device, sections, to_plain
from interfere.cpu import configure_cpu
from interfere.data.stream import BatchStream, DataConfig
from interfere.evaluate import evaluate, format_report, named_check, save_rollout_animation, validation_metrics
from interfere.model.checkpoint import (
    LATEST,
    CheckpointError,
    config_differences,
    load_checkpoint,
    load_weights,
    read_checkpoint,
)
from interfere.model.life_model import LifeTransformer, ModelConfig, n_params
from interfere.model.memory import check_training_fits
from interfere.stopping import needs_named, parse_stop_when, shortfall, stop_reason
from interfere.train.distributed import Dist, session
from interfere.train.optim import (
    EMA,
    lr_factor,
    make_optimizer,
    make_scheduler,
    maybe_ema,
    snapshot_steps,
)
from interfere.train.precision import autocast_choice
from interfere.train.runs import (
    RunClaim,
    TrainingError,
    refuse_existing,
    remove_stale_link_temps,
    resolve_run,
    resume_mismatches,
)
from interfere.train.saving import Saving
from interfere.train.siit import SiitRun
from interfere.train.step import (  # re-exported: the loop's public names
    TargetLogits,
    Window,
    accumulate_gradients,
    deterministic_algorithms,
    target_loss,
)

__all__ = ["TargetLogits", "TrainingError", "accumulate_gradients", "deterministic_algorithms", "lr_factor",
           "make_optimizer", "target_loss", "train"]


# --- the run ---------------------------------------------------------------------------------
def train(cfg: DictConfig) -> dict:
    """Train the model described by ``cfg``; returns the final metrics and the checkpoint path."""
    data_cfg, model_cfg, tc = sections(cfg)  # validates every value before any work
    device = resolve_device(cfg.get("device", "auto"))
    with session(device.type) as dd:
        if device.type == "cuda":
            device = torch.device("cuda", dd.local_rank)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        else:
            configure_cpu(tc.threads)
        with deterministic_algorithms(tc.deterministic, device), torch.enable_grad():  # enable_grad: even when
            return Run(cfg, data_cfg, model_cfg, tc, device, dd).train()  # called where gradients are off


class Run(Saving):
    """One training run: its state (model, optimizer, data stream, step) and what it writes."""

    def __init__(self, cfg: DictConfig, data_cfg: DataConfig, model_cfg: ModelConfig, tc: TrainConfig,
                 device: torch.device, dd: Dist) -> None:
        self.cfg, self.data_cfg, self.tc, self.device, self.dd = to_plain(cfg), data_cfg, tc, device, dd
        self.exp_name, self.seed = cfg.get("exp_name", "run"), int(cfg.get("seed", 0))
        self.layout = layout_of(data_cfg)
        self.sizes = [(s, s) for s in data_cfg.sizes] or [(self.layout.height, self.layout.width)]
        if tc.steps > 0:  # per micro-batch; train.steps=0 only writes the initial weights
            biggest = max(self.sizes, key=lambda hw: hw[0] * hw[1])
            check_training_fits(model_cfg, self.layout.with_size(*biggest), data_cfg.batch_size, device)
        self.ckpt_dir = Path(tc.ckpt_dir)
        self.claim: RunClaim | None = None
        self.run_id, resume_from = self._open_run()
        self.log_dir = Path(tc.log_dir) / self.run_id
        try:
            self._build(model_cfg, resume_from)
        except BaseException:
            self.release()
            raise

    def _build(self, model_cfg: ModelConfig, resume_from: Path | None) -> None:
        tc, device, dd = self.tc, self.device, self.dd
        torch.manual_seed(self.seed)
        self.model = LifeTransformer(model_cfg, self.layout, device)
        self.stream = BatchStream(self.data_cfg, seed=self.seed * 1000 + dd.rank, device=device)
        self.optimizer = make_optimizer(self.model, tc)
        self.scheduler = make_scheduler(self.optimizer, tc)
        self.ema = EMA(self.model, tc.ema_decay) if tc.ema_decay > 0 else None
        self.step, self.train_time, self.last_eval = 0, 0.0, {}
        self.stop_clauses = parse_stop_when(tc.stop_when) if tc.stop_when else []
        self.decay_clauses = parse_stop_when(tc.decay_when, "train.decay_when") if tc.decay_when else []
        self.stopped: dict | None = None  # when and why training ended (None while it runs)
        self.saved: tuple[int, Path] | None = None  # (step, path) of the last good checkpoint
        self.siit = SiitRun.of(tc, self.model, self.seed, dd) if tc.siit else None
        if resume_from is not None:
            self._restore(resume_from)
        elif tc.init_from:
            self._start_from(tc.init_from)
        use_bf16, self.autocast_why = autocast_choice(tc.autocast, device, model_cfg.d_model)
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
        targets = sum(len(self.layout.with_size(*size).target_index) for size in self.sizes)
        self.cells_per_step = tc.grad_accum * self.data_cfg.batch_size * targets * dd.world_size
        self.first_bad_step = torch.full((), -1, device=device, dtype=torch.long)
        self.bad_loss = torch.zeros((), device=device)
        self.snapshot_at = set(snapshot_steps(tc.steps, tc.snapshots))

    def release(self) -> None:
        """Give up the claim on the run folder (at the end of the run, or when it fails)."""
        if self.claim is not None:
            self.claim.release()

    # --- opening and restoring --------------------------------------------------------------
    def _open_run(self) -> tuple[str, Path | None]:
        """Rank 0 resolves the run id and claims its folder; every rank gets the outcome."""
        outcome: tuple = (None, None, None)
        if self.dd.is_main:
            try:
                run_id, resume_from = resolve_run(self.ckpt_dir, self.tc.run_id, self.tc.resume, self.exp_name)
                self.claim = RunClaim(self.ckpt_dir / run_id)
                if resume_from is None:
                    refuse_existing(self.ckpt_dir, run_id)  # again, now that the folder is ours
                stale = self.claim.removed_temp_files + remove_stale_link_temps(self.ckpt_dir)
                if stale:
                    print(f"removed {len(stale)} temporary file(s) left by a killed run: {', '.join(stale)}")
                outcome = (run_id, resume_from, None)
            except TrainingError as err:
                outcome = (None, None, str(err))
        run_id, resume_from, error = self.dd.broadcast(outcome)
        if error:
            raise TrainingError(error)
        return run_id, resume_from

    def _start_from(self, source: str) -> None:
        """Fine-tuning: another run's weights, as every analysis of it reads them (its moving average where it has
        one), whose model must be this one's; this run's moving average starts from them too."""
        try:
            ckpt = load_checkpoint(ckpt=source, map_location=self.device)
        except CheckpointError as err:
            raise CheckpointError(f"train.init_from: {err}") from None
        problems = [str(d) for d in config_differences(ckpt["config"], self.cfg, ("model",))
                    if d.key != "seed"]  # the initialisation seed: the weights replace what it drew
        if problems:
            raise CheckpointError(f"train.init_from={source} is another model: " + "; ".join(problems)
                                  + " (start from a checkpoint of this model's config)")
        load_weights(self.model, ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"], ckpt["path"])
        if self.ema is not None:
            self.ema.load(self.model.state_dict())

    def _restore(self, path: Path) -> None:
        ckpt = read_checkpoint(path, map_location=self.device)
        problems = resume_mismatches(ckpt["config"], self.cfg)
        if problems:
            raise CheckpointError(f"Cannot resume {path} with a changed setting: " + "; ".join(problems)
                                  + " (start a new run to change these)")
        load_weights(self.model, ckpt["model"], str(path))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load(ckpt["ema"])
        states = ckpt["rng"]["stream"]
        if len(states) == self.dd.world_size:
            self.stream.generator.set_state(states[self.dd.rank].cpu())
        else:  # another world size: a fresh, still deterministic, data order
            self.stream.generator.manual_seed(self.seed * 1000 + self.dd.rank + 7919 * ckpt["step"])
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        if self.siit is not None and "siit" in ckpt:
            self.siit.load(ckpt["siit"])
        self.step, self.train_time = int(ckpt["step"]), float(ckpt.get("train_time_s", 0.0))
        self.last_eval = ckpt.get("metrics", {})
        self.stopped = ckpt.get("stopped")
        self.saved = (self.step, path)
        if self.scheduler.decay_start is not None:
            self._decay_mix()

    def _decay_mix(self) -> None:
        """From the decay's start on, the batch holds ``train.decay_named_frac`` named rules (when set)."""
        if self.tc.decay_named_frac is not None:
            self.stream.named_frac = self.tc.decay_named_frac

    # --- the loop ---------------------------------------------------------------------------
    def train(self) -> dict:
        try:
            net = TargetLogits(self.model, fast=self.tc.fast_path)
            if self.dd.enabled:
                net = DistributedDataParallel(net)
            self._announce()
            self._loop(net)
            del net  # the DDP wrapper must be gone before the process group (distributed.py)
            if self.saved is None or self.saved[0] != self.step:
                self.save()  # e.g. train.steps=0: the initial weights, a random-init control
            return self._finish()
        finally:
            self.release()

    def _announce(self) -> None:
        if self.dd.is_main:
            boards = ", ".join(f"{h}x{w}" for h, w in self.sizes)
            print(f"run {self.run_id}: {n_params(self.model):,} parameters, {boards} boards, "
                  f"{self.cells_per_step:,} target cells per step, device {self.device}"
                  + (f", {self.dd.world_size} processes" if self.dd.enabled else "")
                  + (f", resuming at step {self.step}" if self.step else "") + f"\nautocast: {self.autocast_why}")
            self._log({"step": self.step, "autocast": self.autocast_why})

    def _loop(self, net: torch.nn.Module) -> None:
        tc = self.tc
        end = min(tc.steps, tc.stop_at or tc.steps)
        bar = tqdm(total=tc.steps, initial=self.step, disable=not self.dd.is_main, dynamic_ncols=True,
                   desc=self.exp_name)
        self.model.train()
        window = Window(self.device)
        while self.step < end and self.stopped is None:
            t0 = time.perf_counter()
            loss, correct = self._train_step(net)
            window.add(loss, correct)
            self.train_time += time.perf_counter() - t0
            bar.update(1)
            if self.step % tc.log_every == 0 or self.step == tc.steps:
                record = self._log_window(window)
                bar.set_postfix(loss=f"{record['loss']:.4f}", acc=f"{record['acc']:.4f}",
                                valid=f"{self.last_eval.get('cell_acc', float('nan')):.4f}",
                                cells_s=f"{record['cells_per_s']:.3g}", refresh=False)
            if self.step % tc.eval_every == 0 or self.step == tc.steps:
                eval_start = time.perf_counter()
                self._validate()
                window.start += time.perf_counter() - eval_start  # cells/s counts training only
                bar.set_postfix(valid=f"{self.last_eval.get('cell_acc', float('nan')):.5f}", refresh=True)
            if self.step % tc.save_every == 0 or self.step == end or self.stopped is not None:
                self.save()
            if self.step in self.snapshot_at or (self.stopped is not None and tc.snapshots > 0):
                self.snapshot()
        bar.close()
        if self.stopped is None and self.step >= tc.steps:  # train.steps=0, or a resumed run that had ended
            self.stopped = {"step": self.step, "reason": "train.steps", "target_reached": None,
                            "message": f"trained the full {tc.steps} steps (train.steps)"}

    def _validate(self) -> None:
        """Rank 0 measures the validation rules and decides whether to start the learning rate's decay
        (``train.decay_when``) and whether to stop; every rank learns both."""
        decision, decay = None, False
        if self.dd.is_main:
            self.last_eval = self._validation_metrics()
            self._log({"step": self.step, "validation": self.last_eval})
            decay = self.scheduler.decay_start is None and stop_reason(self.decay_clauses, self.last_eval) is not None
            if decay:
                self._log({"step": self.step, "decay_started": self.step, "train_time_s": self.train_time})
            decision = self._stop_decision(self.last_eval)
            if decision is not None:
                self._log({"step": self.step, "stopped": decision, "train_time_s": self.train_time})
        decision, decay = self.dd.broadcast((decision, decay)) if self.dd.enabled else (decision, decay)
        if decay:
            self.scheduler.trigger(self.step)
            self._decay_mix()
        self.stopped = decision

    def _stop_decision(self, metrics: dict) -> dict | None:
        """``{"step", "reason", "target_reached", "message"}`` when training ends now, else None: the target
        reached, the cap reached, or (``train.schedule: triggered``) the learning rate's decay ended."""
        tc, reason = self.tc, stop_reason(self.stop_clauses, metrics)
        if reason is not None:
            message = f"stopped at step {self.step} of at most {tc.steps}: {reason} (train.stop_when)"
            return {"step": self.step, "reason": reason, "target_reached": True, "message": message}
        start = self.scheduler.decay_start
        if self.step >= tc.steps:
            end, why = f"trained the full {tc.steps} steps (train.steps)", "train.steps"
        elif start is not None and self.step >= start + tc.decay_steps:
            end, why = f"stopped at step {self.step}: the learning rate's decay ended (train.decay_steps)", "decayed"
        else:
            return None
        if not self.stop_clauses:
            return {"step": self.step, "reason": why, "target_reached": None, "message": end}
        missed = shortfall(self.stop_clauses, metrics)
        message = f"{end} without the target {tc.stop_when!r}: the last validation has {missed}"
        return {"step": self.step, "reason": f"{why}; missed: {missed}", "target_reached": False, "message": message}

    def _train_step(self, net: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        batches = [self.stream.next(size=size) for _ in range(self.tc.grad_accum) for size in self.sizes]
        loss, correct = accumulate_gradients(net, batches, self.autocast, self.tc.focal_gamma)
        self.model.resize(self.layout.height, self.layout.width)  # evaluation and checkpoints at data.height x width
        if self.siit is not None:
            self.siit.backward(self.model, batches[0], self.stream.next(), self.tc)
        if self.tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        newly_bad = (self.first_bad_step < 0) & ~torch.isfinite(loss)  # tracked on device: no sync
        self.first_bad_step.masked_fill_(newly_bad, self.step)
        self.bad_loss.masked_fill_(newly_bad, loss.detach().float())
        return loss, correct

    # --- logging, evaluation, checkpoints ---------------------------------------------------
    def _log_window(self, window: Window) -> dict:
        self.check_finite(weights=False)
        elapsed = time.perf_counter() - window.start
        record = {
            "step": self.step, "loss": window.loss.item() / window.steps,
            "acc": window.correct.item() / (window.steps * self.cells_per_step / self.dd.world_size),
            "lr": self.scheduler.last_lr(), "cells_per_s": window.steps * self.cells_per_step / elapsed,
            "train_time_s": self.train_time,
        }
        self._log(record)
        window.reset()
        return record

    def _log(self, record: dict) -> None:
        if self.dd.is_main:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def _validation_metrics(self) -> dict:
        self.model.eval()
        with maybe_ema(self.ema), self.autocast:
            metrics = validation_metrics(self.model, self.data_cfg, self.tc.eval_boards, seed=self.seed)
            if needs_named(self.stop_clauses, metrics) or needs_named(self.decay_clauses, metrics):
                metrics.update(named_check(self.model, self.data_cfg, self.tc.named_boards, seed=self.seed))
            if self.siit is not None:
                metrics.update(self.siit.validation(self.model, self.data_cfg, self.seed))
        self.model.train()
        return metrics

    def _finish(self) -> dict:
        """Rank-weight dumps, the final evaluation (rank 0) and the result dict."""
        tc, path = self.tc, self.ckpt_dir / self.run_id / LATEST
        if tc.dump_rank_weights:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            torch.save(self.model.state_dict(), self.log_dir / f"weights_rank{self.dd.rank}.pt")
        result = {"run_id": self.run_id, "checkpoint": str(path), "step": self.step,
                  "train_time_s": self.train_time, "model": self.model, "rank": self.dd.rank,
                  "world_size": self.dd.world_size, "stopped": self.stopped}
        if self.dd.is_main and tc.final_eval and self.stopped is not None:
            result["eval"] = self._final_eval(path)
        if self.dd.is_main and self.stopped is not None:
            print(self.stopped["message"])  # the last line: when and why training ended
        self.dd.barrier()
        return result

    def _final_eval(self, path: Path) -> dict:
        self.model.eval()
        with maybe_ema(self.ema), self.autocast:
            report = evaluate(self.model, self.data_cfg, n_boards=max(self.tc.eval_boards, 1024), seed=self.seed)
            report.update({"run_id": self.run_id, "checkpoint": str(path), "step": self.step,
                           "train_time_s": self.train_time, "seed": self.seed, "stopped": self.stopped,
                           "validation": self.last_eval})
            self.log_dir.mkdir(parents=True, exist_ok=True)
            (self.log_dir / "eval.json").write_text(json.dumps(report, indent=2))
            print(format_report(report))
            if self.tc.rollout_gif:
                files = save_rollout_animation(self.model, "B3/S23", "glider", self.log_dir / "rollout_glider")
                print("rollout animation: " + ", ".join(str(f) for f in files))
        print(f"checkpoint: {path}\neval: {self.log_dir / 'eval.json'}")
        return report


