"""Entry point: see interfere.explore.dynamics (also `python -m interfere.explore.dynamics`)."""

from interfere.explore.dynamics import main

if __name__ == "__main__":
    main()
