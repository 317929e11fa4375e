"""Entry point: see interfere.explore.embed_scatter (also `python -m interfere.explore.embed_scatter`)."""

from interfere.explore.embed_scatter import main

if __name__ == "__main__":
    main()
