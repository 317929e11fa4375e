"""Shared command-line behaviour: user errors end in one clear line, not a traceback."""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from interfere.config import compose, resolve_device, to_plain
from interfere.cpu import configure_cpu
from interfere.errors import UserError
from interfere.model.checkpoint import (
    config_mismatches,
    load_checkpoint,
    model_from_checkpoint,
)
from interfere.model.life_model import LifeTransformer
from interfere.thresholds import load_thresholds


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a :class:`~interfere.errors.UserError` (bad rule, config, flag, file, checkpoint) into one line
    ``error: ...`` and exit code 2; any other exception is a bug and keeps its traceback."""
    try:
        yield
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def add_checkpoint_args(parser: argparse.ArgumentParser) -> None:
    """The flags every command that reads a checkpoint shares."""
    parser.add_argument("--config-name", default=None,
                        help="Hydra config (e.g. exp/life32); the checkpoint's own saved config is authoritative")
    parser.add_argument("--run-id", default=None, help="read checkpoints/<RUN_ID>/latest.pt")
    parser.add_argument("--ckpt", default=None,
                        help="explicit checkpoint path, or ref:NAME for a reference model (ref:demo; "
                             "python -m interfere reference --list)")
    parser.add_argument("--ckpt-dir", default="checkpoints", help="where run folders live")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0, help="data seed for examples")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    parser.add_argument("--size", default=None, metavar="N|HxW",
                        help="board size to run (a size-free checkpoint, model.positions=window); "
                             "default: the checkpoint's, or --config-name's when the checkpoint can run it")


def add_thresholds_arg(parser: argparse.ArgumentParser) -> None:
    """``--thresholds``: every command that decides a verdict takes it."""
    parser.add_argument("--thresholds", default=None, help="verdict thresholds (default cfg/report/thresholds.yaml)")


def thresholds_from_args(args: argparse.Namespace) -> dict:
    """The thresholds file of ``--thresholds`` (or the default), loaded once by the command and checked."""
    return load_thresholds(Path(args.thresholds) if getattr(args, "thresholds", None) else None)


def board_size(text: str) -> tuple[int, int]:
    """``--size 32`` or ``32x16`` -> (rows, cols)."""
    match = re.fullmatch(r"(\d+)(?:x(\d+))?", text.strip().lower())
    if match is None:
        raise UserError(f"--size: board size must be N or HxW (e.g. 32 or 32x16), got {text!r}")
    size = int(match[1]), int(match[2] or match[1])
    if min(size) < 1:
        raise UserError(f"--size: board size must be at least 1x1, got {text!r}")
    return size


def load_model_from_args(args: argparse.Namespace) -> tuple[LifeTransformer, dict]:
    """The checkpoint named by the flags (discovery rule) and its model, in eval mode.

    A ``--config-name`` whose data/model sections differ from the checkpoint's gets a one-line
    warning: the checkpoint's own config wins, except for the board size, which a size-free model
    takes from ``--size`` or else from ``--config-name``. The returned checkpoint's
    ``config["data"]`` then says the size the model runs (its ``trained_config`` what it was trained on).
    """
    device = resolve_device(args.device)
    size = board_size(args.size) if getattr(args, "size", None) else None  # a bad size fails before the load
    if device.type == "cpu":
        configure_cpu(args.threads)
    ckpt = load_checkpoint(run_id=args.run_id, ckpt=args.ckpt, ckpt_dir=args.ckpt_dir, map_location=device)
    model = model_from_checkpoint(ckpt, device)
    if args.config_name:
        wanted = to_plain(compose(args.config_name))
        wanted_size = (wanted["data"]["height"], wanted["data"]["width"])
        if size is None and wanted_size != model.built_size:
            if model.size_free:
                size = wanted_size
            else:
                print(f"note: {args.config_name} is about {wanted_size[0]}x{wanted_size[1]} boards, but this "
                      f"checkpoint is a fixed-size model for {model.built_size[0]}x{model.built_size[1]}: "
                      "analysing its own size", file=sys.stderr)
        problems = config_mismatches(ckpt["config"], wanted)
        if problems:
            print(f"warning: {args.config_name} differs from the checkpoint's config ({problems[0]}"
                  f"{f' and {len(problems) - 1} more' if len(problems) > 1 else ''}); using the checkpoint's",
                  file=sys.stderr)
    if size is not None and size != model.built_size:
        model.resize(*size)
        ckpt["trained_config"] = ckpt["config"]
        ckpt["config"] = {**ckpt["config"], "data": {**ckpt["config"]["data"], "height": size[0], "width": size[1]}}
        trained = ckpt["trained_config"]["data"].get("sizes") or [model.built_size[0]]
        print(f"running {size[0]}x{size[1]} boards (a size-free model trained on sides {trained})", file=sys.stderr)
    return model, ckpt


def command_line() -> str:
    """The command that is running, as a user would type it again (``python -m interfere`` sets ``argv[0]`` to
    ``python -m interfere COMMAND``)."""
    head, *rest = sys.argv
    if head.startswith("python -m "):
        return " ".join([Path(sys.executable).name + head.removeprefix("python"), *map(shlex.quote, rest)])
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
