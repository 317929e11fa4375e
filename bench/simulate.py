"""Simulator throughput: cell updates per second of `interfere.ca.step` against a NumPy baseline.

    python bench/simulate.py [--threads 2] [--repeats 7] [--out bench/results/simulate.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from interfere.ca import step


def numpy_step(boards: np.ndarray, rules: np.ndarray) -> np.ndarray:
    """The plain NumPy way: np.roll over the 8 offsets, then look the rule bit up."""
    count = sum(
        np.roll(boards, (dr, dc), axis=(1, 2))
        for dr in (-1, 0, 1)
        for dc in (-1, 0, 1)
        if (dr, dc) != (0, 0)
    )
    index = count + 9 * (1 - boards)
    return np.take_along_axis(rules, index.reshape(len(boards), -1), axis=1).reshape(boards.shape)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default="bench/results/simulate.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    rows = []
    for n, h, w in [(4096, 32, 32), (16, 512, 512)]:
        boards = (torch.rand(n, h, w, generator=g) < 0.4).to(torch.uint8)
        rules = torch.rand(n, 18, generator=g) < 0.5
        b_np, r_np = boards.numpy().astype(np.int64), rules.numpy()
        assert np.array_equal(step(boards, rules).numpy(), numpy_step(b_np, r_np))
        t_torch = median_seconds(lambda b=boards, r=rules: step(b, r), args.repeats)
        t_np = median_seconds(lambda b=b_np, r=r_np: numpy_step(b, r), args.repeats)
        cells = n * h * w
        rows.append({
            "boards": n, "height": h, "width": w,
            "torch_cells_per_s": cells / t_torch, "numpy_cells_per_s": cells / t_np,
            "speedup": t_np / t_torch, "torch_median_s": t_torch, "numpy_median_s": t_np,
        })
    print(f"{'case':>14} {'torch Mcells/s':>15} {'numpy Mcells/s':>15} {'ratio':>7}")
    for r in rows:
        case = f"{r['boards']}x{r['height']}x{r['width']}"
        print(f"{case:>14} {r['torch_cells_per_s'] / 1e6:15.1f} {r['numpy_cells_per_s'] / 1e6:15.1f}"
              f" {r['speedup']:6.1f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
