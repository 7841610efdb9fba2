"""The training-step section of benchmarks/bench.py: each method's step and inference at a
profile's config, every fast path against plain fp32 eager in the same process, FLOPs and the
share of the device's measured peak, and the data pipeline's share of a step."""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchsr import config, registry
from benchsr.evaluation import cost
from benchsr.run import fastpaths
from benchsr.contracts import RunContext, TrainBatch
from benchsr.data.patches import PatchSampler
from benchsr.run.training import seed_epoch

# (precision, runtime overrides): each against "fp32 eager" in the same process
VARIANTS = {
    "fp32 eager": ("fp32", {}),
    "bf16": ("bf16", {}),
    "bf16 + channels_last": ("bf16", {"channels_last": True}),
    "bf16 + channels_last + fused optim": ("bf16", {"channels_last": True, "optimizer": "fused"}),
    "bf16 + compile": ("bf16", {"compile": True}),
}
SHORT = ("fp32 eager", "bf16 + channels_last")   # methods outside --all-variants


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, repeats: int, warmup: int, device=torch.device("cpu")) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_flops(dtype: torch.dtype, device: torch.device, n: int = 2048) -> float:
    """FLOP/s of a large matmul in `dtype`: the device's practical peak for that precision."""
    a, b = (torch.rand(n, n, dtype=dtype, device=device) for _ in range(2))
    return 2 * n ** 3 / median_time(lambda: a @ b, repeats=5, warmup=2, device=device)


def build(method: str, dataset: str, profile: str, precision: str, runtime: dict,
          device: torch.device, extra=()):
    cls, ds_cls = registry.get("methods", method), registry.get("datasets", dataset)
    cfg = config.resolve(cls, "default", ds_cls, profile, [f"precision={precision}", *extra])
    cfg["runtime"].update(runtime)
    ctx = RunContext(device=device, precision=precision, scale=ds_cls.scale,
                     channels=1, epochs=int(cfg["train"]["epochs"]))
    seed_epoch(0, -1)
    m = cls(cfg, ctx)
    m.build()
    fastpaths.apply(m, cfg["runtime"], ctx)
    return m, cfg


def random_batch(cfg: dict, scale: int, channels_last: bool, device: torch.device) -> TrainBatch:
    bs, p = int(cfg["train"]["batch_size"]), int(cfg["train"]["lr_patch"])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    return TrainBatch(torch.rand(bs, 1, p, p, generator=g).to(device).contiguous(memory_format=fmt),
                      torch.rand(bs, 1, p * scale, p * scale, generator=g).to(device)
                      .contiguous(memory_format=fmt))


def _variant(name: str, vname: str, args, device: torch.device, out: dict, peaks: dict) -> dict:
    precision, runtime = VARIANTS[vname]
    m, cfg = build(name, args.dataset, args.profile, precision, runtime, device)
    k = m.ctx.scale
    batch = random_batch(cfg, k, runtime.get("channels_last", False), device)
    step = iter(range(10 ** 6))
    memory = cost.PeakMemory(device)
    t0 = time.perf_counter()
    m.train_step(batch, next(step))          # the first step (with compile: the compile)
    sync(device)
    first = time.perf_counter() - t0
    # compiled graphs may recompile once more on the second step (requires_grad toggles)
    warmup = max(args.warmup, 2 if runtime.get("compile") else 0)
    t = median_time(lambda: m.train_step(batch, next(step)), args.repeats, warmup, device)
    row = {"precision": precision, "runtime": runtime, "step_s": t, "first_step_s": first,
           "samples_per_s": batch.lr.shape[0] / t, "peak_memory_mib": memory.read_mib(),
           "peak_memory_kind": memory.kind}
    if vname == "fp32 eager":
        counter = FlopCounterMode(display=False)
        with counter:
            m.train_step(batch, next(step))
        out["flops_per_step"] = int(counter.get_total_flops())
        out["params"] = sum(p.numel() for net in m.nets.values() for p in net.parameters())
        out["batch"], out["lr_patch"], out["scale"] = batch.lr.shape[0], batch.lr.shape[-1], k
        out["cfg"] = cfg
    row["achieved_flops_per_s"] = out["flops_per_step"] / t
    row["fraction_of_peak"] = row["achieved_flops_per_s"] / peaks[precision]
    lr = torch.rand(1, 1, args.infer_lr, args.infer_lr, device=device)
    if runtime.get("channels_last"):
        lr = lr.contiguous(memory_format=torch.channels_last)
    m.train(False)
    with torch.no_grad(), m.ctx.autocast():
        ti = median_time(lambda: m.super_resolve(lr), args.repeats, 1, device)
    row["infer_ms_per_slice"] = ti * 1e3
    row["infer_output_mp_per_s"] = (args.infer_lr * k) ** 2 / 1e6 / ti
    print(f"  {name:11s} {vname:36s} step {t:7.3f} s (first {first:6.1f} s)  infer {ti * 1e3:8.1f} ms",
          flush=True)
    return row


