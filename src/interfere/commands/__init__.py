"""The commands, one module each, run as ``python -m interfere COMMAND [flags]`` (``python -m interfere`` lists
them). Training is ``python train.py`` (Hydra); the report and the explorer live in their own subpackages.

A command is a module with ``main(argv: list[str] | None = None)``; adding one is a module here and a line in
:data:`COMMANDS`.
"""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {  # name: (module with main(argv), what it does)
    "report": ("interfere.report.run", "the hypothesis report of a checkpoint (H1-H4, the circuit, the card)"),
    "evaluate": ("interfere.commands.evaluate", "held-out and named rules, board sizes, RLE patterns (= eval.py)"),
    "run": ("interfere.commands.run", "a pattern through the model next to the simulator, on any torus"),
    "explore": ("interfere.explorer.__main__", "the live explorer in the browser"),
    "abstraction": ("interfere.commands.abstraction", "where the algorithm's variables live (interchange, DAS)"),
    "depth": ("interfere.commands.depth", "H4 layer by layer, a model beside its controls"),
    "universality": ("interfere.commands.universality", "do independently trained seeds learn the same algorithm?"),
    "handmade": ("interfere.commands.handmade", "write a hand-made model (known algorithm) as a checkpoint"),
    "reference": ("interfere.commands.reference", "list the reference models, or write one from a run"),
    "docs": ("interfere.commands.docs", "regenerate (or --check) the docs' tables"),
}
