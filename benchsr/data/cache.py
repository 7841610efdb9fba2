"""Preprocessed-volume cache: a second run memory-maps .npy files instead of re-reading DICOM or
NIfTI. Keys are the file's content hash plus the protocol, so an edited file or a new window
never reuses a stale array. Writes are atomic; a half-written entry is never read, and a damaged
one (its checksums disagree) is rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from benchsr.results import atomic_write_bytes, file_sha256

CACHE_ENV = "BENCHSR_CACHE"


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "benchsr"


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def content_hash(path: Path) -> str:
    """sha256 of a file, or of every file in a folder (a DICOM series). Memoised per
    (path, size, mtime), so unchanged files are hashed once."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    memo_path = cache_root() / "hashes.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    stamp = "||".join(_stamp(f) for f in files)
    key = hashlib.sha256(stamp.encode()).hexdigest()
    if key not in memo:
        memo[key] = file_sha256(*files)
        atomic_write_bytes(memo_path, json.dumps(memo).encode())
    return memo[key]


def protocol_key(protocol: dict) -> str:
    return hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:16]


def _read_entry(entry: Path) -> dict[str, np.ndarray] | str:
    """The entry's arrays, memory-mapped, each checked against the checksum its index holds;
    or why it cannot be used (a zeroed, truncated or missing file, an index without sums)."""
    try:
        sums = json.loads((entry / "index.json").read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable index ({exc})"
    if not isinstance(sums, dict):
        return "an index without checksums (made by an older benchsr)"
    arrays = {}
    for name, digest in sums.items():
        path = entry / f"{name}.npy"
        try:
            if file_sha256(path) != digest:
                return f"{name}.npy does not match its checksum"
            arrays[name] = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            return f"{name}.npy unreadable ({exc})"
    return arrays


def cached(source: Path, protocol: dict, build: Callable[[], dict[str, np.ndarray]]
           ) -> dict[str, np.ndarray]:
    """The arrays `build()` makes from `source` under `protocol`, memory-mapped from the cache
    when present and intact. Each array is its own .npy file in one entry folder; the index,
    written last, holds each file's SHA-256, and a damaged entry is rebuilt, with a warning."""
    entry = cache_root() / f"{content_hash(source)[:24]}-{protocol_key(protocol)}"
    if (entry / "index.json").is_file():
        found = _read_entry(entry)
        if not isinstance(found, str):
            return found
        logging.getLogger("benchsr").warning(f"volume cache entry {entry}: {found}; rebuilt")
        (entry / "index.json").unlink(missing_ok=True)
    arrays = build()
    entry.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, arr in arrays.items():
        tmp = entry / f".{name}.{os.getpid()}.tmp.npy"
        np.save(tmp, np.ascontiguousarray(arr))
        sums[name] = file_sha256(tmp)
        os.replace(tmp, entry / f"{name}.npy")
    atomic_write_bytes(entry / "index.json", json.dumps(sums, sort_keys=True).encode())   # last
    return {n: np.load(entry / f"{n}.npy", mmap_mode="r") for n in arrays}


class StackedSlices:
    """Several (z, H, W) arrays (memory-mapped volumes) seen as one stack of n slices, without
    copying: what PatchSampler needs ([z, ys, xs], `slice_shape(z)`). Volumes may differ in
    H and W (patients from different scanners): `.shape` then gives the smallest of each,
    the size every slice has at least."""

    def __init__(self, arrays: list[np.ndarray]):
        if not arrays:
            raise ValueError("no volume to stack")
        self.arrays = arrays
        self.offsets = np.cumsum([0] + [a.shape[0] for a in arrays])
        self.shape = (int(self.offsets[-1]), min(a.shape[1] for a in arrays),
                      min(a.shape[2] for a in arrays))

    def slice_shape(self, z: int) -> tuple[int, int]:
        i = int(np.searchsorted(self.offsets, z, side="right") - 1)
        return tuple(self.arrays[i].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        z, *rest = key if isinstance(key, tuple) else (key,)
        i = int(np.searchsorted(self.offsets, z, side="right") - 1)
        return self.arrays[i][(z - self.offsets[i], *rest)]
