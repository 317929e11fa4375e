"""Entry point: see interfere.explore.layers (also `python -m interfere.explore.layers`)."""

from interfere.explore.layers import main

if __name__ == "__main__":
    main()