def bench_method(name: str, args, peaks: dict, device: torch.device, load_data) -> dict:
    out = {"method": name, "dataset_for_config": args.dataset, "profile": args.profile,
           "device": str(device), "variants": {}}
    names = VARIANTS if name in args.all_variants.split(",") else SHORT
    for vname in names:
        out["variants"][vname] = _variant(name, vname, args, device, out, peaks)
    base = out["variants"]["fp32 eager"]["step_s"]
    for row in out["variants"].values():
        row["speedup_vs_fp32_eager"] = base / row["step_s"]
    out["fastest"] = min(out["variants"], key=lambda v: out["variants"][v]["step_s"])
    cfg = out.pop("cfg")
    try:
        data = load_data()
    except Exception as exc:   # a bare GPU machine without the embedded CT
        out["data_pipeline"] = {"skipped": f"{type(exc).__name__}: {exc}"}
        return out
    out["data_pipeline"] = data_pipeline(cfg, out["scale"], args, data)
    out["data_fraction_of_fastest_step"] = (out["data_pipeline"]["s_per_step"]
                                            / out["variants"][out["fastest"]]["step_s"])
    return out


def data_pipeline(cfg: dict, k: int, args, data) -> dict:
    """Sampling the LR and HR patches of one step from the cached, memory-mapped lung-ct slices
    (the runner's own sampler), with the copy into a tensor."""
    bs, p = int(cfg["train"]["batch_size"]), int(cfg["train"]["lr_patch"])
    lr_s, hr_s = PatchSampler(data.train_lr, p), PatchSampler(data.train_hr, min(p * k, 512))
    rng = np.random.default_rng(0)
    t = median_time(lambda: (torch.from_numpy(lr_s.sample(bs, rng)[0]),
                             torch.from_numpy(hr_s.sample(bs, rng)[0])), max(args.repeats, 10), 2)
    return {"s_per_step": t, "lr_patch": p, "hr_patch": min(p * k, 512), "batch": bs}


def steps_markdown(methods: list[dict]) -> list[str]:
    first = methods[0]
    lines = ["", f"## Training step and inference per method ({first['profile']} config, "
                 f"{first['dataset_for_config']} sizes, {first['device']})", "",
             "| method | variant | batch × LR patch (×k) | step s | first step s | speed-up | "
             "samples/s | GFLOP/step | achieved GFLOP/s | of peak | infer ms/slice | output MP/s | "
             "peak memory MiB |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in methods:
        for vname, r in m["variants"].items():
            fastest = " **(fastest)**" if vname == m["fastest"] else ""
            lines.append(
                f"| {m['method']} | {vname}{fastest} | {m['batch']} × {m['lr_patch']}² (×{m['scale']}) | "
                f"{r['step_s']:.3f} | {r['first_step_s']:.1f} | {r['speedup_vs_fp32_eager']:.2f}× | "
                f"{r['samples_per_s']:.2f} | {m['flops_per_step'] / 1e9:.1f} | "
                f"{r['achieved_flops_per_s'] / 1e9:.1f} | {r['fraction_of_peak']:.1%} | "
                f"{r['infer_ms_per_slice']:.1f} | {r['infer_output_mp_per_s']:.2f} | "
                f"{r['peak_memory_mib']:.0f} |")
    lines += ["", "## Data pipeline (lung-ct cached slices, the runner's sampler)", "",
              "| method | patches per step | s per step | share of the fastest step |", "|---|---|---|---|"]
    for m in methods:
        d = m["data_pipeline"]
        if "skipped" in d:
            lines.append(f"| {m['method']} | skipped: {d['skipped']} | – | – |")
            continue
        lines.append(f"| {m['method']} | {d['batch']} × ({d['lr_patch']}² + {d['hr_patch']}²) | "
                     f"{d['s_per_step'] * 1e3:.2f} ms | {m['data_fraction_of_fastest_step']:.2%} |")
    return lines
