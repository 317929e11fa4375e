"""Evaluate a checkpoint: `python eval.py [--run-id ID | --ckpt PATH] [--boards 4096] [--gif B3/S23]`."""

from interfere.commands.evaluate import main

if __name__ == "__main__":
    main()
