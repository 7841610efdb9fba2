"""The built-in plugin packages benchsr.methods and benchsr.datasets: installed ones (a wheel maps
the repo folders methods/ and datasets/ to them, see setup.py), or, in a bare source checkout,
the folders mounted by path. Never a top-level `datasets`, which would shadow Hugging Face's."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def mount_builtin(kind: str) -> Path | None:
    """The folder of the package `benchsr.<kind>`, importing it (installed) or mounting the
    folder <kind>/ beside benchsr/ (a source checkout); None when neither exists."""
    name = f"benchsr.{kind}"
    if name in sys.modules:
        return Path(list(sys.modules[name].__path__)[0])
    folder = SOURCE_ROOT / kind
    if not (folder / "__init__.py").is_file():
        try:   # a wheel: the package is installed beside benchsr
            return Path(list(importlib.import_module(name).__path__)[0])
        except ModuleNotFoundError:
            return None
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return folder
