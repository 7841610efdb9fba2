"""Sweeps on an existing engine: each (method, preset, seed) of a `benchsr run` becomes its own
submitit job, on Slurm (`--launcher slurm`) or as local processes (`--launcher local --jobs J`,
J at a time, one GPU each where there are several). Every job writes its own run folder into the
shared results root, with the usual locks, so crash safety and resume hold; the leaderboard is
built when the jobs end (or by hand, `benchsr leaderboard`)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from benchsr import results
from benchsr.errors import BenchError
from benchsr.optional import OptionalModule
from benchsr.run import slurm
from benchsr.runtime.guards import Interrupted, exit_on_signals

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


class RunJob:
    """What each job calls. submitit ignores SIGTERM (it logs "Bypassing signal"), so scancel and
    requeue would let the run train on until SIGKILL: here SIGTERM stops it at once, its folder
    resumable. A job that Slurm requeued (a node lost, `scontrol requeue`) continues its own
    run. Near its time limit (USR2), `checkpoint` has submitit requeue the job, to go on there."""

    def __call__(self, spec: JobSpec) -> dict:
        with exit_on_signals(), _requeue_is_a_stop():
            return _run(spec)

    def checkpoint(self, spec: JobSpec):
        return submitit.helpers.DelayedSubmission(self, replace(spec, resume=True))


run_job = RunJob()


@contextlib.contextmanager
def _requeue_is_a_stop():
    """submitit's USR2 handler requeues the job, then calls sys.exit: a stop, not a failure."""
    previous = signal.getsignal(signal.SIGUSR2)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        yield
        return

    def requeue(signum, frame):
        try:
            previous(signum, frame)
        except SystemExit as exc:
            raise Interrupted(128 + signum) from exc
    signal.signal(signal.SIGUSR2, requeue)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR2, previous)


def _run(spec: JobSpec) -> dict:
    if spec.ranks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    from benchsr import config, registry
    from benchsr.runtime import distributed
    from benchsr.run.runner import Runner
    _threads_of_the_allocation(spec.ranks)
    resume = spec.resume or int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0
    name, _, preset = spec.method.partition(":")
    cls, ds_cls = registry.get("methods", name), registry.get("datasets", spec.dataset)
    cfg = config.resolve(cls, preset or "default", ds_cls, spec.profile, list(spec.overrides))
    distributed.init()
    data = ds_cls(cfg, Path(spec.data_dir) if spec.data_dir else None).read()
    env = submitit.JobEnvironment()
    job = {"launcher": env.cluster, "id": str(env.job_id)}
    outcome = Runner(data, Path(spec.out), None, ds_cls.provenance_packages, job).run(cls, cfg, resume)
    return {"label": outcome.label, "run_dir": str(outcome.run_dir), "status": outcome.status,
            "reason": outcome.reason}


def _threads_of_the_allocation(ranks: int) -> None:
    """torch would start a thread per core of the node, whatever the job was given; unless
    OMP_NUM_THREADS says otherwise, use the CPUs Slurm allocated to this task."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    per_task = os.environ.get("SLURM_CPUS_PER_TASK")
    on_node = os.environ.get("SLURM_CPUS_ON_NODE")
    n = int(per_task) if per_task else int(on_node) // max(1, ranks) if on_node else 0
    if n > 0:
        import torch
        torch.set_num_threads(n)


def executor(kind: str, folder: Path, plan: slurm.Plan | None = None):
    if kind == "local":
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(timeout_min=60 * 24 * 7)
        return ex
    ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    ex.update_parameters(**plan.executor_parameters())
    return ex


def _local_gpus() -> int:
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launch(specs: list[JobSpec], kind: str, out: Path, jobs: int = 1, wait: bool = True,
           plan: slurm.Plan | None = None) -> list[dict]:
    """Submit every spec (local: at most `jobs` at a time); record them in OUT/launch/; with
    `wait`, return each job's outcome. A submission the scheduler refuses cancels this launch's
    other jobs and leaves nothing behind: one line with the scheduler's words."""
    if kind not in ("local", "slurm"):
        raise BenchError(f"--launcher {kind}: expected local or slurm")
    if kind == "slurm" and shutil.which("srun") is None:   # submitit's error is a traceback
        raise BenchError("--launcher slurm: no srun on PATH (not a Slurm login node?)")
    if kind == "slurm":
        specs = [replace(spec, ranks=plan.tasks) for spec in specs]
    created = [p for p in (out, out / "launch") if not p.exists()]
    folder = _launch_folder(out)
    ex = executor(kind, folder / "submitit", plan)
    record, running, outcomes, gpus = [], [], [], _local_gpus()
    for i, spec in enumerate(specs):
        if kind == "local":
            while len(running) >= max(1, jobs):
                running = _reap(running, outcomes, kind)
            if gpus > 1:
                ex.update_parameters(visible_gpus=[i % gpus], gpus_per_node=1)
        try:
            with contextlib.redirect_stderr(io.StringIO()):   # submitit echoes sbatch's stderr
                job = ex.submit(run_job, spec)
        except submitit.core.utils.FailedJobError as exc:
            _withdraw(running, folder, created)
            raise BenchError(f"{kind}: the job of {spec.method} was refused, nothing was launched: "
                             f"{slurm.refusal(exc)}") from None
        running.append(job)
        record.append({**asdict(spec), "launcher": kind, "job_id": str(job.job_id),
                       "submitted": results.now()})
        results.write_json(folder / "jobs.json", record)
    if not wait:
        return []
    while running:
        running = _reap(running, outcomes, kind)
    return outcomes


