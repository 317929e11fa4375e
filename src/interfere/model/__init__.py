"""The hooked model (HookedTransformer + 2D RoPE, segments and the attention mask) and its I/O."""

from interfere.model.life_model import LifeTransformer, ModelConfig, n_params

__all__ = ["LifeTransformer", "ModelConfig", "n_params"]
