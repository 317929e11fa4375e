"""``python -m interfere COMMAND [flags]``: every command in one place; without a command, the list."""

from __future__ import annotations

import importlib
import sys

from interfere.commands import COMMANDS


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items())
    return (f"usage: python -m interfere COMMAND [flags]   (python -m interfere COMMAND --help)\n\n{rows}\n\n"
            "training: python train.py --config-name exp/cpu_demo [hydra overrides]")


def main(argv: list[str] | None = None) -> object:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return None
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}: one of {', '.join(COMMANDS)} (python -m interfere lists them)",
              file=sys.stderr)
        raise SystemExit(2)
    sys.argv = [f"python -m interfere {name}", *rest]  # argparse's usage line and the outputs' recorded command
    return importlib.import_module(COMMANDS[name][0]).main(rest)


if __name__ == "__main__":
    result = main()
    raise SystemExit(result if isinstance(result, int) else 0)
