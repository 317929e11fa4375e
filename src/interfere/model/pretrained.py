"""The reference models loaded like ``from_pretrained`` (:func:`load_reference`), and written from a run's
checkpoint (:func:`write_reference`): :mod:`interfere.model.reference` says where they live and checks them."""

from __future__ import annotations

import json
from pathlib import Path

from interfere.errors import UserError
from interfere.model.checkpoint import (
    atomic_save,
    load_checkpoint,
    model_from_checkpoint,
    read_checkpoint,
    weights_hash,
)
from interfere.model.life_model import LifeTransformer
from interfere.model.reference import MANIFEST, WEIGHTS_DIR, file_sha256, manifest, reference_path


def load_reference(name: str, device: str = "cpu") -> LifeTransformer:
    """The reference model ``name`` (e.g. ``"demo"``), in eval mode, like ``from_pretrained``."""
    return model_from_checkpoint(load_checkpoint(ckpt=reference_path(name)), device)


def write_reference(name: str, source: str | Path, trained_on: str | None = None) -> dict:
    """Write ``weights/NAME.pt`` from a run's checkpoint (its EMA weights where it has them, as every command loads
    them; no optimizer state) and its manifest entry; the weights' hash is the source's, or it refuses.
    ``trained_on``: the CPU, for a checkpoint written before checkpoints recorded it."""
    ckpt = read_checkpoint(source)
    weights = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    keep = ("format_version", "config", "vocab", "run_id", "step", "train_time_s", "stopped", "metrics", "cpu")
    out = {**{k: ckpt[k] for k in keep if k in ckpt}, "model": dict(weights),
           "ema": None}
    path = WEIGHTS_DIR / f"{name}.pt"
    atomic_save(out, path)
    if weights_hash(path) != weights_hash(source):
        path.unlink()
        raise UserError(f"{source}: the written weights differ from the checkpoint's: nothing written")
    cfg = ckpt["config"]
    entry = {"file": path.name, "sha256": file_sha256(path), "weights_sha256": weights_hash(path),
             "bytes": path.stat().st_size, "config": f"exp/{cfg.get('exp_name')}", "seed": cfg.get("seed"),
             "step": ckpt["step"], "run_id": ckpt.get("run_id"),
             "trained_on": ckpt.get("cpu") or trained_on or "not recorded",
             "stopped": (ckpt.get("stopped") or {}).get("message")}
    MANIFEST.write_text(json.dumps({**manifest(), name: entry}, indent=2, sort_keys=True) + "\n")
    return entry
