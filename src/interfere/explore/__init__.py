"""The explorations: one module per analysis (the interface in analysis.py and docs/design.md), plus what
they share: examples and activations (analysis), the command line (common), chunked forwards (batched)."""
