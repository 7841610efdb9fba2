"""benchsr: a plugin-based super-resolution benchmark suite for CT."""
from .plugin_folders import mount_builtin

__version__ = "0.1.0"

# `import benchsr.methods.srcyclegan` works from anywhere once benchsr is imported
for _kind in ("methods", "datasets"):
    mount_builtin(_kind)
