"""Serve the explorer for a checkpoint on 127.0.0.1 (``--host`` to change it): ``make explore``.

Without ``--run-id``/``--ckpt`` it opens the newest size-free checkpoint (any board size) when there
is one, else the newest checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interfere.cli import (
    add_checkpoint_args,
    add_thresholds_arg,
    exit_on_user_error,
    load_model_from_args,
    thresholds_from_args,
)
from interfere.data.stream import DataConfig
from interfere.errors import UserError
from interfere.explorer.app import create_app
from interfere.explorer.engine import Engine
from interfere.model.checkpoint import newest_size_free, weights_hash


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Explore a checkpoint live in the browser.")
    add_checkpoint_args(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8765)
    add_thresholds_arg(p)  # the lookup map's, for a clicked cell's route
    p.add_argument("--abstraction", default=None, metavar="SUMMARY",
                   help="a summary.json of python -m interfere abstraction on this checkpoint: a clicked cell also "
                        "shows where its variables live")
    args = p.parse_args(argv)
    with exit_on_user_error():
        if not 0 < args.port < 65536:
            raise UserError(f"--port must be in 1..65535, got {args.port}")
        if args.ckpt is None and args.run_id is None:
            args.ckpt = newest_size_free(args.ckpt_dir)
        model, ckpt = load_model_from_args(args)
        data = DataConfig(**ckpt["config"]["data"])
        thresholds = thresholds_from_args(args)["circuit"]
        engine = Engine.create(model, data.heldout_seed, data.n_heldout, (data.density_min, data.density_max),
                               thresholds, read_abstraction(args.abstraction, ckpt))
        app = create_app(engine, {"run_id": ckpt.get("run_id"), "step": ckpt["step"], "checkpoint": ckpt["path"]})
    import uvicorn

    print(f"explorer: http://{args.host}:{args.port}/  (run {ckpt.get('run_id')}, step {ckpt['step']}; Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def read_abstraction(path: str | None, ckpt: dict) -> dict | None:
    """Variable -> case -> {site, rank} from an abstraction's summary.json made on this very checkpoint."""
    if path is None:
        return None
    try:
        summary = json.loads(Path(path).read_text())
        variables, sha = summary["variables"], summary["weights_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"--abstraction {path}: not a summary.json of python -m interfere abstraction ({err})"
                        ) from None
    if sha != weights_hash(ckpt["path"]):
        raise UserError(f"--abstraction {path} was made on other weights ({sha}) than this checkpoint's "
                        f"({weights_hash(ckpt['path'])}): run python -m interfere abstraction on it")
    return {v: d["by_case"] for v, d in variables.items()}


if __name__ == "__main__":
    main()
