"""The commands (`benchsr ...`): `main` builds the app (common.py) with every command (main.py,
models.py) and turns a BenchError into one line and exit 2."""
from benchsr.cli.common import app
from benchsr.cli.main import main

__all__ = ["app", "main"]
