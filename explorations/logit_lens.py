"""Entry point: see interfere.explore.logit_lens (also `python -m interfere.explore.logit_lens`)."""

from interfere.explore.logit_lens import main

if __name__ == "__main__":
    main()
