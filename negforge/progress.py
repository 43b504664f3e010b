"""Progress for long work (encoding, mining) and a line per finished stage.

On a terminal: rich bars with rate and ETA. Anywhere else (a log file, CI, a pipe): plain lines on stderr,
which a bar would fill with carriage returns instead:

    [negforge] mine shards: 3/10 (12.0 s, 0.25/s)              every NEGFORGE_PROGRESS_INTERVAL seconds (10)
    [negforge] mine shards: 10/10 in 41.2 s (0.24/s)           when the loop ends
    [negforge] dense_corpus: 1000 docs in 12.3 s (81 docs/s)   when a stage ends (see negforge.timing)

Other libraries' bars (datasets, transformers, huggingface_hub) are turned off off a terminal. Silent when
turned off (`--no-progress`, NEGFORGE_PROGRESS=0: tests, library use).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_enabled = os.environ.get("NEGFORGE_PROGRESS", "1") != "0"
_lock = threading.Lock()


def set_enabled(flag: bool) -> None:
    """Turn our progress and the datasets library's bars on or off together.

    Off a terminal our progress becomes lines, and the bars of datasets, transformers and huggingface_hub
    stay off: carriage-return bars only clutter a log.
    """
    global _enabled
    _enabled = flag
    import datasets

    if flag and interactive():
        datasets.enable_progress_bars()
        return
    datasets.disable_progress_bars()
    if not flag:
        return
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()  # transformers reads this when it is imported after us
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def enabled() -> bool:
    """Whether progress is shown at all."""
    return _enabled


def interactive() -> bool:
    """Whether progress is drawn as bars: stdout (where rich draws) is a terminal."""
    from rich import get_console

    return get_console().is_terminal


def line_mode() -> bool:
    """Whether progress is written as plain lines (enabled, not on a terminal)."""
    return _enabled and not interactive()


def _interval() -> float:
    try:
        return float(os.environ.get("NEGFORGE_PROGRESS_INTERVAL", "10"))
    except ValueError:
        return 10.0


def emit(message: str) -> None:
    """Write one `[negforge] message` line to stderr, whole (threads never interleave inside a line)."""
    with _lock:
        sys.stderr.write(f"[negforge] {message}\n")
        sys.stderr.flush()


def format_seconds(seconds: float) -> str:
    """12.3 s, 0.42 s, 2 min 5 s."""
    if seconds >= 120:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds:.2f} s"


def format_rate(items: float, seconds: float, unit: str = "") -> str:
    """`81 docs/s`, `0.25/s`; empty when there is nothing to divide."""
    if not items or seconds <= 0:
        return ""
    rate = items / seconds
    number = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}" if rate < 1 else f"{rate:.1f}"
    return f"{number} {unit}/s" if unit else f"{number}/s"


def stage_done(name: str, seconds: float, items: int | None = None, unit: str = "items") -> None:
    """The line for a finished stage, off a terminal: `dense_corpus: 1000 docs in 12.3 s (81 docs/s)`."""
    if not line_mode():
        return
    if items:
        rate = format_rate(items, seconds, unit)
        emit(f"{name}: {items} {unit} in {format_seconds(seconds)}" + (f" ({rate})" if rate else ""))
    else:
        emit(f"{name}: {format_seconds(seconds)}")


def _no_progress(n: int = 1) -> None:
    """`advance` when progress is off: nothing to show."""


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`: a rich bar on a terminal, periodic and final lines elsewhere, nothing when off."""
    if not _enabled or total <= 0:
        yield _no_progress
        return
    if not interactive():
        with _progress_lines(description, total) as advance:
            yield advance
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

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

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


@contextmanager
def _progress_lines(description: str, total: int) -> Iterator[Callable[[int], None]]:
    interval = _interval()
    start = time.perf_counter()
    state = {"done": 0, "last": start}
    guard = threading.Lock()

    def advance(n: int = 1) -> None:
        if not n:
            return
        with guard:
            state["done"] += n
            now = time.perf_counter()
            if state["done"] < total and now - state["last"] >= interval:
                state["last"] = now
                elapsed = now - start
                rate = format_rate(state["done"], elapsed)
                emit(
                    f"{description}: {state['done']}/{total} ({format_seconds(elapsed)}"
                    + (f", {rate})" if rate else ")")
                )

    try:
        yield advance
    except BaseException:
        emit(
            f"{description}: stopped at {state['done']}/{total} after {format_seconds(time.perf_counter() - start)}"
        )
        raise
    elapsed = time.perf_counter() - start
    rate = format_rate(state["done"], elapsed)
    emit(
        f"{description}: {state['done']}/{total} in {format_seconds(elapsed)}"
        + (f" ({rate})" if rate else "")
    )
