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
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchsr import config, cost, fastpaths, registry, results  # noqa: E402
from benchsr.contracts import RunContext, TrainBatch  # noqa: E402
from benchsr.evaluate import evaluate  # noqa: E402
from benchsr.patches import PatchSampler  # noqa: E402
from benchsr.training import seed_epoch  # noqa: E402

# (name, precision, runtime overrides): each against "fp32 eager" in the same process
VARIANTS = {
    "fp32 eager": ("fp32", {}),
    "bf16": ("bf16", {}),
    "bf16 + channels_last": ("bf16", {"channels_last": True}),
    "bf16 + channels_last + fused optim": ("bf16", {"channels_last": True, "optimizer": "fused"}),
}
METRIC_TOLERANCE = {"psnr": 0.05, "ssim": 0.002}   # fast path vs fp32 on the same weights


def median_time(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_flops(dtype: torch.dtype, n: int = 2048) -> float:
    """FLOP/s of a large matmul in `dtype`: the machine's practical peak for that precision."""
    a, b = torch.rand(n, n, dtype=dtype), torch.rand(n, n, dtype=dtype)
    return 2 * n ** 3 / median_time(lambda: a @ b, repeats=5, warmup=2)


def build(method: str, dataset: str, profile: str, precision: str, runtime: dict, extra=()):
    cls, ds_cls = registry.get("methods", method), registry.get("datasets", dataset)
    cfg = config.resolve(cls, "default", ds_cls, profile, [f"precision={precision}", *extra])
    cfg["runtime"].update(runtime)
    ctx = RunContext(device=torch.device("cpu"), precision=precision, scale=ds_cls.scale,
                     channels=1, epochs=int(cfg["train"]["epochs"]))
    seed_epoch(0, -1)
    m = cls(cfg, ctx)
    m.build()
    fastpaths.apply(m, cfg["runtime"], ctx)
    return m, cfg


def random_batch(cfg: dict, scale: int, channels_last: bool) -> TrainBatch:
    bs, p = int(cfg["train"]["batch_size"]), int(cfg["train"]["lr_patch"])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    return TrainBatch(torch.rand(bs, 1, p, p, generator=g).contiguous(memory_format=fmt),
                      torch.rand(bs, 1, p * scale, p * scale, generator=g).contiguous(memory_format=fmt))


def bench_method(name: str, args, peaks: dict) -> dict:
    out = {"method": name, "dataset_for_config": args.dataset, "profile": args.profile, "variants": {}}
    variants = VARIANTS if name in args.all_variants.split(",") else {k: VARIANTS[k] for k in ("fp32 eager", "bf16 + channels_last")}
    for vname, (precision, runtime) in variants.items():
        m, cfg = build(name, args.dataset, args.profile, precision, runtime)
        k = m.ctx.scale
        batch = random_batch(cfg, k, runtime.get("channels_last", False))
        step = iter(range(10 ** 6))
        memory = cost.PeakMemory(torch.device("cpu"))
        t = median_time(lambda: m.train_step(batch, next(step)), args.repeats, args.warmup)
        row = {"precision": precision, "runtime": runtime, "step_s": t,
               "samples_per_s": batch.lr.shape[0] / t, "peak_rss_mib": memory.read_mib()}
        if vname == "fp32 eager":
            counter = FlopCounterMode(display=False)
            with counter:
                m.train_step(batch, next(step))
            out["flops_per_step"] = int(counter.get_total_flops())
            out["params"] = sum(p.numel() for net in m.nets.values() for p in net.parameters())
            out["batch"], out["lr_patch"], out["scale"] = batch.lr.shape[0], batch.lr.shape[-1], k
        row["achieved_flops_per_s"] = out["flops_per_step"] / t
        row["fraction_of_peak"] = row["achieved_flops_per_s"] / peaks[precision]
        lr = torch.rand(1, 1, args.infer_lr, args.infer_lr)
        if runtime.get("channels_last"):
            lr = lr.contiguous(memory_format=torch.channels_last)
        m.train(False)
        with torch.no_grad(), m.ctx.autocast():
            ti = median_time(lambda: m.super_resolve(lr), args.repeats, 1)
        row["infer_ms_per_slice"] = ti * 1e3
        row["infer_output_mp_per_s"] = (args.infer_lr * k) ** 2 / 1e6 / ti
        out["variants"][vname] = row
        print(f"  {name:11s} {vname:36s} step {t:7.3f} s  infer {ti * 1e3:8.1f} ms", flush=True)
    base = out["variants"]["fp32 eager"]["step_s"]
    for row in out["variants"].values():
        row["speedup_vs_fp32_eager"] = base / row["step_s"]
    out["data_pipeline"] = data_pipeline(cfg, k, args)
    out["data_fraction_of_fastest_step"] = (out["data_pipeline"]["s_per_step"]
                                            / min(r["step_s"] for r in out["variants"].values()))
    return out


def data_pipeline(cfg: dict, k: int, args) -> dict:
    """Sampling the LR and HR patches of one step from the cached, memory-mapped lung-ct slices
    (the runner's own sampler), with the copy into a tensor."""
    data = load_lung_ct()
    bs, p = int(cfg["train"]["batch_size"]), int(cfg["train"]["lr_patch"])
    lr_s, hr_s = PatchSampler(data.train_lr, p), PatchSampler(data.train_hr, min(p * k, 512))
    rng = np.random.default_rng(0)
    t = median_time(lambda: (torch.from_numpy(lr_s.sample(bs, rng)[0]),
                             torch.from_numpy(hr_s.sample(bs, rng)[0])), max(args.repeats, 10), 2)
    return {"s_per_step": t, "lr_patch": p, "hr_patch": min(p * k, 512), "batch": bs}


_LUNG = {}


def load_lung_ct():
    if "data" not in _LUNG:
        ds = registry.get("datasets", "lung-ct")
        cfg = config.resolve(registry.get("methods", "nearest"), "default", ds, "quick", [])
        _LUNG["data"] = ds(cfg).load()
    return _LUNG["data"]


def trained_run() -> Path | None:
    """The newest published SR-CycleGAN run on lung-ct that still has its checkpoint."""
    runs = sorted((ROOT / "results" / "runs" / "lung-ct" / "srcyclegan").glob("*/checkpoints/last.pt"))
    return runs[-1].parent.parent if runs else None


def metric_tolerance(args) -> dict | None:
    """Evaluation metrics of the same trained SR-CycleGAN weights in fp32 eager and in each fast
    path: the largest per-image difference."""
    from benchsr.infer import load_trained
    run = trained_run()
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
    out = {"run": str(run.relative_to(ROOT)), "images": args.eval_images, "tolerance": METRIC_TOLERANCE,
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
    run = trained_run()
    if run is None:
        return None
    out = {"run": str(run.relative_to(ROOT)), "roi": args.infer_roi, "points": []}
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
             f"## Training step and inference per method ({report['methods'][0]['profile']} "
             f"config, {report['methods'][0]['dataset_for_config']} sizes)" if report["methods"]
             else "## Training step and inference per method", "",
             "| method | variant | batch × LR patch (×k) | step s | speed-up | samples/s | GFLOP/step | "
             "achieved GFLOP/s | of peak | infer ms/slice | output MP/s | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in report["methods"]:
        for vname, r in m["variants"].items():
            lines.append(f"| {m['method']} | {vname} | {m['batch']} × {m['lr_patch']}² (×{m['scale']}) | "
                         f"{r['step_s']:.3f} | {r['speedup_vs_fp32_eager']:.2f}× | {r['samples_per_s']:.2f} | "
                         f"{m['flops_per_step'] / 1e9:.1f} | {r['achieved_flops_per_s'] / 1e9:.1f} | "
                         f"{r['fraction_of_peak']:.1%} | {r['infer_ms_per_slice']:.1f} | "
                         f"{r['infer_output_mp_per_s']:.2f} | {r['peak_rss_mib']:.0f} |")
    lines += ["", "## Data pipeline (lung-ct cached slices, the runner's sampler)", "",
              "| method | patches per step | s per step | share of the fastest step |", "|---|---|---|---|"]
    for m in report["methods"]:
        d = m["data_pipeline"]
        lines.append(f"| {m['method']} | {d['batch']} × ({d['lr_patch']}² + {d['hr_patch']}²) | "
                     f"{d['s_per_step'] * 1e3:.2f} ms | {m['data_fraction_of_fastest_step']:.2%} |")
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
    return "\n".join(lines) + "\n"


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
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    peaks = {"fp32": peak_flops(torch.float32), "bf16": peak_flops(torch.bfloat16)}
    prov = results.provenance(torch.device("cpu"))
    report = {"when": results.now(), "command": "python benchmarks/bench.py " + " ".join(sys.argv[1:]),
              "commit": prov["commit"], "dirty": prov["dirty"], "repeats": args.repeats,
              "warmup": args.warmup, "peak_n": 2048, "peak_flops": peaks,
              "hardware": {"cpu": prov["device_name"], "threads": prov["threads"], "device": "cpu",
                           "torch": torch.__version__, "python": platform.python_version(),
                           "packages": prov["packages"]},
              "methods": []}
    for name in [m for m in args.methods.split(",") if m]:
        report["methods"].append(bench_method(name, args, peaks))
    report["metric_tolerance"] = metric_tolerance(args)
    report["infer_scaling"] = None if args.skip_infer else infer_scaling(args)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    stem = args.out / f"bench-{platform.node()}-{stamp}"
    results.write_json(stem.with_suffix(".json"), report)
    results.write_text(stem.with_suffix(".md"), markdown(report))
    print(f"written: {stem}.json and .md")


if __name__ == "__main__":
    main()
