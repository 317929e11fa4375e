"""``python -m interfere reference``: list the reference models, or write one from a run's checkpoint
(:mod:`interfere.model.reference`)."""

from __future__ import annotations

import argparse

from interfere.cli import exit_on_user_error
from interfere.errors import UserError
from interfere.model.pretrained import write_reference
from interfere.model.reference import WEIGHTS_DIR, manifest


def main(argv: list[str] | None = None) -> None:

    p = argparse.ArgumentParser(description="List the reference models, or write one from a run's checkpoint.")
    p.add_argument("--list", action="store_true")
    p.add_argument("--write", metavar="NAME", help="write weights/NAME.pt and its manifest entry from --ckpt")
    p.add_argument("--ckpt", help="the run's checkpoint (latest.pt)")
    p.add_argument("--trained-on", default=None, help="the CPU it was trained on, where the checkpoint predates the "
                                                      "record (checkpoints now store it)")
    args = p.parse_args(argv)
    with exit_on_user_error():
        if args.write:
            if not args.ckpt:
                raise UserError("--write needs --ckpt (the run's checkpoint to take the weights from)")
            entry = write_reference(args.write, args.ckpt, args.trained_on)
            print(f"reference {args.write}: {WEIGHTS_DIR / entry['file']} ({entry['bytes']:,} bytes, weights "
                  f"{entry['weights_sha256']}, trained on {entry['trained_on']})")
            return
        for name, entry in sorted(manifest().items()):
            print(f"ref:{name:8s} {entry['config']} seed {entry['seed']} step {entry['step']}, weights "
                  f"{entry['weights_sha256']}, {entry['bytes']:,} bytes, trained on {entry['trained_on']}")


if __name__ == "__main__":
    main()
