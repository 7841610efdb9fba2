"""What the launcher asks Slurm itself: the partitions and their GPUs (sinfo), the state of its
jobs (squeue, which needs no accounting database, where sacct does), and sbatch's own words when
it refuses a job. Every query is one short command; one that cannot run answers None."""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field

from benchsr.errors import BenchError

# the states of a job that has not ended; any other (or none: purged) means it ended
WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESV_DEL_HOLD",
           "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT"}
ACTIVE = {"RUNNING", "COMPLETING"}
# options the launcher sets from its own flags: --slurm-option may not set them behind its back
OWN_OPTIONS = {"partition": "--slurm-partition", "p": "--slurm-partition",
               "time": "--slurm-time", "t": "--slurm-time",
               "gpus-per-node": "--slurm-gpus-per-job", "gres": "--slurm-gpus-per-job",
               "gpus": "--slurm-gpus-per-job", "ntasks-per-node": "--slurm-tasks-per-job",
               "ntasks": "--slurm-tasks-per-job", "nodes": "one node per job", "N": "one node per job",
               "output": "the launch folder", "error": "the launch folder",
               "signal": "submitit", "open-mode": "submitit", "array": "one job per run"}
DAY = 60 * 24            # minutes per job unless --slurm-time or the partition says less
OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


def _ask(*cmd: str) -> str | None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


def partitions() -> dict[str, dict] | None:
    """{name: {"default": bool, "gpus": bool}} from sinfo; None where sinfo cannot answer."""
    out = _ask("sinfo", "-h", "-o", "%P|%G|%l")
    if out is None:
        return None
    found: dict[str, dict] = {}
    for line in out.splitlines():
        name, _, rest = line.strip().partition("|")
        gres, _, limit = rest.partition("|")
        if not name:
            continue
        part = found.setdefault(name.rstrip("*"), {"default": False, "gpus": False,
                                                   "max_min": minutes(limit)})
        part["default"] |= name.endswith("*")
        part["gpus"] |= "gpu" in gres
    return found


def minutes(limit: str) -> int | None:
    """Slurm's time format ([D-]HH:MM:SS, MM:SS, "infinite") in whole minutes; None: no limit."""
    limit = limit.strip()
    days, _, clock = limit.rpartition("-") if "-" in limit else ("0", "", limit)
    try:
        parts = [int(x) for x in clock.split(":")]
        days_n = int(days or 0)
    except ValueError:
        return None
    h, m, sec = ([0] * (3 - len(parts)) + parts)[-3:] if len(parts) > 1 else (0, parts[0], 0)
    return days_n * 1440 + h * 60 + m + (sec > 0)


@dataclass
class Plan:
    """Where and how each job runs: one node, `tasks` ranks, `gpus` GPUs."""
    partition: str | None
    gpus: int
    tasks: int
    time_min: int
    options: dict = field(default_factory=dict)
    why: str = ""

    def executor_parameters(self) -> dict:
        params = {"gpus_per_node": self.gpus, "tasks_per_node": self.tasks, "nodes": 1,
                  "timeout_min": self.time_min or DAY,
                  "slurm_additional_parameters": dict(self.options)}
        if self.partition:
            params["slurm_partition"] = self.partition
        return params


def plan(partition: str | None = None, gpus_per_job: int | None = None,
         tasks_per_job: int | None = None, time_min: int = 0, options=()) -> Plan:
    """Check what can be checked before anything is submitted or written: the partition exists
    (else the cluster's default), it has GPUs if GPUs are asked for, the site options parse."""
    extra = parse_options(options)
    known, limit = partitions(), None
    why = []
    if known is not None:
        if partition is None:
            partition = next((name for name, p in known.items() if p["default"]), None)
            if partition is None:
                raise BenchError("--launcher slurm: this cluster has no default partition; name one "
                                 f"with --slurm-partition ({', '.join(known) or 'sinfo lists none'})")
            why.append(f"partition {partition} (the cluster's default)")
        elif partition not in known:
            raise BenchError(f"--slurm-partition {partition}: no such partition (sinfo lists "
                             f"{', '.join(known) or 'none'})")
        else:
            why.append(f"partition {partition}")
        offers, limit = known[partition]["gpus"], known[partition]["max_min"]
        if gpus_per_job is None:
            gpus_per_job = 1 if offers else 0
            why.append("GPUs: 1 per job" if offers else "no GPUs on it: each job runs on CPUs")
        elif gpus_per_job > 0 and not offers:
            raise BenchError(f"partition {partition} offers no GPUs (sinfo shows no gpu gres): "
                             f"--slurm-gpus-per-job 0 runs each job on its CPUs")
    elif gpus_per_job is None:
        gpus_per_job = 0
        why.append("sinfo did not answer: no GPUs asked for (--slurm-gpus-per-job N asks for N)")
    tasks = tasks_per_job or max(1, gpus_per_job)
    why.append(f"{tasks} task(s) per job" + (", data-parallel" if tasks > 1 else ""))
    if not time_min:
        time_min = min(limit or DAY, DAY) if known is not None else DAY
        why.append(f"{time_min} min per job ({'the partition limit' if time_min < DAY else 'a day'}"
                   f"; --slurm-time sets it)")
    return Plan(partition, gpus_per_job, tasks, time_min, extra, "; ".join(why))


def parse_options(options) -> dict:
    """--slurm-option KEY=VALUE (repeatable): any sbatch long option, passed through as
    `#SBATCH --KEY=VALUE` (account, qos, constraint, mem, ...)."""
    extra = {}
    for item in options:
        key, sep, value = str(item).partition("=")
        key = key.strip().lstrip("-")
        if not sep or not OPTION.match(key) or "\n" in value:
            raise BenchError(f"--slurm-option {item!r}: expected KEY=VALUE, an sbatch long option "
                             f"such as account=mylab or mem=16G")
        if key in OWN_OPTIONS:
            raise BenchError(f"--slurm-option {key}: set by {OWN_OPTIONS[key]}, not here")
        extra[key] = value
    return extra


def queue() -> dict[str, tuple[str, str]] | None:
    """{job id: (state, reason)} for this user's jobs that squeue still lists; None where squeue
    cannot answer. Ended jobs drop out after the cluster's MinJobAge."""
    out = _ask("squeue", "-h", "-t", "all", "-u", _user(), "-o", "%i|%T|%r")
    if out is None:
        return None
    listed = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            listed[parts[0]] = (parts[1], parts[2])
    return listed


def _user() -> str:
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def ended(job_id: str, listed: dict | None) -> str | None:
    """The job's final state if it has ended ("gone" once squeue forgets it); None while it
    waits or runs, or when squeue cannot answer."""
    if listed is None:
        return None
    state = listed.get(str(job_id), ("gone", ""))[0]
    return None if state in WAITING | ACTIVE else state


def refusal(exc: Exception) -> str:
    """sbatch's own words from submitit's FailedJobError, on one line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    said = [ln for ln in lines if ln.startswith("sbatch:")] or lines[-1:]
    return "; ".join(dict.fromkeys(said))[:400] or type(exc).__name__
