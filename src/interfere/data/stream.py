"""On-the-fly training batches, generated vectorised on the training device (docs/design.md, "Training").

Rules are a mixture of random rules (each bit Bernoulli(p)) and the named rules. Two fixed,
seeded, disjoint sets of random rules are never emitted: the held-out *test* rules (measured once,
at the end) and the *validation* rules (checked during training, e.g. to stop it). Boards are
random soups at mixed densities, optionally with stamped patterns, optionally augmented by D4
symmetries and toroidal shifts applied to the board at t and to its futures together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from interfere.ca.patterns import PATTERNS, stamp
from interfere.ca.rules import N_COUNTS, N_RULE_BITS, bits_from_codes, get_rule, named_rule_bits, rule_codes
from interfere.ca.simulate import neighbour_counts, step
from interfere.data.layout import MAX_STEPS, Encoded, SequenceLayout
from interfere.errors import UserError
from interfere.validate import at_least, ordered, within


@dataclass
class DataConfig:
    height: int = 8
    width: int = 8
    multi_steps: int = 1
    batch_size: int = 64
    named_frac: float = 0.2  # share of examples that use a named rule
    bit_p_min: float = 0.5  # each random rule draws p ~ U[bit_p_min, bit_p_max], then bits ~ B(p)
    bit_p_max: float = 0.5
    density_min: float = 0.1  # each board draws its live-cell density ~ U[density_min, density_max]
    density_max: float = 0.9
    pattern_frac: float = 0.0  # share of boards with a known pattern stamped on them
    case_balance: float = 0.0  # loss weight of a target ~ (its (state, count) case's share of the batch) ** -this
    augment_d4: bool = False
    augment_shift: bool = False
    n_heldout: int = 64  # held-out random test rules, for the final evaluation only
    heldout_seed: int = 1234
    n_validation: int = 64  # validation rules (disjoint from the test rules), checked during training
    validation_seed: int = 4321
    rules: list[str] = field(default_factory=list)  # train on these rules only (names or strings); [] = the mix
    sizes: list[int] = field(default_factory=list)  # square board sides to train on together; [] = height x width

    def __post_init__(self) -> None:
        self.rules = list(self.rules)
        self.sizes = [int(size) for size in self.sizes]
        for size in self.sizes:
            at_least("data.sizes[...]", size, 1)
        for rule in self.rules:
            get_rule(rule)  # a bad rule string fails here, naming it
        at_least("data.height", self.height, 1)
        at_least("data.width", self.width, 1)
        within("data.multi_steps", self.multi_steps, 1, MAX_STEPS)
        at_least("data.batch_size", self.batch_size, 1)
        at_least("data.n_heldout", self.n_heldout, 1)
        at_least("data.n_validation", self.n_validation, 1)
        for name in ("named_frac", "pattern_frac", "bit_p_min", "bit_p_max", "density_min", "density_max",
                     "case_balance"):
            within(f"data.{name}", getattr(self, name), 0.0, 1.0)
        ordered("data.bit_p_min", self.bit_p_min, "data.bit_p_max", self.bit_p_max)
        ordered("data.density_min", self.density_min, "data.density_max", self.density_max)


class Batch:
    """One batch: the encoded sequences plus the raw rules and boards they came from."""

    weights: torch.Tensor | None = None  # [N, K*H*W] loss weights of the targets (None: equal; data.case_balance)

    def __init__(self, encoded: Encoded, rules: torch.Tensor, boards: torch.Tensor, layout: SequenceLayout) -> None:
        self.tokens, self.labels, self.loss_mask = encoded
        self.rules = rules  # [N, 18] bool
        self.boards = boards  # [N, 1 + K, H, W] int64: the board at t, then t+1..t+K
        self.layout = layout


def distinct_random_rules(n: int, seed: int, excluded: set[int] | None = None) -> torch.Tensor:
    """``[n, 18]`` bool: distinct random rules (bits ~ B(0.5)) that are neither named rules nor in
    ``excluded`` (rule codes)."""
    g = torch.Generator().manual_seed(seed)
    seen = set(rule_codes(named_rule_bits()).tolist()) | set(excluded or ())
    codes: list[int] = []
    while len(codes) < n:  # one-off set-up: a few draws of n candidates
        for code in rule_codes(torch.rand(n, N_RULE_BITS, generator=g) < 0.5).tolist():
            if code not in seen and len(codes) < n:
                seen.add(code)
                codes.append(code)
    return bits_from_codes(torch.tensor(codes, dtype=torch.long))


def heldout_rules(n: int, seed: int) -> torch.Tensor:
    """``[n, 18]`` bool: the held-out test rules (never trained on, never used to steer training)."""
    return distinct_random_rules(n, seed)


def validation_rules(data: DataConfig) -> torch.Tensor:
    """``[n_validation, 18]`` bool: rules checked during training, disjoint from the test rules."""
    test = set(rule_codes(heldout_rules(data.n_heldout, data.heldout_seed)).tolist())
    return distinct_random_rules(data.n_validation, data.validation_seed, excluded=test)


def random_boards(
    n: int, height: int, width: int, density_min: float, density_max: float, g: torch.Generator,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``[n, H, W]`` int64 random soups, each board with its own density ~ U[min, max]."""
    density = density_min + (density_max - density_min) * torch.rand(n, 1, 1, generator=g, device=device)
    return (torch.rand(n, height, width, generator=g, device=device) < density).long()


