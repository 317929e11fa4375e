"""Configuration: the Hydra config tree under ``cfg/`` and the typed views of its sections.

A run's config is one ``DictConfig`` with sections ``data``, ``model`` and ``train`` (see
``cfg/base.yaml``). Entry points get it from ``@hydra.main``; library code and explorations
compose it with :func:`compose`. :func:`sections` turns it into dataclasses, so a typo in a key
is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from interfere.data.layout import SequenceLayout
from interfere.data.stream import DataConfig
from interfere.errors import UserError
from interfere.model.config import ModelConfig
from interfere.stopping import parse_stop_when
from interfere.validate import at_least, one_of, within


@dataclass
class TrainConfig:
    steps: int = 1000  # the cap: at most this many steps (and the length of the schedule)
    stop_at: int | None = None
    stop_when: str | None = None  # e.g. "validation_acc >= 0.9999": stop early once validation reaches it
    lr: float = 3e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine to train.steps | triggered: constant, then a linear decay from decay_when
    decay_when: str | None = None  # schedule=triggered: start the decay once validation reaches this
    decay_steps: int = 300  # schedule=triggered: the decay's length
    decay_named_frac: float | None = None  # the named rules' share from the decay on (None: data.named_frac)
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    focal_gamma: float = 0.0  # focal loss: a target's cross-entropy times (1 - p(right answer)) ** this; 0 = plain
    grad_accum: int = 1
    ema_decay: float = 0.0
    autocast: str = "auto"
    fast_path: bool = True
    threads: int = 2
    log_every: int = 25
    eval_every: int = 250
    eval_boards: int = 512
    named_boards: int = 128  # boards per named rule when stop_when reads named_acc (once the rest holds)
    save_every: int = 500
    run_id: str | None = None
    resume: Any = False
    ckpt_dir: str = "checkpoints"
    log_dir: str = "runs"
    rollout_gif: bool = True
    final_eval: bool = True
    dump_rank_weights: bool = False
    deterministic: bool = True
    snapshots: int = 0
    siit: str | None = None  # a hand-made variant whose algorithm strict interchange-intervention training imposes
    siit_iit: float = 1.0  # the interchange loss' weight (InterpBench's default)
    siit_strict: float = 0.4  # the strict loss' weight (InterpBench's default)
    siit_strict_sampling: str = "uniform"  # the strict loss's component: uniform, or need (by its last shortfall)
    siit_iit_sampling: str = "uniform"  # the interchange loss's node: uniform, or need (by its last shortfall)
    init_from: str | None = None  # a checkpoint (path or ref:NAME) whose weights start the run: fine-tuning

    def __post_init__(self) -> None:
        at_least("train.steps", self.steps, 0)
        if self.stop_at is not None:
            at_least("train.stop_at", self.stop_at, 1)
        if not self.lr > 0:
            raise UserError(f"train.lr must be > 0, got {self.lr!r}")
        within("train.min_lr_frac", self.min_lr_frac, 0.0, 1.0)
        for name in ("warmup_steps", "weight_decay", "grad_clip", "focal_gamma", "snapshots"):
            at_least(f"train.{name}", getattr(self, name), 0)
        for name in ("beta1", "beta2", "ema_decay"):
            within(f"train.{name}", getattr(self, name), 0.0, 1.0, high_open=True)
        for name in ("grad_accum", "threads", "log_every", "eval_every", "eval_boards", "named_boards", "save_every"):
            at_least(f"train.{name}", getattr(self, name), 1)
        one_of("train.autocast", self.autocast, ("auto", "none", "bf16"))
        one_of("train.schedule", self.schedule, ("cosine", "triggered"))
        one_of("train.siit_strict_sampling", self.siit_strict_sampling, ("uniform", "need"))
        one_of("train.siit_iit_sampling", self.siit_iit_sampling, ("uniform", "need"))
        at_least("train.decay_steps", self.decay_steps, 1)
        for name in ("stop_when", "decay_when"):
            if getattr(self, name) is not None:
                parse_stop_when(getattr(self, name), f"train.{name}")
        if self.decay_named_frac is not None:
            within("train.decay_named_frac", self.decay_named_frac, 0.0, 1.0)
        for name in ("siit_iit", "siit_strict"):
            at_least(f"train.{name}", getattr(self, name), 0)
        if self.decay_when is not None and self.schedule != "triggered":
            raise UserError("train.decay_when starts the decay of train.schedule=triggered: set that schedule too")


def config_dir() -> Path:
    """The ``cfg/`` folder: ``$INTERFERE_CFG``, else ``./cfg``, else the one next to the sources."""
    for candidate in (os.environ.get("INTERFERE_CFG"), Path.cwd() / "cfg",
                      Path(__file__).resolve().parents[2] / "cfg"):
        if candidate and (Path(candidate) / "base.yaml").is_file():
            return Path(candidate).resolve()
    raise UserError("Cannot find the cfg/ folder: run from the repository root or set INTERFERE_CFG")


def available_configs() -> list[str]:
    root = config_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.glob("exp/*.yaml"))


def compose(config_name: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose ``cfg/<config_name>.yaml`` with Hydra overrides, outside of ``@hydra.main``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    if config_name not in available_configs():
        raise UserError(f"Unknown config {config_name!r}; choose from {', '.join(available_configs())}")
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=overrides or [])
    OmegaConf.set_struct(cfg, False)
    cfg.pop("hydra", None)
    return cfg


def _build(cls: type, section: Any, name: str) -> Any:
    values = OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"Unknown key(s) in '{name}': {unknown}; valid keys: {sorted(known)}")
    return cls(**values)


def sections(cfg: DictConfig | dict) -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The typed ``data``, ``model`` and ``train`` sections of a run config."""
    data, model = _build(DataConfig, cfg["data"], "data"), _build(ModelConfig, cfg["model"], "model")
    if data.sizes and model.positions != "window":
        raise UserError(f"data.sizes={data.sizes} needs a size-free model: set model.positions=window "
                         "(a rope model runs only data.height x data.width)")
    if model.positions == "window":
        for size in [(data.height, data.width), *((s, s) for s in data.sizes)]:
            layout_of(data).with_size(*size).check_window(model.window)
    return data, model, _build(TrainConfig, cfg.get("train", {}), "train")


def layout_of(data: DataConfig) -> SequenceLayout:
    return SequenceLayout(data.height, data.width, data.multi_steps)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device=cuda was asked for but no CUDA GPU is visible; use device=cpu")
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise UserError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def to_plain(cfg: DictConfig | dict) -> dict:
    """A plain, resolved dict (for checkpoints and JSON)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)
