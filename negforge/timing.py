"""Per-stage wall time and throughput, for the manifest (and a line per stage off a terminal)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Timings:
    """Wall time, item count and rate per stage name; a stage timed twice adds up."""

    def __init__(self) -> None:
        self.stages: dict[str, dict] = {}

    @contextmanager
    def stage(self, name: str, items: int | None = None, unit: str = "items") -> Iterator[None]:
        """Time the block as stage `name` of `items` `unit`s (recorded also when it raises, announced not)."""
        t0 = time.perf_counter()
        try:
            yield
        except BaseException:
            self._record(name, time.perf_counter() - t0, items, unit)
            raise
        self.add(name, time.perf_counter() - t0, items, unit)

    def add(self, name: str, seconds: float, items: int | None = None, unit: str = "items") -> None:
        """Record `seconds` (and `items`) for stage `name`; off a terminal, print its line (negforge.progress)."""
        from negforge.progress import stage_done

        self._record(name, seconds, items, unit)
        stage_done(name, seconds, items, unit)

    def _record(self, name: str, seconds: float, items: int | None, unit: str) -> None:
        entry = self.stages.setdefault(name, {"seconds": 0.0, "items": 0, "unit": unit})
        entry["seconds"] = round(entry["seconds"] + seconds, 4)
        if items is not None:
            entry["items"] += items
        if entry["items"] and entry["seconds"] > 0:
            entry["per_second"] = round(entry["items"] / entry["seconds"], 2)