def future_boards(board_t: torch.Tensor, rules: torch.Tensor, steps: int) -> torch.Tensor:
    """``[N, 1 + steps, H, W]``: the board at t followed by the simulator's next ``steps`` states."""
    states = [board_t.long()]
    for _ in range(steps):
        states.append(step(states[-1], rules))
    return torch.stack(states, dim=1)


def augment(
    boards: torch.Tensor, g: torch.Generator, d4: bool, shift: bool
) -> torch.Tensor:
    """Apply one random symmetry per example to all of its states ``[N, S, H, W]`` together."""
    n, _, h, w = boards.shape
    dev = boards.device
    if d4:
        flip = torch.rand(n, 2, generator=g, device=dev) < 0.5
        boards = torch.where(flip[:, 0, None, None, None], boards.flip(-2), boards)
        boards = torch.where(flip[:, 1, None, None, None], boards.flip(-1), boards)
        if h == w:
            tr = torch.rand(n, generator=g, device=dev) < 0.5
            boards = torch.where(tr[:, None, None, None], boards.transpose(-1, -2), boards)
    if shift:
        dr = torch.randint(0, h, (n, 1, 1, 1), generator=g, device=dev)
        dc = torch.randint(0, w, (n, 1, 1, 1), generator=g, device=dev)
        rows = (torch.arange(h, device=dev)[None, None, :, None] + dr) % h
        cols = (torch.arange(w, device=dev)[None, None, None, :] + dc) % w
        boards = boards.gather(2, rows.expand(n, boards.shape[1], h, w))
        boards = boards.gather(3, cols.expand(n, boards.shape[1], h, w))
    return boards


def case_weights(states: torch.Tensor, power: float) -> torch.Tensor:
    """``[N, K*H*W]`` loss weights, mean 1: each target's weight is its case's share of the batch's
    targets to the power ``-power``, where the case is the (state, neighbour count) of the cell on the
    board it follows. Rare cases (a dead cell among 8 live ones, a live one among none: about 1% of
    soup cells each) then weigh as much as common ones (``power`` 1) or in between."""
    before = states[:, :-1]  # [N, K, H, W]: the board each target follows
    case = before * N_COUNTS + neighbour_counts(before.flatten(0, 1)).view_as(before)
    share = torch.bincount(case.flatten(), minlength=2 * N_COUNTS).float() / case.numel()
    weights = share[case.flatten(1)].pow(-power)
    return weights / weights.mean()


