"""Progress bars for long work (encoding, mining), via rich; silent when turned off (tests, logs)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_enabled = os.environ.get("NEGFORGE_PROGRESS", "1") != "0"


def set_enabled(flag: bool) -> None:
    """Turn our bars and the datasets library's bars on or off together."""
    global _enabled
    _enabled = flag
    import datasets

    (datasets.enable_progress_bars if flag else datasets.disable_progress_bars)()


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; draws a bar with rate and ETA when enabled, does nothing otherwise."""
    if not _enabled or total <= 0:
        yield lambda n=1: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
