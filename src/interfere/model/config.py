"""What defines a model: :class:`ModelConfig` (the ``model`` section of a run config), the position
schemes, and the board sizes at which the size-free model changes how it attends.

The bottom of ``interfere.model``: it imports nothing else from the package's model code, so every
other model module can import it (config -> ops -> fast_path, window -> life_model -> inference).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from interfere.errors import UserError
from interfere.model.rope2d import ROPE_KINDS
from interfere.validate import at_least, one_of

NORM_KINDS = ("LN", "none")  # LayerNorm before every sublayer and the unembedding | none (exact arithmetic)
POSITION_KINDS = ("rope", "window")  # 2D RoPE for one board size | a local window with a learned bias, any size
DENSE_MAX_CELLS = 256  # a window model attends densely up to this many cells (16x16), in tiles above
TILE = 4  # above DENSE_MAX_CELLS, cells attend in tiles of TILE x TILE queries over a shared halo of keys


@dataclass
class ModelConfig:
    """The ``model`` section: shape, activation, position scheme and initialisation seed."""

    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    d_head: int | None = None  # default d_model // n_heads
    d_mlp: int | None = None  # default 4 * d_model
    act_fn: str = "gelu"
    norm: str = "LN"  # LN: TransformerLens' LayerNorm; none: no normalisation (hand-made models, model.handmade)
    positions: str = "rope"  # rope: 2D RoPE for one board size; window: a local window, any size
    window: int = 2  # positions=window: attend at most this many rows/columns away (plus the rule)
    rope: str = "toroidal"  # or "standard"
    rope_base: float = 10000.0
    rotary_dim: int | None = None  # head dims rotated by 2D RoPE; default: all of them
    seed: int = 0  # initialisation seed

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads"):
            at_least(f"model.{name}", getattr(self, name), 1)
        one_of("model.rope", self.rope, ROPE_KINDS)
        one_of("model.positions", self.positions, POSITION_KINDS)
        one_of("model.norm", self.norm, NORM_KINDS)
        at_least("model.window", self.window, 1)
        if self.positions == "window" and self.rotary_dim:
            raise UserError("model.rotary_dim applies to model.positions=rope; a window model has no RoPE: "
                             "set model.rotary_dim=null")
        if self.d_head is None and self.d_model % self.n_heads:
            raise UserError(f"model.d_model {self.d_model} is not divisible by model.n_heads {self.n_heads}: "
                             "choose n_heads that divides d_model, or set model.d_head")
        d_head = self.d_head or self.d_model // self.n_heads
        at_least("model.d_head", d_head, 1)
        if self.d_mlp is not None:
            at_least("model.d_mlp", self.d_mlp, 1)
        if self.rotary_dim is None and d_head % 4 and self.positions == "rope":
            raise UserError(f"d_head {d_head} (model.d_model / model.n_heads) is not a multiple of 4, which 2D RoPE "
                             "rotates in row and column pairs: choose other sizes or set model.rotary_dim")
        if self.rotary_dim is not None and (not 0 <= self.rotary_dim <= d_head or self.rotary_dim % 4):
            raise UserError(f"model.rotary_dim must be a multiple of 4 in 0..d_head={d_head}, got {self.rotary_dim}")

    def resolved(self) -> ModelConfig:
        d_head = self.d_head or self.d_model // self.n_heads
        return ModelConfig(**{
            **asdict(self),
            "d_head": d_head,
            "d_mlp": self.d_mlp or 4 * self.d_model,
            "rotary_dim": 0 if self.positions == "window" else d_head if self.rotary_dim is None else self.rotary_dim,
        })
