"""Entry point: see interfere.explore.physics_bits (also `python -m interfere.explore.physics_bits`)."""

from interfere.explore.physics_bits import main

if __name__ == "__main__":
    main()
