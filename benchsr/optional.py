"""Packages that only some work needs, imported when first used: a machine without one can
still import benchsr, list, train and score from prepared data, and the one command that needs
it fails with one line naming the package and what needs it."""
from __future__ import annotations

import importlib
from types import ModuleType

from benchsr.errors import BenchError


class OptionalModule:
    """Stands for module `name` until an attribute is read, then imports it (or raises). Its
    own names all start with _, so that none hides one of the module's (nibabel.load)."""

    def __init__(self, name: str, needed_for: str, pip: str = "", setup=None):
        self._name, self._needed_for, self._pip, self._setup = name, needed_for, pip or name, setup
        self._module: ModuleType | None = None

    def _import(self) -> ModuleType:
        if self._module is None:
            try:
                module = importlib.import_module(self._name)
            except ImportError as exc:
                top = self._name.split(".")[0]
                why = ("which is not installed" if exc.name in (top, self._name) else
                       f"which cannot be imported here ({exc})")
                raise BenchError(f"{self._needed_for} needs {top}, {why} "
                                 f"(pip install {self._pip})") from None
            if self._setup is not None:
                self._setup(module)
            self._module = module
        return self._module

    def __getattr__(self, attr: str):
        return getattr(self._import(), attr)
