"""Where a run is (Stage: named in a failure's reason) and how far it has got (Bar: a progress
bar that may be absent)."""
from __future__ import annotations

import contextlib


class Stage:
    """Where a run is. `with stage("step 12"): ...` names the stage while the block runs; when
    the block raises, the name stays, so the failure's reason can say where it happened."""

    def __init__(self, name: str = "set-up"):
        self.name = name

    @contextlib.contextmanager
    def __call__(self, name: str):
        previous, self.name = self.name, name
        yield
        self.name = previous


@contextlib.contextmanager
def shown(progress, label: str, total: int | None = None):
    """A Bar for the block's length, hidden after it (progress: rich.progress.Progress or None)."""
    bar = Bar(progress, label, total)
    yield bar
    bar.hide()


class Bar:
    """A progress bar that may be absent: bar() advances it (bar(loss=x) also shows the current
    total loss), bar.total(n) sets its length."""

    def __init__(self, progress, label: str, total: int | None):
        self.progress, self.label = progress, label
        self.task = progress.add_task(label, total=total) if progress is not None else None

    def __call__(self, loss: float | None = None) -> None:
        if self.task is not None:
            text = self.label if loss is None else f"{self.label}  loss {loss:.4g}"
            self.progress.update(self.task, advance=1, description=text)

    def total(self, n: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, total=n)

    def hide(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
