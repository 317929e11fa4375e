"""The training loop: single process or DDP under `torchrun`, read top to bottom (DESIGN §5).

AdamW on fp32 master weights, linear warm-up then cosine decay (in optimizer steps), gradient
clipping, optional EMA, optional bf16 autocast (always on CUDA), cross-entropy over the two
outputs at target positions only. Rank 0 alone evaluates, logs and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from omegaconf import DictConfig
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from interfere.config import TrainConfig, layout_of, resolve_device, sections, to_plain
from interfere.cpu import configure_cpu
from interfere.data.layout import VOCAB
from interfere.data.stream import BatchStream
from interfere.evaluate import evaluate, format_report, heldout_metrics, save_rollout_animation
from interfere.model.checkpoint import (
    FORMAT_VERSION,
    LATEST,
    CheckpointError,
    atomic_save,
    config_mismatches,
    load_weights,
    point_latest_link,
    read_checkpoint,
)
from interfere.model.life_model import LifeTransformer, n_params
from interfere.train.distributed import Dist, init_distributed, shutdown


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a run id clash, a resume that does not fit)."""


# --- small pieces ----------------------------------------------------------------------------
def lr_factor(step: int, tc: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_lr_frac`` at ``tc.steps``."""
    if step < tc.warmup_steps:
        return (step + 1) / tc.warmup_steps
    progress = min(1.0, (step - tc.warmup_steps) / max(1, tc.steps - tc.warmup_steps))
    return tc.min_lr_frac + (1 - tc.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, tc: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (not on biases, norms or embeddings)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_embedding = name in ("embed.W_E", "W_seg")
        (decay if p.dim() >= 2 and not is_embedding else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), fused=False)


class EMA:
    """Exponential moving average of the trainable weights, kept as a shadow state dict."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - self.decay)

    def state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with the averaged weights in place of the live ones."""
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state.update({n: s.clone() for n, s in zip(self.names, self.shadow)})
        return state

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for n, s in zip(self.names, self.shadow):
            s.copy_(state[n])

    @contextlib.contextmanager
    def swapped_in(self):
        """Temporarily put the averaged weights into the model (for evaluation)."""
        with torch.no_grad():
            live = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, live)


class TargetLogits(torch.nn.Module):
    """What training differentiates: target logits, by the fused fast path or the hooked forward."""

    def __init__(self, model: LifeTransformer, fast: bool) -> None:
        super().__init__()
        self.model, self.fast = model, fast

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.fast:
            return self.model.fast_target_logits(tokens)
        return self.model.target_logits(self.model(tokens))


def target_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over the two outputs, and the number of correct cells (no sync)."""
    loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
    correct = (logits.argmax(-1) == labels).sum()
    return loss, correct


def accumulate_gradients(net: torch.nn.Module, batches: list, target_index: torch.Tensor,
                         autocast: contextlib.AbstractContextManager) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward over micro-batches (gradients averaged over them, and over ranks by DDP, which
    synchronises only on the last one); returns the mean loss and the correct-cell count."""
    loss_sum = torch.zeros(())
    correct_sum = torch.zeros((), dtype=torch.long)
    for micro, batch in enumerate(batches):
        last = micro == len(batches) - 1
        sync = net.no_sync() if isinstance(net, DistributedDataParallel) and not last else contextlib.nullcontext()
        with sync:
            with autocast:
                logits = net(batch.tokens)
            loss, correct = target_loss(logits, batch.labels[:, target_index])
            (loss / len(batches)).backward()
        loss_sum = loss_sum.to(loss.device) + loss.detach() / len(batches)
        correct_sum = correct_sum.to(correct.device) + correct
    return loss_sum, correct_sum


def new_run_id(exp_name: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}_{exp_name}"


def resolve_run(tc: TrainConfig, exp_name: str) -> tuple[str, Path | None]:
    """(run id, checkpoint to resume from or None), refusing to overwrite an existing run."""
    ckpt_dir = Path(tc.ckpt_dir)
    if tc.resume not in (False, None, "false", "False"):
        run_id = tc.resume if isinstance(tc.resume, str) and tc.resume not in ("true", "True") else tc.run_id
        if run_id is None:
            runs = sorted(ckpt_dir.glob(f"*_{exp_name}/{LATEST}"), key=lambda p: p.stat().st_mtime)
            if not runs:
                raise TrainingError(f"train.resume: no run of {exp_name!r} under {ckpt_dir}/ to resume")
            return runs[-1].parent.name, runs[-1]
        path = ckpt_dir / run_id / LATEST
        if not path.is_file():
            raise TrainingError(f"train.resume: no checkpoint at {path}")
        return run_id, path
    run_id = tc.run_id or new_run_id(exp_name)
    if (ckpt_dir / run_id / LATEST).exists():
        raise TrainingError(
            f"Run {run_id!r} already has a checkpoint; pass train.resume=true to continue it "
            "or choose another train.run_id"
        )
    return run_id, None


# --- the loop --------------------------------------------------------------------------------
def train(cfg: DictConfig) -> dict:
    """Train the model described by ``cfg``; returns the final metrics and the checkpoint path."""
    data_cfg, model_cfg, tc = sections(cfg)
    device = resolve_device(cfg.get("device", "auto"))
    dd = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", dd.local_rank)
    else:
        configure_cpu(tc.threads)
    try:
        return _train(cfg, data_cfg, model_cfg, tc, device, dd)
    finally:
        shutdown(dd)


def _train(cfg, data_cfg, model_cfg, tc, device, dd: Dist) -> dict:
    exp_name = cfg.get("exp_name", "run")
    seed = int(cfg.get("seed", 0))
    plain_cfg = to_plain(cfg)
    run_id, resume_from = resolve_run(tc, exp_name)
    if dd.enabled:  # every rank uses rank 0's run id (timestamps may differ by a second)
        shared = [run_id, resume_from]
        dist.broadcast_object_list(shared, src=0)
        run_id, resume_from = shared
    ckpt_dir, log_dir = Path(tc.ckpt_dir), Path(tc.log_dir) / run_id

    torch.manual_seed(seed)
    layout = layout_of(data_cfg)
    model = LifeTransformer(model_cfg, layout, device)
    stream = BatchStream(data_cfg, seed=seed * 1000 + dd.rank, device=device)
    optimizer = make_optimizer(model, tc)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, tc))
    ema = EMA(model, tc.ema_decay) if tc.ema_decay > 0 else None
    step, train_time = 0, 0.0

    if resume_from is not None:
        ckpt = read_checkpoint(resume_from, map_location=device)
        problems = config_mismatches(ckpt["config"], plain_cfg)
        if problems:
            raise CheckpointError(f"Cannot resume {resume_from}: " + "; ".join(problems))
        load_weights(model, ckpt["model"], str(resume_from))
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.load(ckpt["ema"])
        states = ckpt["rng"]["stream"]
        if len(states) == dd.world_size:
            stream.generator.set_state(states[dd.rank].cpu())
        else:  # another world size: a fresh, still deterministic, data order
            stream.generator.manual_seed(seed * 1000 + dd.rank + 7919 * ckpt["step"])
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        step, train_time = int(ckpt["step"]), float(ckpt.get("train_time_s", 0.0))

    forward = TargetLogits(model, fast=tc.fast_path)
    net = DistributedDataParallel(forward) if dd.enabled else forward
    use_bf16 = device.type == "cuda" or tc.autocast == "bf16"
    if tc.autocast not in ("none", "bf16"):
        raise ValueError(f"train.autocast must be 'none' or 'bf16', got {tc.autocast!r}")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
    target_index = model.target_index
    cells_per_step = tc.grad_accum * data_cfg.batch_size * len(target_index) * dd.world_size
    last_eval: dict = {}

    def save() -> Path:
        stream_states = [stream.generator.get_state()]
        if dd.enabled:
            gathered: list = [None] * dd.world_size
            dist.all_gather_object(gathered, stream_states[0])
            stream_states = gathered
        path = ckpt_dir / run_id / LATEST
        if dd.is_main:
            atomic_save({
                "format_version": FORMAT_VERSION, "config": plain_cfg, "vocab": list(VOCAB),
                "run_id": run_id, "step": step, "train_time_s": train_time,
                "world_size": dd.world_size, "model": model.state_dict(),
                "ema": ema.state_dict(model) if ema is not None else None,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": {"stream": stream_states, "torch": torch.get_rng_state()},
                "metrics": last_eval,
            }, path)
            point_latest_link(ckpt_dir, path)
        dd.barrier()
        return path

    def log(record: dict) -> None:
        if dd.is_main:
            log_dir.mkdir(parents=True, exist_ok=True)
            with open(log_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def held_out_eval() -> dict:
        model.eval()
        with ema.swapped_in() if ema is not None else contextlib.nullcontext(), autocast:
            metrics = heldout_metrics(model, data_cfg, tc.eval_boards, seed=seed)
        model.train()
        return metrics

    stop_at = tc.stop_at or tc.steps
    if dd.is_main:
        print(f"run {run_id}: {n_params(model):,} parameters, {layout.seq_len} tokens per sequence, "
              f"{cells_per_step:,} target cells per step, device {device}"
              + (f", {dd.world_size} processes" if dd.enabled else "")
              + (f", resuming at step {step}" if step else ""))
    bar = tqdm(total=tc.steps, initial=step, disable=not dd.is_main, dynamic_ncols=True, desc=exp_name)
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct_sum = torch.zeros((), device=device, dtype=torch.long)
    window_start, window_steps = time.perf_counter(), 0
    while step < min(tc.steps, stop_at):
        t0 = time.perf_counter()
        loss, correct = accumulate_gradients(net, [stream.next() for _ in range(tc.grad_accum)], target_index,
                                             autocast)
        loss_sum += loss
        correct_sum += correct
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update()
        step += 1
        window_steps += 1
        train_time += time.perf_counter() - t0
        bar.update(1)

        if step % tc.log_every == 0 or step == tc.steps:
            loss_val = loss_sum.item() / window_steps
            if not math.isfinite(loss_val):
                raise TrainingError(
                    f"loss became {loss_val} at step {step}; lower train.lr or set train.grad_clip "
                    "(no checkpoint was written for this step)"
                )
            elapsed = time.perf_counter() - window_start
            record = {
                "step": step, "loss": loss_val,
                "acc": correct_sum.item() / (window_steps * cells_per_step / dd.world_size),
                "lr": scheduler.get_last_lr()[0], "cells_per_s": window_steps * cells_per_step / elapsed,
                "train_time_s": train_time,
            }
            log(record)
            bar.set_postfix(loss=f"{loss_val:.4f}", acc=f"{record['acc']:.4f}",
                            heldout=f"{last_eval.get('cell_acc', float('nan')):.4f}",
                            cells_s=f"{record['cells_per_s']:.3g}", refresh=False)
            loss_sum.zero_()
            correct_sum.zero_()
            window_start, window_steps = time.perf_counter(), 0
        if dd.is_main and (step % tc.eval_every == 0 or step == tc.steps):
            eval_start = time.perf_counter()
            last_eval = held_out_eval()
            window_start += time.perf_counter() - eval_start  # cells/s counts training only
            log({"step": step, "eval": last_eval})
            bar.set_postfix(heldout=f"{last_eval['cell_acc']:.5f}", refresh=True)
        if step % tc.save_every == 0 or step == tc.steps or step == stop_at:
            save()
    bar.close()
    if tc.dump_rank_weights:
        log_dir.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), log_dir / f"weights_rank{dd.rank}.pt")
    ckpt_path = ckpt_dir / run_id / LATEST
    result = {"run_id": run_id, "checkpoint": str(ckpt_path), "step": step, "train_time_s": train_time,
              "model": model, "rank": dd.rank, "world_size": dd.world_size}
    if dd.is_main and tc.final_eval and step == tc.steps:
        model.eval()
        with ema.swapped_in() if ema is not None else contextlib.nullcontext(), autocast:
            report = evaluate(model, data_cfg, n_boards=max(tc.eval_boards, 1024), seed=seed)
            report.update({"run_id": run_id, "checkpoint": str(ckpt_path), "step": step,
                           "train_time_s": train_time, "seed": seed})
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / "eval.json").write_text(json.dumps(report, indent=2))
            print(format_report(report))
            if tc.rollout_gif:
                files = save_rollout_animation(model, "B3/S23", "glider", log_dir / "rollout_glider")
                print("rollout animation: " + ", ".join(str(f) for f in files))
        print(f"checkpoint: {ckpt_path}\neval: {log_dir / 'eval.json'}")
        result["eval"] = report
    dd.barrier()
    return result
