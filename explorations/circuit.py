"""Entry point: see interfere.explore.circuit (also `python -m interfere.explore.circuit`)."""

from interfere.explore.circuit import main

if __name__ == "__main__":
    main()
