"""The verdict thresholds and effect-size floors (``cfg/report/thresholds.yaml``), read in one place."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from interfere.config import config_dir
from interfere.errors import UserError


def load_thresholds(path: Path | None = None) -> dict:
    """The thresholds file as a plain dict (default ``cfg/report/thresholds.yaml``)."""
    path = path or config_dir() / "report" / "thresholds.yaml"
    if not Path(path).is_file():
        raise UserError(f"Thresholds file {str(path)!r} does not exist")
    return OmegaConf.to_container(OmegaConf.load(path))  # type: ignore[return-value]


def effect_floors() -> dict[str, float]:
    """The floors below which an exploration reports "no effect" instead of a ratio of effects."""
    return load_thresholds()["effect_floors"]
