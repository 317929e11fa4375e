"""What the live explorer computes, as plain functions of a model, a rule and a board.

The web layer (:mod:`interfere.explorer.app`) only validates requests and calls these; they run the
model through its own hooks (predictions by the fast path, attention by ``run_with_cache``,
head switches by mean ablation from :mod:`interfere.explore.components`). A size-free model runs
the size of the board it is given (one request at a time: the model's size is switched under a lock).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from interfere.ca.rules import BIT_NAMES, governing_bit
from interfere.ca.simulate import neighbour_counts, step
from interfere.ca.simulate import rollout as simulate_rollout
from interfere.data.stream import heldout_rules, random_boards
from interfere.errors import UserError
from interfere.explore.account import kinds, routes
from interfere.explore.common import examples_of
from interfere.explore.components import Component, mean_ablation, reference_outputs
from interfere.model import inference
from interfere.model.hooks import act_name
from interfere.model.life_model import LifeTransformer

REFERENCE_BOARDS = 64
MAP_BOARDS = 16  # boards of held-out rules for the lookup map a clicked cell's route is read from (once)
SIZE_FREE_SIDES = (8, 16, 32, 64, 128)  # the board sides the page offers a size-free model
MAX_INSPECT_CELLS = 32 * 32  # attention and head switches run the hooked forward: T x T per head and layer


@dataclass
class Engine:
    """A model with the reference means its head switches need (per board size, computed when first asked)."""

    model: LifeTransformer
    heldout_seed: int
    n_heldout: int
    density: tuple[float, float]
    thresholds: dict | None = None  # the circuit section's route thresholds (the lookup map); None: no routes
    abstraction: dict | None = None  # variable -> case -> {site, rank}: a causal abstraction of this model, or None
    means: dict[tuple[int, int], dict[Component, torch.Tensor]] = field(default_factory=dict)
    lookup_map: dict[str, routes.Route] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, model: LifeTransformer, heldout_seed: int, n_heldout: int, density: tuple[float, float],
               thresholds: dict | None = None, abstraction: dict | None = None) -> Engine:
        engine = cls(model, heldout_seed, n_heldout, density, thresholds, abstraction)
        engine.means_at(model.layout.height, model.layout.width)
        return engine

    @property
    def sides(self) -> list[int]:
        """Board sides the page offers: any of SIZE_FREE_SIDES for a size-free model, else its own."""
        if self.model.size_free:
            return list(SIZE_FREE_SIDES)
        return [self.model.built_size[0]]

    @contextlib.contextmanager
    def sized(self, board: torch.Tensor) -> Iterator[LifeTransformer]:
        """The model, running ``board``'s size, for one request at a time."""
        with self.lock, self.model.sized(*board.shape[-2:]) as model:
            yield model

    def means_at(self, height: int, width: int) -> dict[Component, torch.Tensor]:
        """Each head's mean output per position on reference soups of this size (for head switches)."""
        if (height, width) not in self.means:
            g = torch.Generator().manual_seed(0)
            rules = heldout_rules(self.n_heldout, self.heldout_seed)
            rules = rules[torch.randint(0, len(rules), (REFERENCE_BOARDS,), generator=g)]
            boards = random_boards(REFERENCE_BOARDS, height, width, *self.density, g)
            heads = [Component(l, h) for l in range(self.model.cfg.n_layers) for h in range(self.model.cfg.n_heads)]
            with self.lock, self.model.sized(height, width):
                outputs = reference_outputs(self.model, self.model.encode_prompt(rules, boards), heads)
            self.means[(height, width)] = {c: o.mean(0) for c, o in outputs.items()}
        return self.means[(height, width)]

    def routes(self) -> dict[str, routes.Route]:
        """The lookup map's route of every case (:mod:`interfere.explore.account.routes`), computed once, at the
        model's own board size, on ``MAP_BOARDS`` boards of held-out rules."""
        if self.thresholds is None:
            raise UserError("this explorer was started without thresholds: the lookup map is not available")
        if self.lookup_map is None:
            g = torch.Generator().manual_seed(1)
            rules = heldout_rules(self.n_heldout, self.heldout_seed)
            rules = rules[torch.randint(0, len(rules), (MAP_BOARDS,), generator=g)]
            with self.lock, self.model.sized(*self.model.built_size) as model:
                boards = random_boards(MAP_BOARDS, *model.built_size, *self.density, g)
                self.lookup_map = kinds.lookup_map(model, examples_of(model, rules, boards), self.thresholds)[2]
        return self.lookup_map

    def route(self, board: torch.Tensor, row: int, col: int) -> dict:
        """A cell's case on ``board`` and the route that case takes in this model."""
        alive, count = int(board[row, col]), int(neighbour_counts(board[None])[0, row, col])
        case = BIT_NAMES[int(governing_bit(torch.tensor(alive), torch.tensor(count)))]
        found = self.routes()[case]
        variables = None if self.abstraction is None else {v: by_case.get(case)
                                                           for v, by_case in self.abstraction.items()}
        return {"case": case, "alive": bool(alive), "count": count, "variables": variables,
                **{k: getattr(found, k) for k in ("kind", "enters", "layer", "lookup", "lookups", "relays", "readout")}}

    def _tokens(self, bits: torch.Tensor, board: torch.Tensor) -> torch.Tensor:
        return self.model.encode_prompt(bits[None], board[None])

    @torch.no_grad()
    def run(self, bits: torch.Tensor, model_board: torch.Tensor, sim_board: torch.Tensor, gens: int) -> dict:
        """``gens`` generations of the model's own rollout and of the simulator, from their current boards."""
        with self.sized(model_board) as model:
            ours = inference.rollout(model, bits[None], model_board[None], gens)[0, 1:].cpu()
        truth = simulate_rollout(sim_board, bits, gens)[1:]
        return {"model": ours.tolist(), "simulator": truth.tolist(), "wrong": (ours != truth).long().tolist()}

    @torch.no_grad()
    def predict(self, bits: torch.Tensor, board: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the model's next board ``[H, W]``, its P(alive) per cell)."""
        with self.sized(board) as model:
            logits = inference.target_logits(model, self._tokens(bits, board))[0, : board.numel()]
        prob = logits.float().softmax(-1)[:, 1].view_as(board).cpu()
        return (prob > 0.5).long(), prob

    @torch.no_grad()
    def attention(self, bits: torch.Tensor, board: torch.Tensor, row: int, col: int) -> list[list[dict]]:
        """Per layer, per head: the t+1 target query of (row, col) over the board ``[H, W]`` and the 18 rule
        tokens, with the mass left for the other tokens (BOS, separators, itself)."""
        with self.sized(board) as model:
            layout = model.layout
            query = layout.target_position(row, col)
            tokens = self._tokens(bits, board)
            _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
        out = []
        for layer in range(self.model.cfg.n_layers):
            pattern = cache[act_name("pattern", layer)][0, :, query].float().cpu()  # [head, T]
            out.append([{
                "board": pattern[h, layout.board].view(layout.height, layout.width).tolist(),
                "rule": pattern[h, layout.rule].tolist(),
                "other": float(1 - pattern[h, layout.board].sum() - pattern[h, layout.rule].sum()),
            } for h in range(pattern.shape[0])])
        return out

    def flip(self, bits: torch.Tensor, board: torch.Tensor, bit: int) -> dict:
        """Which cells' predictions change when rule bit ``bit`` flips, against the cells it governs."""
        flipped = bits.clone()
        flipped[bit] = ~flipped[bit]
        before, _ = self.predict(bits, board)
        after, _ = self.predict(flipped, board)
        governed = step(board[None], bits[None])[0] != step(board[None], flipped[None])[0]
        changed = before != after
        hit = int((changed & governed).sum())
        return {"changed": changed.long().tolist(), "governed": governed.long().tolist(),
                "precision": hit / int(changed.sum()) if changed.any() else None,
                "recall": hit / int(governed.sum()) if governed.any() else None}

    @torch.no_grad()
    def with_heads_off(self, bits: torch.Tensor, board: torch.Tensor, heads: list[Component]) -> dict:
        """The next board with ``heads`` mean-ablated, and its accuracy against the simulator."""
        means = self.means_at(*board.shape)
        with self.sized(board) as model:
            logits = model.run_with_hooks(self._tokens(bits, board), fwd_hooks=mean_ablation(means, heads))
            pred = model.target_logits(logits)[0, : board.numel()].argmax(-1).view_as(board).cpu()
        truth = step(board[None], bits[None])[0]
        return {"model": pred.tolist(), "accuracy": float((pred == truth).float().mean())}

