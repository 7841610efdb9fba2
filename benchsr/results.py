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
import shutil
import subprocess
import tempfile
import uuid
from importlib import metadata
from pathlib import Path

import numpy as np
import yaml

from benchsr.config import load_yaml, upgrade
from benchsr.errors import BenchError
from benchsr.plugin_folders import SOURCE_ROOT

PACKAGES = ("torch", "torchvision", "basicsr-fixed", "lpips", "numpy", "SimpleITK", "pandas")


_UMASK = os.umask(0)
os.umask(_UMASK)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def file_sha256(*paths) -> str:
    """One SHA-256 over the bytes of `paths`, in order, read a MiB at a time."""
    import hashlib
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


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


def set_stats(summary: dict, group: str = "") -> dict:
    """A summary.json's per-metric stats of one evaluation set ("" = the primary one)."""
    return summary if not group else (summary.get("groups") or {}).get(group, {})


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_label(method: str, preset: str, variant: str = "") -> str:
    label = method if preset == "default" else f"{method}:{preset}"
    return f"{label} [{variant}]" if variant else label


def display_label(manifest: dict) -> str:
    """A run's label as tables show it: with what its environment changed in the recipe, e.g.
    `esrgan [perceptual=off]`, so such a row is never mistaken for the recipe as designed."""
    changes = manifest.get("recipe_changes") or {}
    tags = [f"{k}={v}" for k, v in sorted(changes.items())]
    if checkpoint_kind(manifest) == "best":     # best.py: scored apart from the last checkpoint
        tags.insert(0, BEST_TAG)
    tag = ", ".join(tags)
    return f"{manifest['label']} [{tag}]" if tag else manifest["label"]


BEST_TAG = "best-val"   # the label tag of a best-on-validation row
BEST_FOLDER = "best"    # a run folder's subfolder that scores that checkpoint (best.py)


def run_id(run_dir: Path) -> str:
    """A run folder's id (its UTC-stamped name); `<id>/best` for its best-on-validation folder."""
    run_dir = Path(run_dir)
    return f"{run_dir.parent.name}/{run_dir.name}" if run_dir.name == BEST_FOLDER else run_dir.name


def checkpoint_kind(manifest: dict) -> str:
    """Which checkpoint a run folder scores: "last" (the leaderboard's) or "best" (best.py)."""
    return (manifest.get("checkpoint") or {}).get("kind", "last")


def staging_folder(parent: Path, prefix: str) -> Path:
    """A hidden folder to build into before a rename, named by this host and process, after
    removing those of the same prefix whose process is gone (a kill -9 left them)."""
    host = re.sub(r"[^A-Za-z0-9]+", "", platform.node())[:20] or "host"
    for old in parent.glob(f"{prefix}*"):
        parts = old.name[len(prefix):].split("-")
        pid = int(parts[1]) if len(parts) > 2 and parts[0] == host and parts[1].isdigit() else None
        if pid is not None and not process_alive(pid):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{host}-{os.getpid()}-", dir=parent))


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def label_folder(root: Path, dataset: str, label: str) -> Path:
    return root / "runs" / dataset / re.sub(r"[^A-Za-z0-9._=,+-]+", "-", label).strip("-")


def same_config_runs(root: Path, dataset: str, label: str, config: dict):
    """Run folders of this label whose config.yaml equals `config`, newest first."""
    for run in sorted(label_folder(root, dataset, label).glob("*"), reverse=True):
        try:
            if upgrade(load_yaml((run / "config.yaml").read_text(), str(run))) == config:
                yield run
        except (OSError, ValueError, yaml.YAMLError, BenchError):   # unreadable: not the same
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

    def release(self, remove: bool = False) -> None:
        """Drop the lock; `remove` also deletes .lock, for a complete run that nothing will
        resume (unlinking a lock another process may still wait on is only safe then)."""
        if self._fh is not None:
            if remove:
                self.path.unlink(missing_ok=True)
            self._fh.close()     # closing drops the flock
            self._fh = None


