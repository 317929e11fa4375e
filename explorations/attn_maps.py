"""Entry point: see interfere.explore.attn_maps (also `python -m interfere.explore.attn_maps`)."""

from interfere.explore.attn_maps import main

if __name__ == "__main__":
    main()
