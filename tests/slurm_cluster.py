"""A one-node Slurm cluster for the tests (Debian's slurm-wlm and munge, as root): its own munge
key and socket, a slurm.conf made from this machine's CPUs and memory, and its own ports, all in
one folder, so that it never touches a cluster the machine may already belong to.

    python tests/slurm_cluster.py up DIR     # prints the `export SLURM_CONF=...` to use
    python tests/slurm_cluster.py down DIR
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
PARTITION = "debug"
MAX_MINUTES = 600    # the partition's time limit; EnforcePartLimits makes sbatch refuse more


def unavailable() -> str | None:
    """Why a cluster cannot start here, or None."""
    if os.geteuid() != 0:
        return "a one-node Slurm needs root (munged, slurmctld and slurmd run as root here)"
    missing = [d for d in (*DAEMONS, "sbatch", "squeue", "sinfo", "scontrol")
               if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if missing:
        return f"missing {', '.join(missing)}: `bash scripts/setup.sh --test` installs slurm-wlm and munge"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hardware() -> str:
    """`slurmd -C`'s own node line (CPUs, sockets, cores, memory), so slurmd never drains the
    node for a mismatch."""
    line = subprocess.run([_bin("slurmd"), "-C"], capture_output=True, text=True,
                          timeout=30).stdout.splitlines()[0]
    return " ".join(f for f in line.split() if not f.startswith("NodeName="))


def _bin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def write_conf(folder: Path) -> Path:
    host = socket.gethostname().split(".")[0]
    lines = [
        "ClusterName=benchsr-test", f"SlurmctldHost={host}(127.0.0.1)",
        "SlurmUser=root", "SlurmdUser=root",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={folder}/munge.sock",
        f"StateSaveLocation={folder}/state", f"SlurmdSpoolDir={folder}/spool",
        f"SlurmctldPidFile={folder}/slurmctld.pid", f"SlurmdPidFile={folder}/slurmd.pid",
        f"SlurmctldLogFile={folder}/slurmctld.log", f"SlurmdLogFile={folder}/slurmd.log",
        # no cgroups: processes are tracked by their parent, tasks are not bound
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
        "SchedulerType=sched/backfill", "MpiDefault=none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none", "ReturnToService=2", "EnforcePartLimits=ALL",
        "KillWait=10", "MinJobAge=300",
        f"NodeName={host} NodeAddr=127.0.0.1 {_hardware()} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime={MAX_MINUTES} State=UP",
    ]
    conf = folder / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def up(folder: Path, timeout: float = 60) -> dict:
    """Start munged, slurmctld and slurmd; return the environment that reaches them."""
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool"):
        (folder / sub).mkdir(exist_ok=True)
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = write_conf(folder)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run([_bin("munged"), "--force", f"--socket={folder}/munge.sock",
                    f"--key-file={key}", f"--log-file={folder}/munged.log",
                    f"--pid-file={folder}/munged.pid", f"--seed-file={folder}/munged.seed"],
                   check=True, timeout=30)
    subprocess.run([_bin("slurmctld"), "-c", "-f", str(conf)], check=True, env=env, timeout=30)
    subprocess.run([_bin("slurmd"), "-f", str(conf)], check=True, env=env, timeout=30)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                               env=env, timeout=30).stdout.strip()
        if state in ("idle", "mix", "alloc"):
            return {"SLURM_CONF": str(conf)}
        time.sleep(0.5)
    down(folder)
    logs = "".join((folder / f"{d}.log").read_text()[-500:] for d in DAEMONS[1:]
                   if (folder / f"{d}.log").exists())
    raise RuntimeError(f"the one-node Slurm in {folder} did not come up: {logs}")


def down(folder: Path) -> None:
    """Stop the daemons (their jobs die with slurmd's steps)."""
    for daemon in ("slurmd", "slurmctld", "munged"):
        pid_file = folder / f"{daemon}.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            continue
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)


def squeue_empty(env: dict, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-t", "PD,R,CG"], capture_output=True, text=True,
                             env={**os.environ, **env}, timeout=30).stdout
        if not out.strip():
            return True
        time.sleep(0.5)
    return False


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("up", "down"):
        sys.exit(__doc__)
    where = Path(sys.argv[2]).resolve()
    if sys.argv[1] == "down":
        down(where)
    else:
        why = unavailable()
        if why:
            sys.exit(why)
        print(f"export SLURM_CONF={up(where)['SLURM_CONF']}")
