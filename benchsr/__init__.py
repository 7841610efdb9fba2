"""benchsr: a plugin-based super-resolution benchmark suite for CT."""
from .plugin_folders import mount_builtin

__version__ = "0.1.0"

# `import benchsr.methods.srcyclegan` works from anywhere once benchsr is imported
for _kind in ("methods", "datasets"):
    mount_builtin(_kind)


def create_method(*args, **kwargs):
    """benchsr.api.create_method (imported lazily: torch and the plugins load on first use)."""
    from .api import create_method as make
    return make(*args, **kwargs)


def load_run(path):
    """benchsr.api.load_run: a finished run folder as a Run (manifest, config, summary, ...)."""
    from .api import load_run as read
    return read(path)
