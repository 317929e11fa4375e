"""What the live explorer computes, as plain functions of a model, a rule and a board.

The web layer (:mod:`interfere.explorer.app`) only validates requests and calls these; they run the
model through its own hooks (predictions by the fast path, attention by ``run_with_cache``,
head switches by mean ablation from :mod:`interfere.explore.components`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interfere.ca.simulate import step
from interfere.data.stream import heldout_rules, random_boards
from interfere.explore.components import Component, mean_ablation, reference_outputs
from interfere.model.life_model import LifeTransformer

REFERENCE_BOARDS = 64


@dataclass
class Engine:
    """A model with the reference means its head switches need (computed once, at start-up)."""

    model: LifeTransformer
    means: dict[Component, torch.Tensor]

    @classmethod
    def create(cls, model: LifeTransformer, heldout_seed: int, n_heldout: int, density: tuple[float, float]) -> Engine:
        layout = model.layout
        g = torch.Generator().manual_seed(0)
        rules = heldout_rules(n_heldout, heldout_seed)
        rules = rules[torch.randint(0, len(rules), (REFERENCE_BOARDS,), generator=g)]
        boards = random_boards(REFERENCE_BOARDS, layout.height, layout.width, *density, g)
        heads = [Component(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
        outputs = reference_outputs(model, model.encode_prompt(rules, boards), heads)
        return cls(model, {c: o.mean(0) for c, o in outputs.items()})

    def _tokens(self, bits: torch.Tensor, board: torch.Tensor) -> torch.Tensor:
        return self.model.encode_prompt(bits[None], board[None])

    @torch.no_grad()
    def predict(self, bits: torch.Tensor, board: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the model's next board ``[H, W]``, its P(alive) per cell)."""
        logits = self.model.inference_target_logits(self._tokens(bits, board))[0, : self.model.layout.n_cells]
        prob = logits.float().softmax(-1)[:, 1].view_as(board).cpu()
        return (prob > 0.5).long(), prob

    @torch.no_grad()
    def attention(self, bits: torch.Tensor, board: torch.Tensor, row: int, col: int) -> list[list[dict]]:
        """Per layer, per head: the t+1 target query of (row, col) over the board ``[H, W]`` and the 18 rule
        tokens, with the mass left for the other tokens (BOS, separators, itself)."""
        layout = self.model.layout
        query = layout.target_position(row, col)
        tokens = self._tokens(bits, board)
        _, cache = self.model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
        out = []
        for layer in range(self.model.cfg.n_layers):
            pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0, :, query].float().cpu()  # [head, T]
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
        tokens = self._tokens(bits, board)
        logits = self.model.run_with_hooks(tokens, fwd_hooks=mean_ablation(self.means, heads))
        pred = self.model.target_logits(logits)[0, : self.model.layout.n_cells].argmax(-1).view_as(board).cpu()
        truth = step(board[None], bits[None])[0]
        return {"model": pred.tolist(), "accuracy": float((pred == truth).float().mean())}