def new_run_dir(root: Path, dataset: str, label: str, profile: str) -> tuple[Path, RunLock]:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    run = label_folder(root, dataset, label) / f"{stamp}-{profile}-{uuid.uuid4().hex[:6]}"
    run.mkdir(parents=True, exist_ok=False)   # unique id: concurrent runs never share a folder
    lock = RunLock(run)
    lock.acquire()
    return run, lock


def complete_run(root: Path, dataset: str, label: str, config: dict) -> Path | None:
    """The newest complete run of this exact config, if any."""
    for run in same_config_runs(root, dataset, label, config):
        try:
            if read_json(run / "manifest.json").get("status") == "complete":
                return run
        except (OSError, ValueError, AttributeError):
            continue
    return None


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


def cpu_name() -> str:
    """This machine's CPU model (/proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def code_version() -> dict:
    """The checked-out commit, and whether the code differs from it. Published run folders
    under results/ do not make the code dirty."""
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(dirty) if dirty is not None else None}


def provenance(device, packages: tuple[str, ...] = ()) -> dict:
    """Commit, versions (the harness's and `packages`, e.g. a dataset's), device and host."""
    import torch
    return {
        **code_version(),
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in (*PACKAGES, *packages)},
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "host": platform.node(),
    }


# ---- reading run folders back --------------------------------------------------------------------
def read_run(run_dir: Path) -> dict | None:
    """A finished (complete or failed) run folder: manifest, summary, cost, config and the
    primary set's per-image metrics; None while it is still being written or running."""
    import pandas as pd   # lazy: writing a run folder needs no pandas
    try:
        manifest = read_json(run_dir / "manifest.json")
    except (OSError, ValueError):
        return None   # being written by another process: only complete files are read
    manifest, problem = checked_manifest(manifest, run_dir)
    if manifest.get("status") not in ("complete", "failed"):
        return None   # still running (or killed mid-run): not a result yet
    rec = {"dir": run_dir, "manifest": manifest, "metrics": None, "all_metrics": None,
           "per_image": None, "per_volume": None}
    for name in ("summary", "cost"):
        try:
            rec[name] = read_json(run_dir / f"{name}.json")
        except (OSError, ValueError):
            rec[name] = {}
        if not isinstance(rec[name], dict):
            problem, rec[name] = problem or f"{name}.json is a {type(rec[name]).__name__}", {}
    problem = problem or cost_problem(rec["cost"])
    try:
        rec["config"] = upgrade(load_yaml((run_dir / "config.yaml").read_text(encoding="utf-8"),
                                          str(run_dir)) or {})
    except Exception:  # noqa: BLE001 - an unreadable config only loses the row's key detail
        rec["config"] = {}
    if problem:
        rec["cost"] = {}
        return _damaged(rec, f"damaged run folder: {problem}")
    if manifest["status"] != "complete":
        rec["summary"] = {}       # a failed run's scores (kept on disk to look at) are no result
    if manifest["status"] == "complete" and (run_dir / "metrics.csv").is_file():
        try:
            df = pd.read_csv(run_dir / "metrics.csv", dtype={"image": "string", "group": "string"})
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            return _damaged(rec, f"metrics.csv is unreadable ({str(exc).splitlines()[0][:80]})")
        lacking = [c for c in ("image", "group") if c not in df.columns]
        if lacking:
            return _damaged(rec, f"metrics.csv has no {' or '.join(lacking)} column: not a run's")
        problem = summary_problem(rec["summary"], df[df["group"].fillna("") == ""])
        if problem:
            return _damaged(rec, problem)
        rec["per_image"] = df                  # every evaluation set: the tables' statistics
        rec["all_metrics"] = df[df["group"].fillna("") == ""]
        rec["metrics"] = rec["all_metrics"].set_index("image")
        if (run_dir / "volumes.csv").is_file():   # per-volume measures (clinical.py)
            rec["per_volume"] = pd.read_csv(run_dir / "volumes.csv", dtype={
                "image": "string", "volume": "string", "group": "string"})
    return rec


