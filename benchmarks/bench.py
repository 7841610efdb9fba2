"""benchsr benchmarks: speed, memory and FLOPs of each method at a profile's config (paper by default), the runner's
fast paths against plain fp32 eager, the data pipeline's share of a step, and how `benchsr infer`
scales with the number of slices. Not a test: run it on the machine you want numbers for.

    .venv/bin/python benchmarks/bench.py                       # everything (tens of minutes on 2 CPU cores)
    .venv/bin/python benchmarks/bench.py --methods srcyclegan --skip-infer

Writes results/benchmarks/bench-<host>-<UTC time>.json and .md, with the hardware and versions.
Every time is the median of --repeats measurements after --warmup untimed ones.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from benchsr import config, registry, results
from benchsr.run import fastpaths   # noqa: E402
from benchsr.evaluation.evaluate import evaluate  # noqa: E402
from steps_bench import VARIANTS, bench_method, peak_flops, steps_markdown  # noqa: E402
from tiling_bench import markdown as tiling_markdown, tiling_report  # noqa: E402
from ddp_bench import ddp_report, markdown as ddp_markdown  # noqa: E402

METRIC_TOLERANCE = {"psnr": 0.05, "ssim": 0.002}   # fast path vs fp32 on the same weights

_LUNG = {}


def load_lung_ct():
    if "data" not in _LUNG:
        ds = registry.get("datasets", "lung-ct")
        cfg = config.resolve(registry.get("methods", "nearest"), "default", ds, "quick", [])
        _LUNG["data"] = ds(cfg, _LUNG.get("data_dir")).load()
    return _LUNG["data"]


def trained_run(args) -> Path | None:
    """--trained-run, else the newest SR-CycleGAN run on lung-ct here that still has its
    checkpoint (checkpoints are not published)."""
    if args.trained_run is not None:
        return args.trained_run.resolve()
    runs = sorted((ROOT / "results" / "runs" / "lung-ct").glob("srcyclegan*/*/checkpoints/last.pt"))
    return runs[-1].parent.parent if runs else None


def metric_tolerance(args) -> dict | None:
    """Evaluation metrics of the same trained SR-CycleGAN weights in fp32 eager and in each fast
    path: the largest per-image difference."""
    from benchsr.run.infer import load_trained
    run = trained_run(args)
    if run is None:
        return None
    data = load_lung_ct()
    scores = {}
    for vname, (precision, runtime) in VARIANTS.items():
        trained = load_trained(run, None, torch.device("cpu"), precision)
        cfg = config.read_yaml(run / "config.yaml")
        cfg["runtime"] = {**cfg.get("runtime", {}), **runtime}
        fastpaths.apply(trained.method, cfg["runtime"], trained.method.ctx)
        with trained.method.ctx.autocast():
            rows, _, _ = evaluate(trained.method, data.eval_images[:args.eval_images], cfg,
                                  torch.device("cpu"), None)
        scores[vname] = rows
    out = {"run": str(run), "images": args.eval_images, "tolerance": METRIC_TOLERANCE,
           "max_abs_diff": {}}
    for vname, rows in scores.items():
        out["max_abs_diff"][vname] = {m: max(abs(a[m] - b[m]) for a, b in zip(scores["fp32 eager"], rows))
                                      for m in METRIC_TOLERANCE}
    out["within_tolerance"] = all(d[m] <= METRIC_TOLERANCE[m] for d in out["max_abs_diff"].values()
                                  for m in METRIC_TOLERANCE)
    return out


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec
INFER_PROBE = """
import sys, time
from benchsr import cli
sys.argv = ["benchsr", "infer", *sys.argv[1:]]
t0 = time.perf_counter()
try:
    cli.main()
