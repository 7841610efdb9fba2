"""Experiment files for `benchsr run --config FILE`: a run's saved config.yaml (a replay) or any
part of one (`model: {lr: 1.0e-4}`), which may inherit from other files with `_base_:` (a path,
or a list of paths, relative to the file), as MMEngine's configs do. Later files win over their
bases; `--set` wins over the file. Identity keys (method, preset, dataset, profile) are
optional and name the run when the command line does not."""
from __future__ import annotations

from pathlib import Path

import yaml

from benchsr import config
from benchsr.errors import BenchError

BASE_KEY = "_base_"


def read(path: Path) -> dict:
    """The file merged over its bases, in order; a base that includes itself is an error, and
    so is a file that sets nothing (it would run every method at the defaults)."""
    doc = _read(Path(path), ())
    if not doc:
        raise BenchError(f"--config {path}: sets no key (an empty experiment file)")
    return doc


def _read(path: Path, chain: tuple[Path, ...]) -> dict:
    where = path.resolve()
    if where in chain:
        raise BenchError(f"--config {path}: _base_ includes itself ("
                         + " -> ".join(p.name for p in (*chain, where)) + ")")
    if not path.is_file():
        what = "not a regular file (a folder, pipe or device)" if path.exists() else "no such file"
        raise BenchError(f"--config {path}: {what}" + (f" (a _base_ of {chain[-1]})" if chain else ""))
    doc = config.read_yaml(path)
    bases = doc.pop(BASE_KEY, None) or []
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise BenchError(f"{path}: _base_ must be a path or a list of paths")
    merged: dict = {}
    for base in bases:
        merged = config.deep_merge(merged, _read(path.parent / base, (*chain, where)))
    return config.deep_merge(merged, doc)


def identity(doc: dict, path: Path) -> dict:
    """The identity keys the file gives, checked to be strings."""
    found = {k: doc[k] for k in config.IDENTITY_KEYS if k in doc}
    bad = [k for k, v in found.items() if not isinstance(v, str)]
    if bad:
        raise BenchError(f"--config {path}: {', '.join(bad)} must be a name")
    if "preset" in found and "method" not in found:
        raise BenchError(f"--config {path}: a preset without a method")
    return found


def overrides(doc: dict, method_cls, preset: str, dataset_cls, profile: str, path: Path) -> list[str]:
    """The file's keys as --set items, those that differ from what the method, preset, dataset
    and profile resolve to today. An unknown key is an error with the nearest known keys."""
    fresh = config.flatten(config.resolve(method_cls, preset, dataset_cls, profile, []))
    items = []
    for key, value in config.flatten({k: v for k, v in doc.items()
                                      if k not in config.IDENTITY_KEYS}).items():
        if key not in fresh:
            raise BenchError(f"--config {path}: unknown config key '{key}' for "
                             f"{method_cls.name}:{preset}{config.did_you_mean(key, fresh)}")
        if fresh[key] != value:
            dumped = yaml.safe_dump(value, default_flow_style=True).strip()
            items.append(f"{key}={dumped.removesuffix('...').strip()}")
    return items

