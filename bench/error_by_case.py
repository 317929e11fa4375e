"""Where a checkpoint is wrong: held-out error by the cell's state and live-neighbour count.

    python bench/error_by_case.py --ckpt PATH [--ckpt PATH ...] [--boards 1024]

On the end-of-training evaluation's held-out boards and rules (``interfere.evaluate``), prints per
checkpoint the share of wrong cells in each of the 18 (state, count) cases (the case picks the rule
bit that decides the cell: S_count for a live cell, B_count for a dead one) and split by that bit's
value. A model that has not learned one state's lookup shows it as one row of large numbers.
"""

from __future__ import annotations

import argparse

import torch

from interfere.ca.rules import N_COUNTS, governing_bit
from interfere.ca.simulate import neighbour_counts
from interfere.cpu import cpu_description
from interfere.data.stream import DataConfig, heldout_rules
from interfere.evaluate import eval_boards, score, spread_rules
from interfere.model.checkpoint import load_checkpoint, model_from_checkpoint, weights_hash


def case_errors(ckpt_path: str, n_boards: int) -> tuple[torch.Tensor, dict[int, float]]:
    """``[2, 9]`` % wrong per (state, count), and % wrong by the governing bit's value."""
    ckpt = load_checkpoint(ckpt=ckpt_path)
    model, data = model_from_checkpoint(ckpt), DataConfig(**ckpt["config"]["data"])
    rules = spread_rules(heldout_rules(data.n_heldout, data.heldout_seed), n_boards)
    boards = eval_boards(n_boards, data, int(ckpt["config"].get("seed", 0)))
    cells = score(model, rules, boards)[0]
    wrong = (cells.pred != cells.truth).float()
    counts = neighbour_counts(boards)
    table = torch.tensor([[100 * wrong[(boards == s) & (counts == c)].mean().item() for c in range(N_COUNTS)]
                          for s in (0, 1)])
    bit = governing_bit(boards, counts)
    governing = torch.gather(rules[:, None, None, :].expand(*boards.shape, -1), 3, bit[..., None])[..., 0]
    return table, {v: 100 * wrong[governing == v].mean().item() for v in (0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", nargs="+", required=True)
    ap.add_argument("--boards", type=int, default=1024)
    args = ap.parse_args()
    print(f"CPU: {cpu_description()}; % of held-out cells wrong, by state and live-neighbour count 0..8")
    for path in args.ckpt:
        table, by_bit = case_errors(path, args.boards)
        print(f"\n{path} (weights {weights_hash(path)})")
        for state, name in ((0, "dead"), (1, "live")):
            print(f"  {name}: " + " ".join(f"{v:5.1f}" for v in table[state].tolist()))
        print(f"  governing bit 0: {by_bit[0]:.2f}%, bit 1: {by_bit[1]:.2f}%")


if __name__ == "__main__":
    main()
