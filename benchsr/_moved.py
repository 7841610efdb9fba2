"""Old flat module paths, kept importable for plugins outside the project: `benchsr.volumes` is
`benchsr.data.volumes`, the same module object (so a monkeypatch through either name is seen by
both). New code imports the new paths."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "distributed": "runtime", "devices": "runtime", "guards": "runtime",
    "fastpaths": "run",
    "volumes": "data", "cache": "data", "patches": "data", "embedded": "data",
    "blocks": "nn", "losses": "nn", "gan": "nn", "schedules": "nn", "weights": "nn",
    "evaluate": "evaluation", "tiling": "evaluation", "metrics": "evaluation",
    "clinical": "evaluation", "uncertainty": "evaluation", "cost": "evaluation",
    "external": "evaluation",
    "runner": "run", "training": "run", "reporting": "run", "checkpoints": "run",
    "runlog": "run", "launch": "run", "best": "run", "infer": "run",
    "rows": "report", "tables": "report", "publish": "report", "figures": "report",
    "claims": "report", "curves": "report", "reproduce": "report",
    "cli_common": "cli.common", "cli_models": "cli.models",
}


def new_name(old: str) -> str | None:
    """`benchsr.volumes` -> `benchsr.data.volumes`; None for a name that did not move."""
    short = old.removeprefix("benchsr.")
    if short == old or short not in MOVED:
        return None
    room = MOVED[short]
    return f"benchsr.{room}" if "." in room else f"benchsr.{room}.{short}"


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if new_name(fullname) else None

    def create_module(self, spec):
        return None     # a throwaway module; exec_module puts the real one in its place

    def exec_module(self, module):
        # the import system hands back whatever sys.modules holds under the old name
        sys.modules[module.__name__] = importlib.import_module(new_name(module.__name__))


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())   # before any finder that knows the old files
