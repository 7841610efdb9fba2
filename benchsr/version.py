"""benchsr's version (pyproject.toml says the same): the built-in plugins carry it."""
__version__ = "0.1.0"
