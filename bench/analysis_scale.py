"""Time and peak memory of every analysis at the demo shape and at the life32 shape, on this machine.

    python bench/analysis_scale.py [--configs exp/cpu_demo exp/life32] [--only attn_maps probes ...]

For each config, a randomly initialised checkpoint (``train.steps=0``: the cost of an analysis does
not depend on the weights) is written to a temporary folder; then every exploration and the report
run with their default flags, each in its own process, which reports its wall time and its peak
resident memory (``ru_maxrss``). Prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from interfere.cpu import cpu_description

REPO = Path(__file__).resolve().parents[1]
FLAGS = {  # the flags an exploration needs beyond --ckpt and --out
    "attn_maps": ["--layer", "0", "--head", "0", "--center"],
    "embed_scatter": ["--layer", "1"],
    "attn_contrib_vector": ["--layer", "0", "--head", "0"],
    "rule_vectors": ["--source", "resid0"],
}
# every exploration (explorations/<name>.py runs interfere.explore.<name>), then the report: name -> (module, flags)
ANALYSES = {**{f.stem: (f"interfere.explore.{f.stem}", FLAGS.get(f.stem, []))
               for f in sorted((REPO / "explorations").glob("*.py"))},
            "report": ("interfere.report", ["--seeds", "1", "--no-controls"])}
SKIP = {("exp/life32", "circuit"): "72 components: a greedy search of O(72^2) hooked forwards, a GPU job",
        ("*", "dynamics"): "reads a run's training snapshots, which a random-init checkpoint has none of"}


def child(module: str, argv: list[str]) -> None:
    """Run one analysis in this process, then print its wall time and peak memory as JSON."""
    t0 = time.perf_counter()
    importlib.import_module(module).main(argv)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
    print("RESULT " + json.dumps({"seconds": round(time.perf_counter() - t0, 1), "peak_gb": round(peak, 2)}))


def checkpoint(config: str, root: Path) -> Path:
    run_id = config.split("/")[-1]
    subprocess.run([sys.executable, str(REPO / "train.py"), "--config-name", config, "train.steps=0",
                    f"train.run_id={run_id}", f"train.ckpt_dir={root}/ck", f"train.log_dir={root}/runs",
                    "train.final_eval=false"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return root / "ck" / run_id / "latest.pt"


def measure(config: str, ckpt: Path, name: str, out: Path) -> dict:
    module, flags = ANALYSES[name]
    argv = ["--ckpt", str(ckpt), "--out", str(out / f"{config.split('/')[-1]}_{name}"), *flags]
    proc = subprocess.run([sys.executable, __file__, "--child", module, *argv], cwd=REPO, capture_output=True,
                          text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["exp/cpu_demo", "exp/life32"])
    ap.add_argument("--only", nargs="+", choices=list(ANALYSES), default=list(ANALYSES))
    ap.add_argument("--out", default="bench/results/analysis_scale.json")
    args = ap.parse_args()
    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            ckpt = checkpoint(config, Path(tmp))
            results[config] = {}
            for name in args.only:
                skip = SKIP.get((config, name), SKIP.get(("*", name)))
                if skip:
                    results[config][name] = {"skipped": skip}
                else:
                    results[config][name] = measure(config, ckpt, name, Path(tmp) / "out")
                r = results[config][name]
                shown = r.get("skipped") or r.get("error") or f"{r['seconds']:8.1f} s   peak {r['peak_gb']:5.2f} GB"
                print(f"{config:16s} {name:20s} {shown}", flush=True)
                write(Path(args.out), results)  # after every analysis: a long run that stops keeps what it measured
    print(f"wrote {args.out}")


def write(out: Path, results: dict[str, dict[str, dict]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results, "machine": platform.processor() or platform.machine(),
                               "cpu": cpu_description(), "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2))


if __name__ == "__main__":
    main()