class BatchStream:
    """An endless, seeded generator of training batches that never emits a test or validation rule."""

    def __init__(self, cfg: DataConfig, seed: int, device: torch.device | str = "cpu") -> None:
        self.cfg = cfg
        self.layout = SequenceLayout(cfg.height, cfg.width, cfg.multi_steps)
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.heldout = heldout_rules(cfg.n_heldout, cfg.heldout_seed).to(self.device)
        self.validation = validation_rules(cfg).to(self.device)
        self._unseen_codes = rule_codes(torch.cat([self.heldout, self.validation]))  # never trained on
        self._named = named_rule_bits().to(self.device)
        self._only = self._fixed_rules(cfg.rules)
        self.named_frac = cfg.named_frac  # the named rules' share now (training may change it: train.decay_named_frac)

    def _fixed_rules(self, rules: list[str]) -> torch.Tensor | None:
        """``[n, 18]`` bits of ``data.rules`` (None when empty); a test or validation rule may not be trained on."""
        if not rules:
            return None
        bits = torch.stack([get_rule(r).bits for r in rules]).to(self.device)
        clash = torch.isin(rule_codes(bits), self._unseen_codes)
        if clash.any():
            raise UserError(f"data.rules: {[r for r, c in zip(rules, clash.tolist()) if c]} is a held-out test or "
                             "validation rule; train on other rules or change data.heldout_seed/validation_seed")
        return bits

    def sample_rules(self, n: int) -> torch.Tensor:
        """``[n, 18]`` bool training rules: ``data.rules`` uniformly if given; else named with
        prob ``self.named_frac`` and random rules (neither test nor validation rules) otherwise."""
        c, g, dev = self.cfg, self.generator, self.device
        if self._only is not None:
            return self._only[torch.randint(0, len(self._only), (n,), generator=g, device=dev)]
        p = c.bit_p_min + (c.bit_p_max - c.bit_p_min) * torch.rand(n, 1, generator=g, device=dev)
        rules = torch.rand(n, N_RULE_BITS, generator=g, device=dev) < p
        clash = torch.isin(rule_codes(rules), self._unseen_codes)
        while clash.any():  # rare (n_heldout / 2**18 per rule): redraw just those
            redraw = torch.rand(n, N_RULE_BITS, generator=g, device=dev) < p
            rules = torch.where(clash[:, None], redraw, rules)
            clash = torch.isin(rule_codes(rules), self._unseen_codes)
        named = torch.rand(n, generator=g, device=dev) < self.named_frac
        pick = torch.randint(0, len(self._named), (n,), generator=g, device=dev)
        return torch.where(named[:, None], self._named[pick], rules)

    def sample_boards(self, n: int, size: tuple[int, int] | None = None) -> torch.Tensor:
        """``[n, H, W]`` soups (``size``: another (H, W) than the config's), with a known pattern
        stamped on a ``pattern_frac`` share of them."""
        c, g, dev = self.cfg, self.generator, self.device
        h, w = size or (c.height, c.width)
        boards = random_boards(n, h, w, c.density_min, c.density_max, g, dev)
        if c.pattern_frac > 0:
            names = sorted(PATTERNS)
            which = torch.randint(0, len(names), (n,), generator=g, device=dev)
            on = torch.rand(n, generator=g, device=dev) < c.pattern_frac
            tops = torch.randint(0, h, (n,), generator=g, device=dev)
            lefts = torch.randint(0, w, (n,), generator=g, device=dev)
            for i, name in enumerate(names):  # a loop over the 5 patterns, not over boards
                boards = stamp(boards, name, tops, lefts, on & (which == i))
        return boards

    def make_batch(self, rules: torch.Tensor, boards: torch.Tensor) -> Batch:
        """Simulate, augment and encode given rules and boards at t."""
        states = future_boards(boards, rules, self.cfg.multi_steps)
        if self.cfg.augment_d4 or self.cfg.augment_shift:
            states = augment(states, self.generator, self.cfg.augment_d4, self.cfg.augment_shift)
        layout = self.layout.with_size(*states.shape[-2:])
        batch = Batch(layout.encode(rules, states[:, 0], states[:, 1:]), rules, states, layout)
        if self.cfg.case_balance > 0:
            batch.weights = case_weights(states, self.cfg.case_balance)
        return batch

    def next(self, batch_size: int | None = None, size: tuple[int, int] | None = None) -> Batch:
        n = batch_size or self.cfg.batch_size
        return self.make_batch(self.sample_rules(n), self.sample_boards(n, size))

    def __iter__(self):
        while True:
            yield self.next()
