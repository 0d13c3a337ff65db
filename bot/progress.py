"""A progress bar for long embedding work (on stderr, so stdout stays clean for --json)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from index.build import Progress


@contextmanager
def embedding_progress(*, enabled: bool = True) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    console = Console(stderr=True)
    bar = Bar("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
              TimeRemainingColumn(), console=console, transient=True)
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task("Embedding", total=total)
        bar.update(task, completed=done, total=total)

    with bar:
        yield update
