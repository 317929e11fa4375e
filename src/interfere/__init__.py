"""interfere: transformers that run life-like cellular automata, and the tools to open them up."""
