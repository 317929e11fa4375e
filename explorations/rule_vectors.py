"""Entry point: see interfere.explore.rule_vectors (also `python -m interfere.explore.rule_vectors`)."""

from interfere.explore.rule_vectors import main

if __name__ == "__main__":
    main()
