"""The side-by-side harness every comparison benchmark uses: each row runs in a fresh process, the rows are
interleaved over rounds (A B C, A B C, ...), and each row is reported as its median with the spread (min–max)
and the machine's 1-minute load average around each run, so a busy minute on a shared machine shows up as
spread and load instead of as a 2x "result".

A row is a child command that prints one JSON object as its last stdout line (its own measurements, e.g.
`seconds`); `prepare(round)` runs in the parent before each run (e.g. to empty a cache folder for a cold run).

    rows = [Row("ST fp32 cold", [sys.executable, "child.py", "st"], prepare=empty(cache))]
    results = interleave(rows, rounds=3)
    print(summary(results["ST fp32 cold"], "seconds").text())
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: quiet, offline, deterministic children: no progress bars, no hub, no tokenizer thread pools fighting torch
CHILD_ENV = {"NEGFORGE_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
             "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip


class ChildFailed(RuntimeError):
    """A child process exited non-zero or printed no JSON line; the message holds its stderr's tail."""


def run_child(
    argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float | None = None
) -> dict:
    """Run `argv` in a fresh process (with CHILD_ENV and `env` over os.environ) and return the JSON object on
    its last stdout line, plus `wall_seconds` (the parent's clock). Raises ChildFailed."""
    full = {**os.environ, **CHILD_ENV, **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=full, check=False, timeout=timeout)
    wall = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ChildFailed(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    try:
        out = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise ChildFailed(
            f"{' '.join(argv)}: last stdout line is not JSON ({e}): {lines[-1][:200]}"
        ) from None
    return {**out, "wall_seconds": wall}


@dataclass
class Row:
    """One benchmark row: a child command, run once per round. `prepare(round)` runs before each run."""

    name: str
    argv: list[str]
    prepare: Callable[[int], None] | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """One run of one row: the child's JSON, the round, and the 1-minute load average before and after."""

    round: int
    result: dict
    load_before: float
    load_after: float


def interleave(
    rows: Sequence[Row], rounds: int = 3, log: Callable[[str], None] = print
) -> dict[str, list[Run]]:
    """Run every row once per round, in row order, each in a fresh process; rows by name -> runs by round.
    Raises ValueError on fewer than 1 round or duplicate row names, ChildFailed when a child fails."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if len({r.name for r in rows}) != len(rows):
        raise ValueError("row names must be unique")
    out: dict[str, list[Run]] = {r.name: [] for r in rows}
    for k in range(rounds):
        for row in rows:
            if row.prepare is not None:
                row.prepare(k)
            before = os.getloadavg()[0]
            log(f"round {k + 1}/{rounds}: {row.name} (load {before:.2f}) ...")
            res = run_child(row.argv, row.env)
            out[row.name].append(Run(k, res, before, os.getloadavg()[0]))
    return out


@dataclass(frozen=True)
class Summary:
    """Median and spread (min, max) of one measured key over a row's runs, and the load averages seen."""

    median: float
    low: float
    high: float
    n: int
    load_low: float
    load_high: float

    def text(self, digits: int = 2) -> str:
        """ "12.34 (11.90–13.02)": the median, then the spread."""
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}–{self.high:.{digits}f})"

    def load(self) -> str:
        return f"{self.load_low:.1f}–{self.load_high:.1f}"

    def as_dict(self) -> dict:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n,
                "load": [self.load_low, self.load_high]}  # fmt: skip


def summary(runs: Sequence[Run], key: str | Callable[[dict], float]) -> Summary:
    """The Summary of `key` (a key of the child's JSON, or a function of it) over `runs`. Raises ValueError
    on no runs."""
    if not runs:
        raise ValueError("no runs to summarise")
    get = key if callable(key) else (lambda r: float(r[key]))
    vals = [get(r.result) for r in runs]
    loads = [x for r in runs for x in (r.load_before, r.load_after)]
    return Summary(statistics.median(vals), min(vals), max(vals), len(vals), min(loads), max(loads))


def ratio(a: Summary, b: Summary) -> float:
    """Ratio of medians a / b (how the side-by-side tables compare rows)."""
    return a.median / b.median


def empty(folder: Path) -> Callable[[int], None]:
    """A `prepare` that removes `folder` (a cold run's cache) and makes it again, empty."""

    def prepare(_round: int) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    return prepare


def seeded(folder: Path, seed: Path, keep: Sequence[str]) -> Callable[[int], None]:
    """A `prepare` that empties `folder` and copies the sub-folders `keep` of `seed` into it (e.g. a cold run
    whose parity verdict is already cached)."""

    def prepare(_round: int) -> None:
        empty(folder)(_round)
        for name in keep:
            if (seed / name).exists():
                shutil.copytree(seed / name, folder / name)

    return prepare


def python(script: Path | str, *args: str) -> list[str]:
    """argv running `script` with this interpreter."""
    return [sys.executable, str(script), *args]
