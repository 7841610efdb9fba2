"""Sweeps on an existing engine: each (method, preset, seed) of a `benchsr run` becomes its own
submitit job, on Slurm (`--launcher slurm`) or as local processes (`--launcher local --jobs J`,
J at a time, one GPU each where there are several). Every job writes its own run folder into the
shared results root, with the usual locks, so crash safety and resume hold; the leaderboard is
built when the jobs end (or by hand, `benchsr leaderboard`)."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchsr import results
from benchsr.errors import BenchError
from benchsr.optional import OptionalModule

submitit = OptionalModule("submitit", "--launcher (sweeps as jobs)")


@dataclass
class JobSpec:
    """What a job needs, as plain values (it is pickled to another process or node)."""
    method: str          # name:preset
    dataset: str
    profile: str
    overrides: list
    out: str
    data_dir: str | None = None
    resume: bool = False
    ranks: int = 1       # > 1: the job is a data-parallel run of that many tasks


def run_job(spec: JobSpec) -> dict:
    """Inside the job: resolve, load the dataset, run; under several tasks, as torchrun would."""
    if spec.ranks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    from benchsr import config, registry
    from benchsr.runtime import distributed
    from benchsr.run.runner import Runner
    name, _, preset = spec.method.partition(":")
    cls, ds_cls = registry.get("methods", name), registry.get("datasets", spec.dataset)
    cfg = config.resolve(cls, preset or "default", ds_cls, spec.profile, list(spec.overrides))
    distributed.init()
    data = ds_cls(cfg, Path(spec.data_dir) if spec.data_dir else None).load()
    outcome = Runner(data, Path(spec.out), None, ds_cls.provenance_packages).run(cls, cfg, spec.resume)
    return {"label": outcome.label, "run_dir": str(outcome.run_dir), "status": outcome.status,
            "reason": outcome.reason}


def executor(kind: str, folder: Path, gpus_per_job: int = 0, partition: str | None = None,
             time_min: int = 0):
    if kind == "local":
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(timeout_min=time_min or 60 * 24 * 7)
        return ex
    if kind != "slurm":
        raise BenchError(f"--launcher {kind}: expected local or slurm")
    if not partition:
        raise BenchError("--launcher slurm needs --slurm-partition")
    if shutil.which("srun") is None:       # submitit raises a RuntimeError deep in its executor
        raise BenchError("--launcher slurm: no srun on PATH (not a Slurm login node?)")
    ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    ex.update_parameters(slurm_partition=partition, gpus_per_node=gpus_per_job,
                         tasks_per_node=max(1, gpus_per_job), nodes=1,
                         timeout_min=time_min or 60 * 24)
    return ex


def _local_gpus() -> int:
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launch(specs: list[JobSpec], kind: str, out: Path, jobs: int = 1, wait: bool = True,
           **slurm) -> list[dict]:
    """Submit every spec (local: at most `jobs` at a time); record them in OUT/launch/; with
    `wait`, return each job's outcome."""
    folder = out / "launch" / time.strftime("%Y%m%d-%H%M%S")
    ex = executor(kind, folder / "submitit", **slurm)
    record, running, outcomes, gpus = [], [], [], _local_gpus()
    for i, spec in enumerate(specs):
        if kind == "local":
            while len(running) >= max(1, jobs):
                running = _reap(running, outcomes)
            if gpus > 1:
                ex.update_parameters(visible_gpus=[i % gpus], gpus_per_node=1)
        job = ex.submit(run_job, spec)
        running.append(job)
        record.append({**asdict(spec), "job_id": str(job.job_id), "submitted": results.now()})
        results.write_json(folder / "jobs.json", record)
    if not wait:
        return []
    while running:
        running = _reap(running, outcomes)
    return outcomes


def _reap(running: list, outcomes: list) -> list:
    """Collect finished jobs; a job that crashed outside the runner is a failed outcome."""
    time.sleep(0.5)
    left = []
    for job in running:
        if not job.done():
            left.append(job)
            continue
        try:
            outcomes.append(job.result())
        except Exception as exc:  # noqa: BLE001 - the job died; say how, the others go on
            outcomes.append({"label": f"job {job.job_id}", "status": "failed",
                             "reason": str(exc).strip().splitlines()[-1][:300], "run_dir": ""})
    return left


def _abandoned(run_dir: Path) -> bool:
    """A run folder that says "running" while no process holds its lock (a SIGKILL, a crash)."""
    lock = results.RunLock(run_dir)
    if not lock.path.exists() or not lock.acquire():
        return False
    lock.release()
    return True


def status(out: Path) -> list[dict]:
    """Every run folder under OUT with its status, and launched jobs with no run folder yet."""
    if not out.is_dir():
        raise BenchError(f"{out}: no such results root")
    lines = []
    for manifest in sorted(out.glob("runs/*/*/*/manifest.json")):
        try:
            m = results.read_json(manifest)
        except (OSError, ValueError):
            continue
        if not isinstance(m, dict):
            continue
        state, reason = m.get("status"), m.get("reason", "")
        if state == "running" and _abandoned(manifest.parent):
            state, reason = "stopped", "no process holds it (killed?): --resume continues it"
        lines.append({"run": manifest.parent.name, "label": m.get("label"), "seed": m.get("seed"),
                      "status": state, "reason": reason})
    started = {(str(line["label"]), line["seed"]) for line in lines}
    for record in sorted(out.glob("launch/*/jobs.json")):
        try:
            jobs = json.loads(record.read_text())
            queued = [(str(j["method"]).replace(":default", ""), j["job_id"],
                       next((o.split("=", 1)[1] for o in j["overrides"] if o.startswith("seed=")), "0"))
                      for j in jobs]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            lines.append({"run": str(record.relative_to(out)), "label": "", "seed": "",
                          "status": "unreadable", "reason": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        for label, job_id, seed in queued:
            seed = int(seed) if str(seed).lstrip("-").isdigit() else seed
            if not any(lab.startswith(label) and s == seed for lab, s in started):
                lines.append({"run": f"job {job_id}", "label": label, "seed": seed,
                              "status": "queued", "reason": ""})
    return lines
