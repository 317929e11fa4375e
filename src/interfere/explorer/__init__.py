"""A live explorer in the browser: ``python -m interfere.explorer [--run-id ID | --ckpt PATH] [--port 8765]``."""
