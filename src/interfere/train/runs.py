"""Run folders: run ids, what to resume, an exclusive claim on a run, and what a resume may change.

A run owns ``<ckpt_dir>/<RUN_ID>/`` (checkpoints) and ``<log_dir>/<RUN_ID>/`` (logs). While it
trains it holds an advisory lock on ``<ckpt_dir>/<RUN_ID>/.lock`` (``flock``: the kernel drops it
when the process dies, however it dies), so a second process with the same run id stops with a
one-line error instead of interleaving its checkpoints and log with the first's. Holding the lock
also proves that any temporary checkpoint file left in the folder belongs to a dead writer.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from interfere.errors import UserError
from interfere.model.checkpoint import LATEST, TEMP_SUFFIX, config_mismatches

LOCK_NAME = ".lock"

# train.* keys a resumed run may change: they decide where output goes and how often, not the
# trajectory of the weights. Every other key must equal the checkpoint's.
RESUMABLE_CHANGES = frozenset({
    "stop_at", "stop_when", "resume", "run_id", "threads", "log_every", "eval_every", "eval_boards", "named_boards",
    "save_every", "ckpt_dir", "log_dir", "rollout_gif", "final_eval", "dump_rank_weights", "snapshots",
})


class TrainingError(UserError):
    """Training cannot go on (non-finite loss, a run id clash, a resume that does not fit)."""


def new_run_id(exp_name: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}_{exp_name}"


def resolve_run(ckpt_dir: Path, run_id: str | None, resume: object, exp_name: str) -> tuple[str, Path | None]:
    """(run id, checkpoint to resume from or None), refusing to overwrite an existing run."""
    if resume not in (False, None, "false", "False"):
        wanted = resume if isinstance(resume, str) and resume not in ("true", "True") else run_id
        if wanted is None:
            runs = sorted(ckpt_dir.glob(f"*_{exp_name}/{LATEST}"), key=lambda p: p.stat().st_mtime)
            if not runs:
                raise TrainingError(f"train.resume: no run of {exp_name!r} under {ckpt_dir}/ to resume")
            return runs[-1].parent.name, runs[-1]
        path = ckpt_dir / wanted / LATEST
        if not path.is_file():
            raise TrainingError(f"train.resume: no checkpoint at {path}")
        return wanted, path
    run_id = run_id or new_run_id(exp_name)
    refuse_existing(ckpt_dir, run_id)
    return run_id, None


def refuse_existing(ckpt_dir: Path, run_id: str) -> None:
    if (ckpt_dir / run_id / LATEST).exists():
        raise TrainingError(
            f"Run {run_id!r} already has a checkpoint; pass train.resume=true to continue it "
            "or choose another train.run_id"
        )


class RunClaim:
    """The exclusive claim of one process on a run folder (module docstring); ``release()`` ends it."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / LOCK_NAME
        self._file = open(self.path, "a+")  # noqa: SIM115 - held open for the whole run
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read(200).strip() or "another process"
            self._file.close()
            raise TrainingError(
                f"Run {run_dir.name!r} is in use by {holder}; wait for it to finish or choose another "
                "train.run_id"
            ) from None
        self._file.truncate(0)
        self._file.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        self._file.flush()
        self.removed_temp_files = remove_stale_temp_files(run_dir)

    def release(self) -> None:
        self._file.close()  # closing the file drops the flock (so would the process's death)


def remove_stale_temp_files(run_dir: Path) -> list[str]:
    """Delete half-written checkpoint files in a run folder we hold the claim on (dead writers')."""
    removed = []
    for tmp in run_dir.glob(f".*{TEMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp.name)
    return removed


def resume_mismatches(saved: dict, wanted: dict) -> list[str]:
    """Every setting of ``wanted`` that a resume of ``saved`` may not change, as readable strings."""
    problems = config_mismatches(saved, wanted)
    old, new = saved.get("train", {}), wanted.get("train", {})
    for key in sorted((set(old) & set(new)) - RESUMABLE_CHANGES):  # keys newer than the checkpoint pass
        if old.get(key) != new.get(key):
            problems.append(f"train.{key}: checkpoint {old.get(key)!r} vs config {new.get(key)!r}")
    if saved.get("seed") != wanted.get("seed"):
        problems.append(f"seed: checkpoint {saved.get('seed')!r} vs config {wanted.get('seed')!r}")
    return problems


def remove_stale_link_temps(ckpt_dir: Path) -> list[str]:
    """Delete ``.latest.pt.<pid>.tmp`` links (see ``point_latest_link``) whose process is gone."""
    removed = []
    for tmp in ckpt_dir.glob(f".{LATEST}.*{TEMP_SUFFIX}"):
        pid = tmp.name[len(f".{LATEST}."): -len(TEMP_SUFFIX)]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
