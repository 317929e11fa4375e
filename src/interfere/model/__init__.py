"""The hooked model (HookedTransformer + 2D RoPE, segments and the attention mask) and its I/O.

``LifeTransformer``, ``ModelConfig``, ``n_params`` and ``load_reference`` (a reference model, like
``from_pretrained``: ``load_reference("demo")``) are imported from here lazily, so that reading a model's
configuration (:mod:`interfere.model.config`) does not load TransformerLens."""

__all__ = ["LifeTransformer", "ModelConfig", "load_reference", "n_params"]


def __getattr__(name: str) -> object:
    if name == "load_reference":
        from interfere.model import pretrained

        return pretrained.load_reference
    if name in __all__:
        from interfere.model import life_model

        return getattr(life_model, name)
    raise AttributeError(f"module 'interfere.model' has no attribute {name!r}")