def summary_problem(summary: dict, primary) -> str:
    """'' when summary.json's means are the means of metrics.csv's primary values; otherwise
    what disagrees (a hand-edited or damaged folder). Tables are built from the per-image
    values, so a summary that says otherwise is not trusted either way."""
    import pandas as pd
    from benchsr.evaluation.metrics import METRICS   # lazy: metrics imports torch
    for name, metric in METRICS.items():
        stat = summary.get(name) if isinstance(summary, dict) else None
        if metric.per_volume or name not in primary or not isinstance(stat, dict):
            continue
        given = stat.get("mean")
        values = pd.to_numeric(primary[name], errors="coerce")
        if values.isna().sum() > primary[name].isna().sum():
            return f"damaged run folder: metrics.csv has non-numeric {name} values"
        finite = values[np.isfinite(values)]
        if given is None and finite.empty:
            continue
        if not isinstance(given, (int, float)) or isinstance(given, bool) or not np.isfinite(given):
            return f"damaged run folder: summary.json gives {name} mean {given!r}"
        if finite.empty or abs(float(finite.mean()) - given) > 1e-6 * max(1.0, abs(given)):
            return (f"damaged run folder: summary.json gives {name} mean {given:.6g}, its "
                    f"metrics.csv {float(finite.mean()) if len(finite) else float('nan'):.6g}")
    return ""


# what the tables read from a manifest, and the types they need
_MANIFEST_TYPES = {"dataset": str, "label": str, "profile": str, "status": str, "protocol": dict,
                   "recipe_changes": dict, "notes": list, "method": str, "provenance": dict}


def checked_manifest(manifest, run_dir: Path) -> tuple[dict, str]:
    """(a manifest the tables can read, '' or what was wrong with it). A damaged one is
    rebuilt from the folder's place (runs/<dataset>/<label>/<run-id>) and marked failed."""
    fallback = {"dataset": run_dir.parent.parent.name, "label": run_dir.parent.name,
                "profile": "unknown", "seed": None, "status": "failed", "protocol": {}}
    if not isinstance(manifest, dict):
        return fallback, f"manifest.json is a {type(manifest).__name__}, not a mapping"
    wrong = [k for k, kind in _MANIFEST_TYPES.items()
             if (k in manifest or k in ("dataset", "label")) and not isinstance(manifest.get(k), kind)]
    seed = manifest.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        wrong.append("seed")
    if not wrong:
        return manifest, ""
    kept = {k: v for k, v in manifest.items() if k not in wrong}
    return ({**fallback, **kept, "status": "failed"},
            "manifest.json: " + ", ".join(f"{k} {manifest.get(k)!r}"[:60] for k in wrong))


def cost_problem(cost: dict) -> str:
    """'' when cost.json's measures are numbers (or null); else which is not."""
    bad = [k for k, v in cost.items() if k.endswith(("_s", "_mib", "_total", "_per_s", "_slice",
                                                     "_fraction", "_input", "_epoch", "_size"))
           and v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    if isinstance(cost.get("params"), dict):
        bad += [f"params.{k}" for k, v in cost["params"].items() if not isinstance(v, int)]
    elif "params" in cost:
        bad.append("params")
    return f"cost.json: {', '.join(bad)} not a number" if bad else ""


def _damaged(rec: dict, why: str) -> dict:
    """A folder whose files disagree: listed as a failed run with the reason, never ranked."""
    rec["manifest"] = {**rec["manifest"], "status": "failed", "reason": why}
    rec["summary"] = {}
    return rec


def run_folders(path: Path) -> set[Path]:
    """Every folder with a manifest.json under `path`, following symlinked folders (runs kept on
    another disk), each real folder once, and never round a loop."""
    found, seen = set(), set()
    for root, dirs, files in os.walk(path, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        if "manifest.json" in files:
            found.add(Path(root))
    return found


def finished_runs(paths: list[Path]) -> list[dict]:
    """read_run of every run folder under `paths` (results roots, run folders or anything
    between), oldest first (run ids start with a UTC timestamp)."""
    found = set()
    for path in paths:
        found |= run_folders(Path(path))
    records = (read_run(d) for d in sorted(found, key=run_id))
    return [rec for rec in records if rec is not None]