finally:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    print("PROBE", time.perf_counter() - t0, int(hwm) / 1024)
"""


def infer_scaling(args) -> dict | None:
    """`benchsr infer` on 512 x 512 x N synthetic HU volumes (N = 64, 128, 256), each in a fresh
    process: wall time and peak RSS."""
    import SimpleITK as sitk
    run = trained_run(args)
    if run is None:
        return None
    out = {"run": str(run), "roi": args.infer_roi, "points": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.infer_slices:
            rng = np.random.default_rng(n)
            vol = np.full((n, 512, 512), -1000, np.int16)
            vol[:, 128:384, 128:384] = rng.integers(-900, 400, (n, 256, 256), dtype=np.int16)
            src, dst = Path(tmp) / f"in{n}.nii", Path(tmp) / f"out{n}.nii"
            sitk.WriteImage(sitk.GetImageFromArray(vol), str(src))
            res = subprocess.run([sys.executable, "-c", INFER_PROBE, str(run), str(src), str(dst),
                                  "--roi", args.infer_roi, "--tile", "0"],
                                 capture_output=True, text=True, cwd=ROOT)
            probe = [line for line in res.stdout.splitlines() if line.startswith("PROBE")]
            if res.returncode != 0 or not probe:
                raise RuntimeError(f"infer failed: {res.stderr[-500:]}")
            wall, rss = map(float, probe[-1].split()[1:])
            out["points"].append({"slices": n, "wall_s": wall, "s_per_slice": wall / n,
                                  "peak_rss_mib": rss, "input_mib": vol.nbytes / 2 ** 20,
                                  "output_mib": dst.stat().st_size / 2 ** 20})
            print(f"  infer {n:4d} slices: {wall:6.1f} s, peak RSS {rss:7.0f} MiB", flush=True)
            dst.unlink()
    s, t = np.array([p["slices"] for p in out["points"]]), np.array([p["wall_s"] for p in out["points"]])
    slope, intercept = np.polyfit(s, t, 1)
    out["linear_fit"] = {"s_per_slice": slope, "intercept_s": intercept,
                         "r2": float(1 - ((t - (slope * s + intercept)) ** 2).sum() / ((t - t.mean()) ** 2).sum())}
    return out


def markdown(report: dict) -> str:
    hw = report["hardware"]
    lines = [f"# benchsr benchmarks — {report['when']}", "",
             f"Hardware: {hw['cpu']} ({hw['threads']} threads), {hw['device']}. "
             f"torch {hw['torch']}, Python {hw['python']}. Commit {report['commit']}.", "",
             f"Command: `{report['command']}`", "",
             f"Measured peak (matmul {report['peak_n']}²): fp32 {report['peak_flops']['fp32'] / 1e9:.0f} GFLOP/s, "
             f"bf16 {report['peak_flops']['bf16'] / 1e9:.0f} GFLOP/s. Times are medians of "
             f"{report['repeats']} after {report['warmup']} warm-up. FLOPs are flop_counter's "
             "direct-convolution count, so the share of peak can pass 100 % where oneDNN uses "
             "cheaper algorithms.", "",
             ]
    if report["methods"]:
        lines += steps_markdown(report["methods"])
    tol = report.get("metric_tolerance")
    if tol:
        lines += ["", f"## Evaluation metrics, fast paths vs fp32 ({tol['run']}, {tol['images']} images)", "",
                  f"Tolerance: |ΔPSNR| ≤ {tol['tolerance']['psnr']} dB, |ΔSSIM| ≤ {tol['tolerance']['ssim']}; "
                  f"within: **{tol['within_tolerance']}**.", "", "| variant | max abs ΔPSNR (dB) | max abs ΔSSIM |",
                  "|---|---|---|"]
        lines += [f"| {v} | {d['psnr']:.4f} | {d['ssim']:.5f} |" for v, d in tol["max_abs_diff"].items()]
    inf = report.get("infer_scaling")
    if inf:
        fit = inf["linear_fit"]
        lines += ["", f"## `benchsr infer` scaling ({inf['run']}, ROI {inf['roi']} of 512², ×4)", "",
                  f"Linear fit: {fit['s_per_slice']:.3f} s/slice + {fit['intercept_s']:.1f} s, R² {fit['r2']:.4f}.",
                  "", "| slices | wall s | s/slice | peak RSS MiB | input MiB | output MiB |", "|---|---|---|---|---|---|"]
        lines += [f"| {p['slices']} | {p['wall_s']:.1f} | {p['s_per_slice']:.3f} | {p['peak_rss_mib']:.0f} | "
                  f"{p['input_mib']:.0f} | {p['output_mib']:.0f} |" for p in inf["points"]]
    if report.get("tiling"):
        lines += tiling_markdown(report["tiling"])
    if report.get("ddp"):
        lines += ddp_markdown(report["ddp"])
    return "\n".join(lines) + "\n"


def _header(args, device: torch.device, peak_n: int, peaks: dict) -> dict:
    prov = results.provenance(torch.device("cpu"))
    return {"when": results.now(), "command": "python benchmarks/bench.py " + " ".join(sys.argv[1:]),
            "commit": prov["commit"] or os.environ.get("BENCHSR_COMMIT"), "dirty": prov["dirty"],
            "repeats": args.repeats, "warmup": args.warmup, "peak_n": peak_n, "peak_flops": peaks,
            "hardware": {"cpu": prov["device_name"], "threads": prov["threads"],
                         "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                                    else "cpu"),
                         "torch": torch.__version__, "python": platform.python_version(),
                         "packages": prov["packages"]},
            "methods": []}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="srcyclegan,cincgan,esrgan,pseudosr")
    ap.add_argument("--all-variants", default="srcyclegan", help="methods measured in every variant")
    ap.add_argument("--dataset", default="ct-uct", help="whose scale and patch sizes the configs take")
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--infer-lr", type=int, default=64, help="LR side of the inference slice")
    ap.add_argument("--eval-images", type=int, default=6)
    ap.add_argument("--infer-slices", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--infer-roi", default="192:320,192:320")
    ap.add_argument("--skip-infer", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    ap.add_argument("--ddp-profile", default="quick", help="the config of the 2-rank step")
    ap.add_argument("--sections", default="steps,tolerance,infer,tiling,ddp",
                    help="which parts to run: steps, tolerance, infer, tiling, ddp")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (steps and tiling)")
    ap.add_argument("--peak-n", type=int, default=0, help="matmul side of the peak FLOP/s (0: auto)")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="lung-ct's scan folder, or one `benchsr export-data` wrote")
    ap.add_argument("--trained-run", type=Path, default=None,
                    help="a trained 4x SR-CycleGAN run folder with its checkpoint (tolerance, "
                         "infer, tiling); default: the newest here")
    args = ap.parse_args()
    _LUNG["data_dir"] = args.data_dir
    sections = set(args.sections.split(","))
    if args.skip_infer:
        sections.discard("infer")
    torch.backends.cudnn.benchmark = True
    device = torch.device(args.device)
    # large enough to fill the device; smaller only to check the plumbing (emulated bf16 on a
    # CPU without it takes half a minute per 2048² product)
    peak_n = args.peak_n or (8192 if device.type == "cuda" else 2048)
    peaks = {"fp32": peak_flops(torch.float32, device, peak_n),
             "bf16": peak_flops(torch.bfloat16, device, peak_n)}
    report = _header(args, device, peak_n, peaks)
    if "steps" in sections:
        for name in [m for m in args.methods.split(",") if m]:
            report["methods"].append(bench_method(name, args, peaks, device, load_lung_ct))
    report["metric_tolerance"] = metric_tolerance(args) if "tolerance" in sections else None
    report["infer_scaling"] = infer_scaling(args) if "infer" in sections else None
    report["tiling"] = (tiling_report(device, args.repeats, trained_run(args))
                        if "tiling" in sections else None)
    if report["tiling"]:
        report["tiling_speedup"] = report["tiling"]["tiling_speedup"]
    report["ddp"] = (ddp_report(args.ddp_profile, args.dataset, args.repeats)
                     if "ddp" in sections else None)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    stem = args.out / f"bench-{platform.node()}-{stamp}"
    results.write_json(stem.with_suffix(".json"), report)
    results.write_text(stem.with_suffix(".md"), markdown(report))
    print(f"written: {stem}.json and .md")


if __name__ == "__main__":
    main()
