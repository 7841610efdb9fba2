"""Mount the repo folders methods/ and datasets/ as the packages benchsr.methods and
benchsr.datasets (never as a top-level `datasets`, which would shadow Hugging Face's)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def mount_builtin(kind: str) -> Path | None:
    """Make `benchsr.<kind>` importable from the folder <kind>/ beside benchsr/ (idempotent)."""
    folder = SOURCE_ROOT / kind
    name = f"benchsr.{kind}"
    if name in sys.modules:
        return folder
    if not (folder / "__init__.py").is_file():
        return None
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return folder
