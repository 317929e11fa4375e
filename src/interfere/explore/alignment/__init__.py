"""The algorithm as a causal model, aligned to the network by interchange (docs/design.md, "The causal abstraction"):

1. :mod:`~interfere.explore.alignment.causal`: the high-level model of a cell (own, count, case, governing bit, next
   state), its counterfactuals, and a control model with a permuted case-to-bit table;
2. :mod:`~interfere.explore.alignment.sites`: where a variable may live (a hook at a cell's board position, its target
   or its governing rule token);
3. :mod:`~interfere.explore.alignment.das`: pairs, interchange interventions on a linear subspace, their accuracy and
   distributed alignment search;
4. :mod:`~interfere.explore.alignment.search`: for each variable and site, the case group, the smallest rank and the
   controls (full vector, control model, random init);
5. :mod:`~interfere.explore.alignment.joint`: the bit at every site that holds it, intervened at once;
6. :mod:`~interfere.explore.alignment.heads`: every head idealised with the aligned bit.

:mod:`interfere.explore.abstraction` runs them into the map of summary.json.
"""
