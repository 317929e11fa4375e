"""A live explorer in the browser: ``python -m interfere explore [--run-id ID | --ckpt PATH] [--port 8765]``."""
