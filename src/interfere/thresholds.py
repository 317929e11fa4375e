"""The verdict thresholds and effect-size floors (``cfg/report/thresholds.yaml`` or ``--thresholds``), read in
one place: commands load them once and pass them to every analysis they run."""

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


def effect_floors(thresholds: dict) -> dict[str, float]:
    """The floors below which an exploration reports "no effect" instead of a ratio of effects."""
    return thresholds["effect_floors"]
