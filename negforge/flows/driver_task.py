"""One way to wrap a library step as a Prefect task for the flows' driver."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

P = ParamSpec("P")
R = TypeVar("R")


def driver_task(fn: Callable[P, R], name: str, **options: Any) -> Task[P, R]:
    """`fn` as a task named `name` (other Prefect task options as keywords: task_run_name, retries, ...).

    Big in-memory objects (corpus, indexes, models) pass between driver tasks in one process: no caching,
    no result storage."""
    return task(name=name, cache_policy=NO_CACHE, persist_result=False, **options)(fn)
