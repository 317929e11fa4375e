"""Reference models: trained weights that ship with the package, so that every number the docs quote of them can be
reproduced on any CPU without training (a CPU of another type rounds differently and trains other weights).

Each is a weights-only checkpoint (fp32 weights, the run's config and vocabulary, its provenance; no optimizer
state) under ``src/interfere/weights/``, listed in ``manifest.json`` with the file's SHA-256 and the weights' hash
(:func:`interfere.model.checkpoint.weights_hash`). Wherever a checkpoint is accepted, ``ref:NAME`` names one
(``--ckpt ref:demo``); in Python, :func:`interfere.model.pretrained.load_reference`. The command below lists them and
writes a new one from a run's checkpoint:

    python -m interfere reference --list
    python -m interfere reference --write demo --ckpt checkpoints/cpu_demo_seed0/latest.pt
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from interfere.errors import UserError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
PREFIX = "ref:"


def manifest() -> dict[str, dict]:
    """Name -> its entry (file, sha256, weights hash, config, seed, step, CPU it was trained on, held-out accuracy)."""
    return json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}


def is_reference(name: str | Path | None) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def reference_path(name: str) -> Path:
    """The file of ``ref:NAME`` (or ``NAME``), its SHA-256 checked against the manifest; a clear error otherwise."""
    name = name.removeprefix(PREFIX)
    known = manifest()
    if name not in known:
        raise UserError(f"unknown reference model {name!r}: choose one of {', '.join(sorted(known)) or '(none)'} "
                        "(python -m interfere reference --list)")
    path = WEIGHTS_DIR / known[name]["file"]
    if not path.is_file():
        raise UserError(f"reference model {name!r} is listed but {path} is missing: restore it from git")
    if file_sha256(path) != known[name]["sha256"]:
        raise UserError(f"reference model {name!r} at {path} does not match its recorded sha256: restore it from git")
    return path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
