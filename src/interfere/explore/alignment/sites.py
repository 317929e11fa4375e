"""Sites: where a high-level variable may live in the network, a hook at one position of each cell.

A site is a hook point of a block (the residual entering it, ``resid_pre``; after its attention, ``resid_mid``; after
it, ``resid_post`` for the last block; the attention's and the MLP's outputs, ``attn_out`` and ``mlp_out``; one head's
``z``) at one of a cell's positions: its own board cell (``board``), its t+1 target (``targets``) or the rule token
that governs its case (``rule``). The residual entering block 0 is the input embedding and is left out: a variable
there is an input, never a finding. So are sites nothing downstream can read (a last-layer site away from the
targets: :func:`interfere.explore.account.slots.needed_after`).

Sites are ordered by when they are computed (layer; then the residual entering it, the heads, the attention's sum,
the residual after it, the MLP, the block's output), so the *earliest* site that holds a variable is well defined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from interfere.data.layout import SequenceLayout
from interfere.explore.account.slots import needed_after
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer

WHERE = ("board", "targets", "rule")
KINDS = ("resid_pre", "z", "attn_out", "resid_mid", "mlp_out", "resid_post")  # order of computation in a block
_NAME = re.compile(r"(?:(resid_pre|resid_mid|resid_post|attn_out|mlp_out)\.(\d+)|L(\d+)H(\d+))@(board|targets|rule)")


@dataclass(frozen=True, order=True)
class Site:
    layer: int
    step: int  # index in KINDS
    head: int  # -1 unless a head's z
    where: str

    @property
    def kind(self) -> str:
        return KINDS[self.step]

    @property
    def name(self) -> str:
        what = f"L{self.layer}H{self.head}" if self.kind == "z" else f"{self.kind}.{self.layer}"
        return f"{what}@{self.where}"

    @classmethod
    def from_name(cls, name: str) -> Site:
        """The inverse of :attr:`name` (``resid_pre.1@targets``, ``L1H2@targets``); ValueError otherwise."""
        match = _NAME.fullmatch(name)
        if match is None:
            raise ValueError(f"not a site name: {name!r} (e.g. resid_pre.1@targets, mlp_out.0@board, L1H2@targets)")
        kind, layer, head_layer, head, where = match.groups()
        if kind is None:
            return cls(int(head_layer), KINDS.index("z"), int(head), where)
        return cls(int(layer), KINDS.index(kind), -1, where)

    @property
    def hook(self) -> str:
        return act_name(self.kind, self.layer)

    def view(self, act: torch.Tensor) -> torch.Tensor:
        """The site's ``[batch, pos, d]`` slice of its hook's activation."""
        return act[:, :, self.head] if self.kind == "z" else act

    def dim(self, model: LifeTransformer) -> int:
        return model.cfg.d_head if self.kind == "z" else model.cfg.d_model

    def positions(self, layout: SequenceLayout, cells: torch.Tensor, cases: torch.Tensor) -> torch.Tensor:
        """Sequence positions of the site for ``cells`` (cell indices) whose cases are ``cases``."""
        if self.where == "board":
            return layout.board.start + cells
        if self.where == "targets":
            return layout.targets[0].start + cells
        return layout.rule.start + cases


def all_sites(model: LifeTransformer, where: tuple[str, ...] = WHERE, heads: bool = True) -> list[Site]:
    """Every readable site of the model at these position groups, in the order of computation (each head's ``z``
    only with ``heads``)."""
    n = model.cfg.n_layers
    out = []
    for layer in range(n):
        steps = [(KINDS.index("resid_pre"), -1)] if layer > 0 else []
        steps += [(KINDS.index("z"), h) for h in range(model.cfg.n_heads if heads else 0)]
        steps += [(KINDS.index(k), -1) for k in ("attn_out", "resid_mid", "mlp_out")]
        steps += [(KINDS.index("resid_post"), -1)] if layer == n - 1 else []
        out += [Site(layer, s, h, w) for s, h in steps for w in where]
    return [s for s in out if readable(model, s)]


def holds_the_answer(site: Site, n_layers: int) -> bool:
    """Whether the site is the residual at a target after the last attention: only that position's MLP and the
    unembedding follow, so a model that is right on a cell holds its answer (the governing bit) there whole, whatever
    it computed before. A bit held there is forced by the architecture, never a finding."""
    return site.where == "targets" and site.layer == n_layers - 1 and site.kind in ("resid_mid", "resid_post")


def readable(model: LifeTransformer, site: Site) -> bool:
    """Whether any position of the site's group can reach a target after the site (whatever the weights)."""
    layout = model.layout
    group = {"board": layout.board, "targets": layout.targets[0], "rule": layout.rule}[site.where]
    after = needed_after(model)[site.layer - 1 if site.kind == "resid_pre" else site.layer]  # resid_pre: before
    return bool(after[group].any())
