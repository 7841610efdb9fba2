"""The coverage of every interval design on the full grid of statistics.md (R in {1, 2, 3, 5}
runs, trained against trained or untrained, V in {1, 3, 30} volumes, rho in {0, 0.8}), with
the published two-level bootstrap included. Writes results/coverage.md (the command, commit
and machine beside the table); the test suite checks the same grid with fewer simulations.

    python benchmarks/coverage.py --n 2000 --n-boot 200
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import time
from pathlib import Path

import pandas as pd

from benchsr.evaluation import simulate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "coverage.md")
    args = ap.parse_args()
    t0, rows = time.time(), []
    for d in simulate.GRID:
        c = simulate.coverage(d, args.n, seed=1, n_boot=args.n_boot)
        fmt = lambda x: "no interval" if x is None else f"{x:.3f}"   # noqa: E731
        rows.append({"A": f"{d.runs_a} runs" if d.runs_a else "untrained",
                     "B": f"{d.runs_b} runs" if d.runs_b else "untrained", "Volumes": d.volumes,
                     "rho": d.rho, "Cell of A": fmt(c["cell"]), "A − B": fmt(c["compare"])})
        print(rows[-1], flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").is_file() \
        else platform.machine()
    commit = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    head = (f"# Coverage of the 95 % intervals, simulated\n\n"
            f"`python benchmarks/coverage.py --n {args.n} --n-boot {args.n_boot}` at {commit}, "
            f"{cpu}, {time.time() - t0:.0f} s. "
            f"{args.n} simulated benchmarks per design (Monte Carlo sd about 0.005 at 0.95); "
            f"model and sds in `benchsr/evaluation/simulate.py` ({simulate.SD}); one volume has "
            f"3 blocks of 8 slices. A trained row with 1 run publishes no interval, and a "
            f"comparison with it is untestable.\n\n")
    args.out.write_text(head + pd.DataFrame(rows).to_markdown(index=False) + "\n")


if __name__ == "__main__":
    main()
