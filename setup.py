"""Packaging beside pyproject.toml: the top-level methods/ and datasets/ folders (the layout users
know) go into the wheel as benchsr.methods and benchsr.datasets, never as a top-level `datasets`
(which would shadow Hugging Face's). Every plugin folder is found here, so adding one needs no edit."""
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
ROOMS = sorted(p.name for p in (ROOT / "benchsr").iterdir() if (p / "__init__.py").is_file())


def plugin_packages(kind: str) -> list[str]:
    folders = sorted(p.name for p in (ROOT / kind).iterdir() if (p / "__init__.py").is_file())
    return [f"benchsr.{kind}", *(f"benchsr.{kind}.{name}" for name in folders)]


setup(
    packages=["benchsr", *(f"benchsr.{room}" for room in ROOMS), *plugin_packages("methods"),
              *plugin_packages("datasets")],
    package_dir={"benchsr": "benchsr", "benchsr.methods": "methods",
                 "benchsr.datasets": "datasets"},
)
