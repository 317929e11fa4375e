"""Entry point: see interfere.explore.probes (also `python -m interfere.explore.probes`)."""

from interfere.explore.probes import main

if __name__ == "__main__":
    main()
