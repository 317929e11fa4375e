"""What a run writes: ``latest.pt`` (everything a resume needs) and weight-only snapshots, never with non-finite
weights; a non-finite loss or weight stops the run with the step of its last good checkpoint (mixed into
:class:`interfere.train.loop.Run`, whose state it reads)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from interfere.cpu import cpu_description
from interfere.data.layout import VOCAB
from interfere.model.checkpoint import FORMAT_VERSION, LATEST, atomic_save, point_latest_link, snapshot_path
from interfere.train.optim import all_finite
from interfere.train.runs import TrainingError


class Saving:
    """The checkpoint-writing part of a run (``self``: a :class:`~interfere.train.loop.Run`)."""

    def check_finite(self, weights: bool) -> None:
        """Stop with a truthful message if the loss (or, with ``weights``, a weight) is not finite."""
        first_bad = self.first_bad_step.clone()
        if self.dd.enabled:  # every rank must reach the same decision
            first_bad[first_bad < 0] = torch.iinfo(torch.long).max
            dist.all_reduce(first_bad, op=dist.ReduceOp.MIN)
            first_bad[first_bad == torch.iinfo(torch.long).max] = -1
        bad_step = int(first_bad)
        if bad_step >= 0:
            what = f"loss became {self.bad_loss.item()} at step {bad_step}"
        elif weights and not all_finite(list(self.model.parameters())):
            what = f"weights became non-finite at step {self.step}"
        else:
            return
        last = (f"the last good checkpoint is step {self.saved[0]}: {self.saved[1]}" if self.saved
                else "no checkpoint of this run was written")
        raise TrainingError(f"{what}; lower train.lr or set train.grad_clip ({last})")

    def save(self) -> Path:
        """Write ``latest.pt`` (rank 0) after checking that nothing in it is non-finite."""
        self.check_finite(weights=True)
        stream_states = [self.stream.generator.get_state()]
        if self.dd.enabled:
            gathered: list = [None] * self.dd.world_size
            dist.all_gather_object(gathered, stream_states[0])
            stream_states = gathered
        path = self.ckpt_dir / self.run_id / LATEST
        if self.dd.is_main:
            atomic_save({
                "format_version": FORMAT_VERSION, "config": self.cfg, "vocab": list(VOCAB),
                "run_id": self.run_id, "step": self.step, "train_time_s": self.train_time,
                "world_size": self.dd.world_size, "model": self.model.state_dict(),
                "ema": self.ema.state_dict(self.model) if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": {"stream": stream_states, "torch": torch.get_rng_state()},
                "metrics": self.last_eval, "stopped": self.stopped, "cpu": cpu_description(),
                **({"ground_truth": self.siit.ground_truth(), "siit": self.siit.state()}
                   if getattr(self, "siit", None) else {}),
            }, path)
            point_latest_link(self.ckpt_dir, path)
        self.dd.barrier()
        self.saved = (self.step, path)
        return path

    def snapshot(self) -> None:
        """A small weights-only file for the dynamics analysis, written by rank 0; resume never reads it."""
        self.check_finite(weights=True)  # on every rank: it may synchronise them
        if not self.dd.is_main:
            return
        path = snapshot_path(self.ckpt_dir, self.run_id, self.step)
        weights = self.ema.state_dict(self.model) if self.ema is not None else self.model.state_dict()
        atomic_save({"format_version": FORMAT_VERSION, "kind": "snapshot", "config": self.cfg, "vocab": list(VOCAB),
                     "run_id": self.run_id, "step": self.step, "train_time_s": self.train_time,
                     "model": weights, "ema": None}, path)
        self._log({"step": self.step, "snapshot": str(path), "train_time_s": self.train_time})
