"""Plugin discovery: the built-in folders methods/ and datasets/, then installed entry points.

The folders are mounted by path as `benchsr.methods` / `benchsr.datasets` (plugin_folders.py).
Each plugin module exposes `PLUGINS = [SomeMethod, ...]`; an entry point (groups
`benchsr.methods`, `benchsr.datasets`) may name such a module or a class. A plugin that fails to import is recorded as broken with its error
and never stops the others.
"""
from __future__ import annotations

import importlib
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from benchsr.contracts import BenchError, Dataset, Method
from benchsr.plugin_folders import mount_builtin

KINDS = {"methods": Method, "datasets": Dataset}


@dataclass
class PluginEntry:
    name: str
    origin: str                 # "builtin:<folder>" or "entry-point:<dist>"
    cls: type | None = None
    error: str | None = None    # one line, when broken
    version: str = ""           # the distribution's version (benchsr's for built-ins)
    shadowed: list = field(default_factory=list)   # later plugins of the same name, not used

    @property
    def broken(self) -> bool:
        return self.cls is None


def _one_line(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}".replace("\n", " ")


def _plugins_of(obj, base: type) -> list[type]:
    if isinstance(obj, type):
        candidates = [obj]
    else:
        candidates = list(getattr(obj, "PLUGINS", []))
    found = [c for c in candidates if isinstance(c, type) and issubclass(c, base) and c.name]
    if not found:
        raise TypeError(f"no {base.__name__} subclass with a name (set PLUGINS = [...])")
    return found


def _add(table: dict[str, PluginEntry], entry: PluginEntry) -> None:
    """First one wins: a plugin cannot replace a built-in. The loser is kept on the winner's
    `shadowed` list, so `benchsr list` shows it instead of dropping it silently."""
    old = table.get(entry.name)
    if old is not None and old.cls is not None and old.cls is entry.cls:
        return   # a built-in found both in its folder and through its entry point
    if old is not None and not old.broken:
        old.shadowed.append(entry)
        return
    if old is not None:
        entry.shadowed.append(old)
    table[entry.name] = entry


def discover(kind: str) -> dict[str, PluginEntry]:
    base = KINDS[kind]
    table: dict[str, PluginEntry] = {}
    folder = mount_builtin(kind)
    if folder is not None:
        for sub in sorted(p for p in folder.iterdir() if (p / "__init__.py").is_file()):
            origin = f"builtin:{kind}/{sub.name}"
            try:
                module = importlib.import_module(f"benchsr.{kind}.{sub.name}")
                for cls in _plugins_of(module, base):
                    _add(table, PluginEntry(cls.name, origin, cls, version=_benchsr_version()))
            except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal
                _add(table, PluginEntry(sub.name, origin, error=_one_line(exc)))
    for ep in entry_points(group=f"benchsr.{kind}"):
        origin = f"entry-point:{ep.value}"
        version = getattr(ep.dist, "version", "") if getattr(ep, "dist", None) else ""
        try:
            for cls in _plugins_of(ep.load(), base):
                _add(table, PluginEntry(cls.name, origin, cls, version=version))
        except Exception as exc:  # noqa: BLE001
            _add(table, PluginEntry(ep.name, origin, error=_one_line(exc)))
    return table


def _benchsr_version() -> str:
    from benchsr.version import __version__
    return __version__


def describe(kind: str, cls: type) -> dict:
    """{name, origin, version} of a plugin class, for a run's provenance."""
    entry = discover(kind).get(cls.name)
    if entry is None or entry.cls is not cls:
        return {"name": cls.name, "origin": f"unregistered:{cls.__module__}", "version": ""}
    return {"name": entry.name, "origin": entry.origin, "version": entry.version}


def get(kind: str, name: str) -> type:
    table = discover(kind)
    singular = kind[:-1]
    if name not in table:
        known = ", ".join(sorted(n for n, e in table.items() if not e.broken)) or "none"
        raise BenchError(f"unknown {singular} '{name}' (available: {known})")
    entry = table[name]
    if entry.broken:
        raise BenchError(f"{singular} '{name}' is broken: {entry.error}")
    return entry.cls
