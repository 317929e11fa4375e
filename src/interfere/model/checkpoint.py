"""Checkpoints: atomic save, discovery, validation, and rebuilding the model from one (docs/design.md, "The model").

A checkpoint is a plain dict (tensors, dicts, strings, numbers), so ``torch.load(weights_only=True)``
reads it. It carries everything needed to rebuild the model without the config file: the
resolved config, the vocabulary, the weights (and EMA weights), the step and a format version.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, NamedTuple

import torch

from interfere.data.layout import VOCAB, SequenceLayout
from interfere.data.stream import DataConfig
from interfere.errors import UserError
from interfere.model import reference
from interfere.model.life_model import LifeTransformer, ModelConfig

FORMAT_VERSION = 1
LATEST = "latest.pt"
CONTROL_PREFIX = "control_"  # control runs (random init, rule-blind): never picked by the discovery rule
HANDMADE_PREFIX = "handmade_"  # hand-made models (python -m interfere handmade): named to be analysed, never discovered
NOT_DISCOVERED = (CONTROL_PREFIX, HANDMADE_PREFIX)
TEMP_SUFFIX = ".tmp"  # a file being written: ``.<name>.<random>.tmp`` next to its destination
REQUIRED_KEYS = ("format_version", "config", "vocab", "model", "step")


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable, or does not fit what it is being loaded into."""


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file under this process's umask (``mkstemp`` would give 0600)."""
    try:
        status = Path("/proc/self/status").read_text()
        umask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError):  # not Linux: read it by setting it (and back)
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: never a half-written file.

    The file gets the umask's default mode, so teammates on a shared machine can read it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def point_latest_link(ckpt_dir: Path, target: Path) -> None:
    """Atomically make ``ckpt_dir/latest.pt`` a relative symlink to ``target``."""
    link = Path(ckpt_dir) / LATEST
    tmp = link.with_name(f".{LATEST}.{os.getpid()}{TEMP_SUFFIX}")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


SNAPSHOT_DIR = "snapshots"


def snapshot_path(ckpt_dir: Path, run_id: str, step: int) -> Path:
    return Path(ckpt_dir) / run_id / SNAPSHOT_DIR / f"step_{step}.pt"


def list_snapshots(run_dir: Path) -> list[Path]:
    """A run's snapshot files, by step."""
    return sorted(Path(run_dir, SNAPSHOT_DIR).glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))


def find_checkpoint(run_id: str | None = None, ckpt: str | Path | None = None,
                    ckpt_dir: str | Path = "checkpoints") -> Path:
    """The discovery rule: ``ckpt`` (``ref:NAME``: a reference model, :mod:`interfere.model.reference`); else
    ``<ckpt_dir>/<run_id>/latest.pt``; else the newest ``<ckpt_dir>/*/latest.pt`` that is not a control run
    (``control_*``) nor a hand-made model (``handmade_*``); else ``<ckpt_dir>/latest.pt``; else a clear error."""
    ckpt_dir = Path(ckpt_dir)
    if reference.is_reference(ckpt):
        return reference.reference_path(str(ckpt))
    if ckpt is not None:
        path = Path(ckpt)
        if not path.is_file():
            raise CheckpointError(f"Checkpoint {str(path)!r} does not exist")
        return path
    if run_id is not None:
        path = ckpt_dir / run_id / LATEST
        if not path.is_file():
            runs = sorted(p.parent.name for p in ckpt_dir.glob(f"*/{LATEST}"))
            raise CheckpointError(
                f"No checkpoint for run id {run_id!r} at {path}; runs found: {runs or 'none'}"
            )
        return path
    runs = sorted((p for p in ckpt_dir.glob(f"*/{LATEST}") if not p.parent.name.startswith(NOT_DISCOVERED)),
                  key=lambda p: p.stat().st_mtime)
    if runs:
        return runs[-1]
    if (ckpt_dir / LATEST).is_file() and not Path(os.path.realpath(ckpt_dir / LATEST)).parent.name.startswith(
            NOT_DISCOVERED):
        return ckpt_dir / LATEST
    raise CheckpointError(
        f"No checkpoint found under {str(ckpt_dir)!r}. Train one first: "
        "`make demo` or `python train.py --config-name exp/cpu_demo`"
    )


