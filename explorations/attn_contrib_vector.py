"""Entry point: see interfere.explore.attn_contrib_vector (also `python -m interfere.explore.attn_contrib_vector`)."""

from interfere.explore.attn_contrib_vector import main

if __name__ == "__main__":
    main()
