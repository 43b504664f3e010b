"""Per-stage wall time and throughput, for the manifest."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Timings:
    def __init__(self) -> None:
        self.stages: dict[str, dict] = {}

    @contextmanager
    def stage(self, name: str, items: int | None = None, unit: str = "items") -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0, items, unit)

    def add(self, name: str, seconds: float, items: int | None = None, unit: str = "items") -> None:
        entry = self.stages.setdefault(name, {"seconds": 0.0, "items": 0, "unit": unit})
        entry["seconds"] = round(entry["seconds"] + seconds, 4)
        if items is not None:
            entry["items"] += items
        if entry["items"] and entry["seconds"] > 0:
            entry["per_second"] = round(entry["items"] / entry["seconds"], 2)
