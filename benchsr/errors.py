"""The ground floor: the errors every room raises. A BenchError is a problem the user can fix;
the CLI prints its message as one line and exits 2."""


class BenchError(Exception):
    """A problem the user can fix. The CLI prints its message as one line and exits non-zero."""
