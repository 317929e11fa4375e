"""``python -m interfere abstraction``: where the algorithm's variables live (:mod:`interfere.explore.abstraction`)."""

from interfere.explore.abstraction import main

if __name__ == "__main__":
    main()
