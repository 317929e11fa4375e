"""The explorations (DESIGN §6): one module per analysis, plus what they share (common)."""
