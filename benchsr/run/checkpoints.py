"""Checkpoints that survive crashes and refuse code.

Each save writes checkpoints/last.pt atomically (temp + fsync + rename) after moving the previous
one to prev.pt, so a kill at any moment leaves at least one complete checkpoint. Loading uses
torch.load(weights_only=True): tensors and plain containers only, never pickled objects.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from benchsr.errors import BenchError
from benchsr.nn.weights import load_weights_only
from benchsr.results import atomic_write_bytes

NAMES = ("last.pt", "prev.pt")   # newest first


def save(folder: Path, state: dict, before_write=None) -> Path:
    buf = io.BytesIO()
    torch.save(state, buf)
    last, prev = folder / NAMES[0], folder / NAMES[1]
    folder.mkdir(parents=True, exist_ok=True)
    if last.is_file():
        os.replace(last, prev)
    if before_write is not None:
        before_write()           # fault injection: the moment only prev.pt exists
    atomic_write_bytes(last, buf.getvalue())
    return last


def load(path: Path, device: torch.device | str = "cpu") -> dict:
    """One checkpoint file, or a one-line BenchError saying why not."""
    if not path.is_file():
        raise BenchError(f"{path}: " + ("not a regular file (a folder, pipe or device)"
                                        if path.exists() else "no such checkpoint"))
    ckpt = load_weights_only(path, device, "checkpoint")
    if not isinstance(ckpt, dict) or "method" not in ckpt:
        raise BenchError(f"{path}: not a benchsr checkpoint (no 'method' state)")
    return ckpt


def load_latest(folder: Path, device) -> tuple[dict | None, Path | None, list[str]]:
    """The newest complete checkpoint in `folder` (last.pt, else prev.pt), with what was
    skipped and why; (None, None, skipped) when none could be loaded (skipped is empty when
    there was none to load)."""
    skipped = []
    for name in NAMES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            return load(path, device), path, skipped
        except BenchError as exc:
            skipped.append(str(exc))
    return None, None, skipped
