"""Transformers written by hand (docs/design.md, "Models written by hand"): :mod:`~.variants` says which route
computes each case, :mod:`~.build` sets the weights by code, :mod:`~.truth` states what each computes in the schemas
the methods report in."""

from interfere.model.handmade.build import Dim, build, codes, handmade_config
from interfere.model.handmade.truth import UNREAD, ground_truth, route_sites, variable_sites
from interfere.model.handmade.variants import CASES, N_HEADS, ROUTES, VARIANTS, Heads, Variant

__all__ = ["CASES", "N_HEADS", "ROUTES", "VARIANTS", "Dim", "Heads", "UNREAD", "Variant", "build", "codes",
           "ground_truth", "handmade_config", "route_sites", "variable_sites"]
