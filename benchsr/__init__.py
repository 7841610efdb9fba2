"""benchsr: a plugin-based super-resolution benchmark suite for CT.

The rooms: `contracts` (what a plugin implements), `config`, `results` (run folders), `registry`,
`errors` and `api` at the top; `runtime/` (ranks, devices, fast paths), `data/` (volumes,
patches), `nn/` (shared network pieces), `evaluation/` (scoring and its statistics), `run/` (a
run's lifecycle), `report/` (leaderboards, paper tables) and `cli/`. Old flat module paths
(`benchsr.volumes`, `benchsr.gan`, ...) still import, for plugins written against them.
"""
from benchsr import _moved
from benchsr.plugin_folders import mount_builtin
from benchsr.version import __version__  # noqa: F401

_moved.install()

# `import benchsr.methods.srcyclegan` works from anywhere once benchsr is imported
for _kind in ("methods", "datasets"):
    mount_builtin(_kind)


def create_method(*args, **kwargs):
    """benchsr.api.create_method (imported lazily: torch and the plugins load on first use)."""
    from benchsr.api import create_method as make
    return make(*args, **kwargs)


def load_run(path):
    """benchsr.api.load_run: a finished run folder as a Run (manifest, config, summary, ...)."""
    from benchsr.api import load_run as read
    return read(path)
