"""How the model computes, as a pipeline of stages, each a function of the previous stages' results
(docs/design.md, "How the model computes"):

1. :mod:`~interfere.explore.account.slots`: every component at every group of positions, and the slots whose output
   nothing downstream reads (left out by construction);
2. :mod:`~interfere.explore.account.routes`: the lookup map, by flipping one rule bit at a time: where each case's
   governing bit enters, which component looks it up, which relay it, the read-out;
3. :mod:`~interfere.explore.account.roles`: each slot's role in input variables, tested by interchange, next to an
   answer-carrying control (:mod:`~interfere.explore.account.interchange`);
4. :mod:`~interfere.explore.account.idealised`: heads replaced by templates written from the inputs and the map;
5. :mod:`~interfere.explore.account.neurons`: the last MLP's neurons that carry the flip;
6. :mod:`~interfere.explore.account.card`: the ``algorithm`` block, the card and the verdict, rendered from the above.

:mod:`interfere.explore.circuit` runs the stages in order; each stage can be run and tested alone.
"""
