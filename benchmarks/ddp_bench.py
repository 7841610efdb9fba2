"""The data-parallel section of benchmarks/bench.py: one SR-CycleGAN training step with 2 gloo
ranks (torchrun, one thread each), gradients synchronised by per-net DDP (overlapping the
backward) and by the older flat all-reduce after the backward, the same global batch for both.

Run by bench.py as `torchrun --nproc_per_node=2 benchmarks/ddp_bench.py MODE ...`; rank 0 prints
one JSON line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]


def worker(profile: str, dataset: str, repeats: int) -> None:
    import torch

    from benchsr.runtime import distributed
    from steps_bench import build, median_time, random_batch
    from benchsr.contracts import TrainBatch

    world = distributed.init()
    method, cfg = build("srcyclegan", dataset, profile, "fp32", {}, torch.device("cpu"))
    for name, net in method.nets.items():
        method.nets[name] = distributed.wrap(net, torch.device("cpu"))
    full = random_batch(cfg, method.ctx.scale, False, torch.device("cpu"))
    part = world.shard(full.lr.shape[0])
    batch = TrainBatch(full.lr[part], full.hr[part])
    steps = iter(range(10 ** 6))
    s = median_time(lambda: method.train_step(batch, next(steps)), repeats, 2)
    if world.is_main:
        print("DDP_BENCH " + json.dumps({"mode": distributed.grad_sync(), "step_s": s,
                                          "global_batch": full.lr.shape[0],
                                          "lr_patch": full.lr.shape[-1], "ranks": world.size}))


def ddp_report(profile: str, dataset: str, repeats: int) -> dict:
    out = {"method": "srcyclegan", "profile": profile, "dataset_for_config": dataset,
           "backend": "gloo", "threads_per_rank": 1, "modes": {}}
    for mode in ("flat", "ddp"):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "BENCHSR_GRAD_SYNC": mode,
               "BENCHSR_DIST_BACKEND": "gloo"}
        res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              "--nproc_per_node=2", str(Path(__file__)), profile, dataset,
                              str(repeats)], env=env, capture_output=True, text=True)
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("DDP_BENCH ")]
        if res.returncode != 0 or not lines:
            raise RuntimeError(f"ddp bench ({mode}) failed: {res.stderr[-800:]}")
        out["modes"][mode] = json.loads(lines[-1][len("DDP_BENCH "):])
        print(f"  2 gloo ranks, grad sync {mode}: step {out['modes'][mode]['step_s']:.3f} s", flush=True)
    out["ddp_speedup_vs_flat"] = out["modes"]["flat"]["step_s"] / out["modes"]["ddp"]["step_s"]
    return out


def markdown(rep: dict) -> list[str]:
    first = rep["modes"]["flat"]
    return ["", f"## Data-parallel step: 2 gloo ranks ({rep['method']}, {rep['profile']} config, "
                f"{rep['dataset_for_config']} sizes, global batch {first['global_batch']} × "
                f"{first['lr_patch']}², 1 thread per rank)", "",
            "| gradient sync | step s |", "|---|---|",
            f"| flat all-reduce after the backward (before) | {rep['modes']['flat']['step_s']:.3f} |",
            f"| one DDP per net, overlapping the backward (after) | {rep['modes']['ddp']['step_s']:.3f} |",
            "", f"DDP against flat: **{rep['ddp_speedup_vs_flat']:.2f}×**."]


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))