def _launch_folder(out: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, n = out / "launch" / stamp, 1
    while folder.exists():               # two launches in one second keep their own records
        n += 1
        folder = out / "launch" / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder


def _withdraw(jobs: list, folder: Path, created: list[Path]) -> None:
    """Cancel what this launch already submitted and remove what it wrote."""
    for job in jobs:
        job.cancel(check=False)
    shutil.rmtree(folder, ignore_errors=True)
    for path in reversed(created):
        with contextlib.suppress(OSError):
            path.rmdir()


def _reap(running: list, outcomes: list, kind: str = "local") -> list:
    """Collect finished jobs; a job that crashed, or that the scheduler ended, outside the
    runner is a failed outcome that says how. On Slurm, squeue says whether a job is still
    there: submitit would ask sacct, which most small clusters do not have, and wait forever
    for a cancelled job's result."""
    time.sleep(0.5 if kind == "local" else 1)      # squeue at most once a second
    listed = slurm.queue() if kind == "slurm" else None
    left = []
    for job in running:
        tasks = [job.task(t) for t in range(job.num_tasks)] if job.num_tasks > 1 else [job]
        if _written(tasks):
            outcomes.append(_outcome(job))
            continue
        if kind == "local" or listed is None:      # the executor's own watcher decides
            if job.done():
                outcomes.append(_outcome(job))
            else:
                left.append(job)
            continue
        gone = slurm.ended(job.job_id, listed)
        if gone is None:
            left.append(job)
        elif _late_result(tasks):
            outcomes.append(_outcome(job))
        else:
            outcomes.append({"label": f"job {job.job_id}", "status": "failed", "run_dir": "",
                             "reason": f"Slurm ended it ({gone}) before it finished: `benchsr "
                                       f"status` shows its run, --resume continues it"})
    return left


def _written(tasks: list) -> bool:
    """Every task of the job wrote its result."""
    return all(t.paths.result_pickle.exists() for t in tasks)


def _late_result(tasks: list, wait_s: float = 10) -> bool:
    """A result written just before the job left the queue may take a moment on a shared disk."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if _written(tasks):
            return True
        time.sleep(0.5)
    return False


def _outcome(job) -> dict:
    """Rank 0's outcome (every rank of a data-parallel job returns one)."""
    try:
        return job.results()[0]
    except Exception as exc:  # noqa: BLE001 - the job died; say how, the others go on
        return {"label": f"job {job.job_id}", "status": "failed",
                "reason": str(exc).strip().splitlines()[-1][:300], "run_dir": ""}


def _abandoned(run_dir: Path) -> bool:
    """A run folder that says "running" while no process holds its lock (a SIGKILL, a crash)."""
    lock = results.RunLock(run_dir)
    if not lock.path.exists() or not lock.acquire():
        return False
    lock.release()
    return True


def status(out: Path) -> list[dict]:
    """Every run folder under OUT with its status, and launched jobs with no run folder yet. For
    Slurm jobs the scheduler is asked (squeue): waiting, running, requeued or ended."""
    if not out.is_dir():
        raise BenchError(f"{out}: no such results root")
    launched, lines = _launched(out), []
    listed = slurm.queue() if any(j.get("launcher") == "slurm" for j in launched) else None
    seen_jobs = set()
    for manifest in sorted(out.glob("runs/*/*/*/manifest.json")):
        m, problem = _manifest(manifest)
        if problem:                      # listed, never left out: the folder is there
            lines.append({"run": manifest.parent.name, "label": manifest.parent.parent.name,
                          "seed": "", "status": "damaged", "reason": problem})
            continue
        job = m.get("job") if isinstance(m.get("job"), dict) else {}
        seen_jobs.add(str(job.get("id")))
        state, reason = m.get("status"), m.get("reason", "")
        if state in ("running", "stopped"):      # a stopped run may be requeued already
            live = _live_state(manifest.parent, job, listed)
            if state == "running" or live[0] in ("requeued", "running"):
                state, reason = live
        lines.append({"run": manifest.parent.name, "label": m.get("label"), "seed": m.get("seed"),
                      "status": state, "reason": reason})
    started = {(str(line["label"]), line["seed"]) for line in lines}
    for j in launched:
        if "unreadable" in j:
            lines.append({"run": j["unreadable"], "label": "", "seed": "", "status": "unreadable",
                          "reason": j["reason"]})
            continue
        label, job_id, seed = j["label"], j["job_id"], j["seed"]
        has_run = any(lab.startswith(label) and s == seed for lab, s in started)
        state, reason = _job_state(j, listed)
        # a job whose run is listed above (or that a later job resumed) adds nothing
        if job_id not in seen_jobs and not (has_run and (j["launcher"] != "slurm" or state == "ended")):
            lines.append({"run": f"job {job_id}", "label": label, "seed": seed, "status": state,
                          "reason": reason})
    return lines


def _manifest(path: Path) -> tuple[dict, str]:
    """A run's manifest and '' , or {} and what is wrong with it."""
    try:
        m = results.read_json(path)
    except (OSError, ValueError) as exc:
        return {}, f"manifest.json is unreadable ({type(exc).__name__})"
    if not isinstance(m, dict):
        return {}, f"manifest.json is a {type(m).__name__}, not a mapping"
    seed = m.get("seed")
    wrong = [k for k, ok in (("label", isinstance(m.get("label"), str)),
                             ("status", isinstance(m.get("status"), str)),
                             ("seed", seed is None or isinstance(seed, int) and not isinstance(seed, bool)))
             if not ok]
    return m, ("manifest.json: " + ", ".join(f"{k} {m.get(k)!r}"[:40] for k in wrong)) if wrong else ""


def _launched(out: Path) -> list[dict]:
    """Each launched job of OUT/launch/*/jobs.json: label, seed, job id, launcher, log folder."""
    jobs = []
    for record in sorted(out.glob("launch/*/jobs.json")):
        try:
            for j in json.loads(record.read_text()):
                seed = next((o.split("=", 1)[1] for o in j["overrides"] if o.startswith("seed=")), "0")
                if not isinstance(j["method"], str) or not str(seed).lstrip("-").isdigit():
                    raise ValueError(f"an entry of method {j['method']!r}, seed {seed!r}")
                jobs.append({"label": j["method"].replace(":default", ""),
                             "job_id": str(j["job_id"]), "launcher": j.get("launcher", ""),
                             "seed": int(seed), "logs": str(record.parent.relative_to(out) / "submitit")})
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            jobs.append({"unreadable": str(record.relative_to(out)),
                         "reason": f"{type(exc).__name__}: {exc}"[:200]})
    return jobs


def _live_state(run_dir: Path, job: dict, listed: dict | None) -> tuple[str, str]:
    """A run whose manifest says "running" or "stopped": its job's state where the scheduler
    knows it, else whether a live process still holds its lock."""
    where = f"job {job.get('id')}"
    state, why = (listed or {}).get(str(job.get("id")), (None, ""))
    if job.get("launcher") == "slurm" and state in slurm.WAITING:
        return "requeued", f"{where} waits to run again ({why}); it continues this run"
    if state in slurm.ACTIVE:
        return "running", where
    if _abandoned(run_dir):
        how = f"{where} ended ({state.lower()})" if state else "no process holds it (killed?)"
        return "stopped", f"{how}: --resume continues it"
    return "running", ""


def _job_state(job: dict, listed: dict | None) -> tuple[str, str]:
    """A launched job with no run folder yet."""
    if job["launcher"] != "slurm":
        return "queued", ""
    if listed is None:
        return "submitted", "squeue did not answer: its state is unknown here"
    state, why = listed.get(job["job_id"], ("gone", ""))
    if state in slurm.WAITING:
        return "queued", f"Slurm: {state.lower()} ({why})"
    if state in slurm.ACTIVE:
        return "running", "starting (no run folder yet)"
    return "ended", (f"Slurm: {state.lower()}, " if state != "gone" else "") + \
        f"no run folder: see {job['logs']}/{job['job_id']}_0_log.err"