def weights_hash(path: str | Path) -> str:
    """The first 12 hex digits of a SHA-256 over the weights a checkpoint's model runs with (its EMA
    weights where it has them, as :func:`model_from_checkpoint` loads; names, dtypes, shapes and values,
    in name order): what docs quote next to a model's numbers. Unlike the file's hash it does not
    change with the run id, the clock or the optimizer state, so two runs that trained the same model
    (same seed, config, CPU type and threads) show the same hash."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    weights = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


def newest_size_free(ckpt_dir: str | Path = "checkpoints") -> Path | None:
    """The newest run checkpoint (controls aside) of a size-free model (``model.positions: window``), if any."""
    runs = sorted((p for p in Path(ckpt_dir).glob(f"*/{LATEST}") if not p.parent.name.startswith(NOT_DISCOVERED)),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for path in runs:
        try:  # memory-mapped: only the small config is read
            config = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("config", {})
        except Exception as err:  # noqa: BLE001 - torch raises many types for foreign files: skip it, saying why
            print(f"note: skipping {path}: not a readable checkpoint ({type(err).__name__})", file=sys.stderr)
            continue
        if config.get("model", {}).get("positions") == "window":
            return path
    return None


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate a checkpoint file; a truncated or foreign file is a CheckpointError."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {str(path)!r} is empty (0 bytes); delete it and retrain or resume "
                              "from another")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        first_line = (str(err).splitlines() or [""])[0][:120]
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is truncated or not a checkpoint ({type(err).__name__}"
            f"{': ' + first_line if first_line else ''}); delete it and retrain or resume from another"
        ) from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{str(path)!r} is not an interfere checkpoint (no format_version)")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{str(path)!r} is not a complete interfere checkpoint: it lacks {missing}")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format {ckpt['format_version']}, this code reads {FORMAT_VERSION}"
        )
    if list(ckpt["vocab"]) != list(VOCAB):
        raise CheckpointError(f"{str(path)!r} was trained with a different vocabulary")
    ckpt["path"] = str(path)
    return ckpt


def load_checkpoint(run_id: str | None = None, ckpt: str | Path | None = None,
                    ckpt_dir: str | Path = "checkpoints",
                    map_location: str | torch.device = "cpu") -> dict:
    """Find (discovery rule of :func:`find_checkpoint`) and read a checkpoint. Never random weights."""
    return read_checkpoint(find_checkpoint(run_id, ckpt, ckpt_dir), map_location)


def _with_defaults(section: str, values: dict) -> dict:
    """A saved ``data``/``model`` section with the defaults of keys added after it was written."""
    schema = {"data": DataConfig, "model": ModelConfig}.get(section)
    if schema is None:
        return values
    defaults = {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(schema)}
    return {**defaults, **values}


class Difference(NamedTuple):
    """One key of a config section whose value differs between a checkpoint and a config."""

    section: str
    key: str
    saved: Any
    wanted: Any

    def __str__(self) -> str:
        return f"{self.section}.{self.key}: checkpoint {self.saved!r} vs config {self.wanted!r}"


def config_differences(saved: dict, wanted: dict, sections: tuple[str, ...] = ("data", "model")) -> list[Difference]:
    """Keys of the model-defining config sections whose values differ (a key the checkpoint predates counts as
    its default)."""
    out = []
    for section in sections:
        a, b = _with_defaults(section, saved.get(section, {})), _with_defaults(section, wanted.get(section, {}))
        out += [Difference(section, key, a.get(key), b.get(key)) for key in sorted(set(a) | set(b))
                if a.get(key) != b.get(key)]
    return out


def config_mismatches(saved: dict, wanted: dict, sections: tuple[str, ...] = ("data", "model")) -> list[str]:
    """:func:`config_differences` as readable strings."""
    return [str(d) for d in config_differences(saved, wanted, sections)]


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu", ema: bool = True) -> LifeTransformer:
    """Rebuild the model from a checkpoint's own config and load its (EMA, if present) weights."""
    cfg = ckpt["config"]
    data = DataConfig(**cfg["data"])
    model = LifeTransformer(ModelConfig(**cfg["model"]),
                            SequenceLayout(data.height, data.width, data.multi_steps), device)
    weights = ckpt["ema"] if ema and ckpt.get("ema") is not None else ckpt["model"]
    load_weights(model, weights, ckpt.get("path", "checkpoint"))
    model.eval()
    return model


def load_weights(model: torch.nn.Module, weights: dict, source: str) -> None:
    """``load_state_dict`` whose error names the mismatching tensors in one line."""
    own = model.state_dict()
    problems = [f"missing {k}" for k in own if k not in weights]
    problems += [f"unexpected {k}" for k in weights if k not in own]
    problems += [
        f"{k} has shape {tuple(v.shape)} but the model wants {tuple(own[k].shape)}"
        for k, v in weights.items() if k in own and v.shape != own[k].shape
    ]
    if problems:
        raise CheckpointError(f"{source} does not fit this model: " + "; ".join(problems[:6]))
    model.load_state_dict(weights)
