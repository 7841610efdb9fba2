"""benchsr: a plugin-based super-resolution benchmark suite for CT."""
__version__ = "0.1.0"
