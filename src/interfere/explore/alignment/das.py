"""Distributed alignment search (DAS) on the model's own hooks: interchange interventions on a learned linear
subspace of one site, and their accuracy.

An intervention on a pair (base, source) at a site replaces the base's projection onto ``k`` orthonormal directions
``B`` (``[d, k]``) by the source's, at the base cell's position: ``h + (h_source - h) B B^T``; with ``B`` the identity
it is the full-vector interchange (activation patching at that position). The base runs from the block of the site
on, from its own clean residual, through the same hooks as every forward (Geiger et al. 2023, arXiv 2303.02536).

``B`` is learned by cross-entropy on the high-level model's counterfactual label at the cell's target
(``torch.nn.utils.parametrizations.orthogonal`` keeps it orthonormal), from a closed-form start: the span of the
variable's conditional means at the site (:func:`mean_directions`), or the principal directions of the pairs'
differences, or a random draw (restarts). Crisp weights leave no gradient from a random start, which is why the
closed-form candidates come first. Maps stay linear: non-linear ones reach near-perfect interchange accuracy even on
randomly initialised models (Sutter et al. 2025, arXiv 2507.08802).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from interfere.ca.rules import N_RULE_BITS
from interfere.explore import batched
from interfere.explore.alignment.causal import SAME, Cells, HighLevel
from interfere.explore.alignment.sites import Site
from interfere.explore.analysis import Examples
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer

DONE_LOSS = 1e-3  # a fit stops once a step's cross-entropy is below this (every label right by a wide margin)


@dataclass
class Batch:
    """Examples grouped by rule (examples with the same ``rule_id`` share their rule), their cells' high-level values
    and the model's hooked activations (cached whole, per hook name, on first use)."""

    model: LifeTransformer
    ex: Examples
    rule_id: torch.Tensor  # [N]
    acts: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tokens = self.ex.tokens
        self.cells = Cells.of(self.ex.rules, self.ex.boards, self.ex.counts)
        self.next_state = self.ex.next_boards.flatten(1)  # [N, cells]: the simulator's

    def act(self, name: str) -> torch.Tensor:
        if name not in self.acts:
            self.acts.update(batched.cached(self.model, self.tokens, [name]))
        return self.acts[name]

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class Pairs:
    """Interchange pairs at one kind of site: ``[P]`` base and source examples; ``[P, m]`` base cells (every cell for
    a target site, where interventions on different cells cannot interact, one cell otherwise), the source cell each
    takes its value from, whether it counts, its counterfactual label, whether that differs from the base's next
    state, and both cells' cases."""

    base: torch.Tensor
    source: torch.Tensor
    cells: torch.Tensor
    source_cells: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    changed: torch.Tensor
    base_case: torch.Tensor
    source_case: torch.Tensor

    def __len__(self) -> int:
        return len(self.base)

    def part(self, index: torch.Tensor | slice) -> Pairs:
        return Pairs(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def draw_pairs(batch: Batch, variable: str, site: Site, hl: HighLevel, n: int, same_rule: bool,
               g: torch.Generator, cases: torch.Tensor | None = None, same_case: bool = False) -> Pairs:
    """``n`` pairs of examples with different rules (or the same rule on another board). Each base cell takes its
    value from a random cell of the source board with which the interchange is well posed (:data:`SAME`), of the same
    case with ``same_case``, and, with ``cases`` a ``[18]`` bool, both cells' cases among them: a residual carries no
    absolute position (RoPE turns only queries and keys; a window's bias is relative), so any cell's value can stand
    in. At the governing rule token the source's token is the one of the base cell's case (its value the source
    rule's bit). A pair of one base cell takes it case by case about as often for every case (rare cases, such as a
    dead cell among eight live ones, would otherwise go unmeasured)."""
    base, source = _examples(batch.rule_id, n, same_rule, g)
    b, s = _cells_at(batch.cells, base), _cells_at(batch.cells, source)
    if site.where == "rule":  # the source's token of the base cell's case: its cell is the base's, its rule its own
        allowed = torch.eye(b.own.shape[1], dtype=torch.bool).expand(len(base), -1, -1)
        s = Cells(s.rules, b.own, b.count)
    else:
        allowed = _allowed(variable, b, s, same_case, cases)  # [P, base cell, source cell]
    base_ok = allowed.any(-1)
    if cases is not None:
        base_ok &= cases[b.case]
    cells = torch.arange(base_ok.shape[1]).expand(len(base), -1)
    if site.where != "targets":  # one cell per pair: interventions at the board or a rule token interact
        keep = base_ok.any(1)
        base, source, base_ok, allowed, b = base[keep], source[keep], base_ok[keep], allowed[keep], b.part(keep)
        rarity = 1 / torch.bincount(batch.cells.case.flatten(), minlength=N_RULE_BITS).clamp_min(1).float()
        cells = torch.multinomial(base_ok.float() * rarity[b.case], 1, generator=g)  # every case about as often
        allowed = allowed.gather(1, cells[..., None].expand(-1, -1, allowed.shape[2]))
        base_ok = base_ok.gather(1, cells)
    weights = allowed.flatten(0, 1).float()
    picks = torch.multinomial(weights + (weights.sum(-1, keepdim=True) == 0).float(), 1, generator=g)
    source_cells = picks.view(cells.shape)
    b, s = _cells_at(batch.cells, base, cells), _cells_at(batch.cells, source, source_cells)
    if site.where == "rule":
        s = Cells(s.rules, b.own, b.count)
    label = hl.counterfactual(variable, b, s)
    changed = label != batch.next_state[base[:, None], cells]
    return Pairs(base, source, cells, source_cells, base_ok, label, changed, b.case, s.case)


def _examples(rid: torch.Tensor, n: int, same_rule: bool, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` (base, source) example pairs: of different rules, or of one rule on two boards. A source of the
    same rule is drawn among the base's own rule's other examples (of two examples drawn from the whole batch only a
    few in a hundred share a rule)."""
    if same_rule:
        base = torch.randint(0, len(rid), (n,), generator=g)
        peers = (rid[base, None] == rid[None, :]) & (base[:, None] != torch.arange(len(rid))[None, :])
        base, peers = base[peers.any(1)], peers[peers.any(1)]
        return base, torch.multinomial(peers.float(), 1, generator=g).squeeze(1)
    base = torch.randint(0, len(rid), (4 * n,), generator=g)
    source = torch.randint(0, len(rid), (4 * n,), generator=g)
    ok = rid[base] != rid[source]
    return base[ok][:n], source[ok][:n]


def _allowed(variable: str, b: Cells, s: Cells, same_case: bool, cases: torch.Tensor | None) -> torch.Tensor:
    """``[P, base cell, source cell]`` bool: the source cells a base cell may take its value from."""
    shared = SAME.get(variable)
    ok = torch.ones(b.own.shape[0], b.own.shape[1], s.own.shape[1], dtype=torch.bool)
    if shared is not None:
        ok &= b.get(shared)[:, :, None] == s.get(shared)[:, None, :]
    if same_case:
        ok &= b.case[:, :, None] == s.case[:, None, :]
    if cases is not None:
        ok &= cases[s.case][:, None, :]
    return ok


def _cells_at(cells: Cells, examples: torch.Tensor, pick: torch.Tensor | None = None) -> Cells:
    """The high-level values of ``examples`` (every cell, or the picked ones ``[P, m]``)."""
    own, count = cells.own[examples], cells.count[examples]
    if pick is not None:
        own, count = own.gather(1, pick), count.gather(1, pick)
    return Cells(cells.rules[examples], own, count)


def _rows(pairs: Pairs) -> torch.Tensor:
    return torch.arange(len(pairs))[:, None].expand_as(pairs.cells)


def source_values(batch: Batch, site: Site, pairs: Pairs) -> torch.Tensor:
    """``[P, m, d]``: the site's activation in each pair's source at the source cell's position."""
    act = site.view(batch.act(site.hook))
    pos = site.positions(batch.model.layout, pairs.source_cells, pairs.source_case)
    return act[pairs.source[:, None].expand_as(pos), pos]


def intervened_logits(batch: Batch, sites: list[Site], pairs: Pairs, bases: list[torch.Tensor | None],
                      sources: list[torch.Tensor]) -> torch.Tensor:
    """``[P, m, 2]`` target logits of the bases with every site's subspace (``None``: the whole vector) taken from
    the sources' values ``[P, m, d]``; the forward starts at the first site's block."""
    model, layout = batch.model, batch.model.layout
    start = min(s.layer for s in sites)
    rows = _rows(pairs)
    hooks = []
    for site, basis, src in zip(sites, bases, sources):
        pos = site.positions(layout, pairs.cells, pairs.base_case)
        hooks.append((site.hook, _swap_hook(site, rows, pos, basis, src)))
    resid = batch.act(act_name("resid_pre", start))[pairs.base]
    logits = model.run_with_hooks(resid, start_at_layer=start, fwd_hooks=hooks)
    return logits[rows, layout.targets[0].start + pairs.cells]


def _swap_hook(site: Site, rows: torch.Tensor, pos: torch.Tensor, basis: torch.Tensor | None, src: torch.Tensor):
    index = (rows, pos) if site.kind != "z" else (rows, pos, torch.full_like(pos, site.head))

    def hook(act: torch.Tensor, hook: object) -> torch.Tensor:
        current = act[index]
        new = src if basis is None else current + ((src - current) @ basis) @ basis.T
        return act.index_put(index, new.to(act.dtype))
    return hook


def iia(batch: Batch, site: Site, pairs: Pairs, basis: torch.Tensor | None, chunk: int = 256) -> torch.Tensor:
    """``[P, m]`` bool: whether the intervened prediction is the counterfactual label."""
    out = []
    with torch.no_grad():
        for start in range(0, len(pairs), chunk):
            part = pairs.part(slice(start, start + chunk))
            logits = intervened_logits(batch, [site], part, [basis], [source_values(batch, site, part)])
            out.append(logits.argmax(-1) == part.label)
    return torch.cat(out) if out else torch.zeros(0, pairs.cells.shape[1], dtype=torch.bool)


def accuracy_on_changed(hit: torch.Tensor, pairs: Pairs) -> float:
    """IIA: the share of counted, changed pair cells where the prediction is the counterfactual (NaN: none)."""
    where = pairs.mask & pairs.changed
    return float(hit[where].float().mean()) if where.any() else float("nan")


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """The model's parameters without gradients (only the rotation learns), restored after."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def fit(batch: Batch, site: Site, pairs: Pairs, init: torch.Tensor, steps: int, lr: float, per_step: int,
        g: torch.Generator) -> torch.Tensor:
    """Orthonormal ``[d, k]`` directions trained from ``init`` by cross-entropy on the counterfactual labels of the
    counted cells of ``pairs`` (``per_step`` pairs a step)."""
    d, k = init.shape
    layer = orthogonal(nn.Linear(d, k, bias=False))
    with torch.no_grad():
        layer.weight = torch.linalg.qr(init)[0].T.contiguous()
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    src_all = source_values(batch, site, pairs)
    with frozen(batch.model), torch.enable_grad():
        for _ in range(steps):
            pick = torch.randint(0, len(pairs), (min(per_step, len(pairs)),), generator=g)
            part = pairs.part(pick)
            logits = intervened_logits(batch, [site], part, [layer.weight.T], [src_all[pick]])
            loss = F.cross_entropy(logits[part.mask], part.label[part.mask])
            if float(loss.detach()) < DONE_LOSS:
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
    return layer.weight.detach().T.contiguous()


def mean_directions(batch: Batch, site: Site, variable: str, k: int, cases: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """``[d, k]``: the top directions of the variable's conditional means at the site (:func:`class_means`), completed
    by the site's quietest directions."""
    rows, h = class_means(batch, site, variable, cases)
    return top_directions(rows, k, quiet=h)


def class_means(batch: Batch, site: Site, variable: str, cases: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows ``[r, d]``, the site's activations ``[n, d]``): the variable's conditional means at the site, each taken
    within a value of what its pairs share (``count``: within an own state; ``bit``: within a case) and, but for the
    bit (which the rule fixes given the case), within one rule (the rule's bits, which many sites also carry,
    correlate with any variable by chance over a few boards per rule and would tilt the directions towards them);
    each row a mean minus its group's, weighted by the square root of its count."""
    act = site.view(batch.act(site.hook))
    n, cells = batch.cells.own.shape
    index = torch.arange(cells).expand(n, -1)
    pos = site.positions(batch.model.layout, index, batch.cells.case)
    h = act[torch.arange(n)[:, None].expand_as(pos), pos].flatten(0, 1)  # [n * cells, d]
    value = (batch.next_state if variable == "bit" else batch.cells.get(variable)).flatten()
    shared = batch.cells.case if variable == "bit" else batch.cells.get(SAME[variable]) if variable in SAME else None
    group = shared.flatten() if shared is not None else torch.zeros_like(value)
    if variable != "bit":
        group = group * len(batch) + batch.rule_id[:, None].expand(n, cells).flatten()
    keep = cases[batch.cells.case.flatten()] if cases is not None else torch.ones_like(value, dtype=torch.bool)
    order = torch.argsort(group[keep] * (value.max() + 1) + value[keep])
    return _centred_means(h[keep][order], group[keep][order], value[keep][order]), h


def _centred_means(h: torch.Tensor, group: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Per (group, value): the value's mean minus its group's mean, times the square root of its count (rows sorted
    by group, then value)."""
    _, g_index = torch.unique_consecutive(group, return_inverse=True)
    _, gv_index, gv_count = torch.unique_consecutive(group * (value.max() + 1) + value, return_inverse=True,
                                                     return_counts=True)
    g_mean = torch.zeros(int(g_index.max()) + 1, h.shape[1]).index_add_(0, g_index, h)
    g_mean /= torch.bincount(g_index).clamp_min(1)[:, None]
    gv_mean = torch.zeros(len(gv_count), h.shape[1]).index_add_(0, gv_index, h) / gv_count[:, None]
    gv_group = torch.zeros(len(gv_count), dtype=torch.long).scatter_(0, gv_index, g_index)
    return (gv_mean - g_mean[gv_group]) * gv_count[:, None].float().sqrt()


def difference_directions(batch: Batch, site: Site, pairs: Pairs, k: int) -> torch.Tensor:
    """``[d, k]``: the principal directions of the sources' minus the bases' activations on counted changed cells."""
    act = site.view(batch.act(site.hook))
    pos = site.positions(batch.model.layout, pairs.cells, pairs.base_case)
    diff = source_values(batch, site, pairs) - act[pairs.base[:, None].expand_as(pos), pos]
    return top_directions(diff[pairs.mask & pairs.changed], k)


def top_directions(rows: torch.Tensor, k: int, quiet: torch.Tensor | None = None) -> torch.Tensor:
    """The top ``k`` right singular vectors of ``rows`` ``[r, d]`` (the top eigenvectors of its ``[d, d]`` second
    moment). Beyond the rows' rank the completion is arbitrary; with ``quiet`` (activations ``[n, d]``) it is made of
    the directions in which those vary least, so that taking them from a source changes as little as possible (a
    completion through, say, the rule bits a site also carries would break the interchange it pads)."""
    rows = rows.double()
    values, vectors = torch.linalg.eigh(rows.T @ rows)  # ascending eigenvalues
    values, vectors = values.flip(-1), vectors.flip(-1)
    if quiet is None:
        return vectors[:, :k].float().contiguous()
    real = int((values > 1e-9 * values[0].clamp_min(1e-30)).sum().clamp(max=k))
    chosen = vectors[:, :real]
    rest = quiet.double() - quiet.double().mean(0)
    rest = rest - (rest @ chosen) @ chosen.T  # what varies outside the chosen directions
    _, low = torch.linalg.eigh(rest.T @ rest)  # ascending: the quietest first
    low = low - chosen @ (chosen.T @ low)
    basis = torch.linalg.qr(torch.cat([chosen, low], dim=1))[0][:, :k]
    return basis.float().contiguous()
