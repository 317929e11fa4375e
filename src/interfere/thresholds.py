"""The verdict thresholds and effect-size floors (``cfg/report/thresholds.yaml`` or ``--thresholds``), read in
one place and checked against :data:`SCHEMA`: commands load them once and pass them to every analysis they run
(no analysis reads the file)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from interfere.config import config_dir
from interfere.errors import UserError

SCHEMA: dict[str, tuple[str, ...] | None] = {  # section -> its keys (None: a single number)
    "min_heldout_acc": None,
    "effect_floors": ("patch_effect_logits", "rule_use_gain"),
    "h1": ("aggregate_neighbour_share", "aggregate_evenness", "aggregate_board_share", "self_lookup_own_share",
           "partial_stencil_ratio", "refute_ratio"),
    "h2": ("support_count_r2", "support_next_auc", "support_margin", "max_shuffled_r2", "random_init_controls",
           "refute_margin"),
    "h3": ("support_gain", "support_rule_use", "support_rule_attention_ratio", "support_flip", "refute_rule_use"),
    "h4": ("late_lens_acc", "support_probe_gain", "locality_margin", "refute_probe_gain", "refute_final_lens"),
    "circuit": ("sufficient_acc", "decodable_auc", "decodable_r2", "role_acc", "min_coverage", "account_acc",
                "lookup_carry", "lookup_leak", "refute_acc", "route_carry", "lookup_selectivity", "answer_tv"),
    "abstraction": ("claim_iia", "full_margin", "control_margin", "group_iia", "screen_iia", "restart_iia"),
}


def load_thresholds(path: Path | None = None) -> dict:
    """The thresholds file as a plain dict (default ``cfg/report/thresholds.yaml``), every key of :data:`SCHEMA`
    present and a number; a one-line :class:`UserError` naming the first problem otherwise."""
    path = Path(path or config_dir() / "report" / "thresholds.yaml")
    if not path.is_file():
        raise UserError(f"Thresholds file {str(path)!r} does not exist")
    try:
        values = OmegaConf.to_container(OmegaConf.load(path))
    except (OmegaConfBaseException, ValueError) as err:
        raise UserError(f"Thresholds file {str(path)!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    check_thresholds(values, str(path))
    return values  # type: ignore[return-value]


def check_thresholds(values: object, source: str) -> None:
    """Refuse, in one line, thresholds that lack a key of :data:`SCHEMA` or hold something other than a number."""
    if not isinstance(values, dict):
        raise UserError(f"Thresholds file {source!r} must be a mapping of sections to numbers")
    for section, keys in SCHEMA.items():
        for key in keys or (None,):
            value = values.get(section) if key is None else (values.get(section) or {}).get(key)
            name = section if key is None else f"{section}.{key}"
            if value is None:
                raise UserError(f"Thresholds file {source!r} lacks {name}: add it (cfg/report/thresholds.yaml "
                                "has every key, with its meaning)")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UserError(f"Thresholds file {source!r}: {name} must be a number, got {value!r}")


def effect_floors(thresholds: dict) -> dict[str, float]:
    """The floors below which an exploration reports "no effect" instead of a ratio of effects."""
    return thresholds["effect_floors"]
