"""Shard store: finished shards are written atomically, so a rerun after a crash redoes only what is missing.

A shard counts as done when its stats file exists; that file is renamed into place only after the shard's
Parquet file, so a kill at any moment leaves either a whole shard or none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from negforge.ownership import (
    atomic_write,
    check_owned,
    claim,
    inside,
    is_owned,
    legacy_dataset,
    remove_owned,
)


class RunFolderConflict(RuntimeError):
    """The run folder holds shards from another config or other input data."""


REJUDGE_KEYS = ("models", "files", "prompts", "precision", "rules", "shard_schema")


def _detail(keys: list[str], old: dict, new: dict) -> str:
    """Which entries of dict-valued identity keys differ (file paths, model names); else the key itself."""
    out = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            for n in sorted(a.keys() | b.keys()):
                if a.get(n) != b.get(n):  # precision paths are short words: say from what to what
                    out.append(f"{k}: {n} {a.get(n)} -> {b.get(n)}" if k == "precision" else f"{k}: {n}")
        else:
            out.append(f"{k}: content differs" if k in ("corpus", "queries") else k)
    return "; ".join(out)


def plan_shards(n: int, size: int) -> list[list[int]]:
    return [list(range(s, min(s + size, n))) for s in range(0, n, size)]


class ShardStore:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / "shards"

    def open(self, identity: dict, *, overwrite: bool = False) -> list[str]:
        """Claim the folder for this run identity; returns what changed since the shards were written.

        A different config or input data (`REFUSE_KEYS`) raises RunFolderConflict naming what differs (unless
        `overwrite`). Different judges (`REJUDGE_KEYS`: model weights, files filters read, prompt templates,
        precision paths, the identity rule's version, the rich row's schema version) discard the finished shards so every query is judged
        again: never a dataset stitched from shards judged by other models or answer lists.
        """
        state = self.dir / "state.json"
        changes: list[str] = []
        inside(self.dir.parent.parent, self.dir.parent, "run_name")
        check_owned(self.dir, "shards", _legacy_shards)
        check_owned(self.dir.parent / "dataset", "dataset", legacy_dataset)  # refused now, not after mining
        if state.exists():
            old = json.loads(state.read_text())
            if old != identity:
                changed = sorted(k for k in identity.keys() | old.keys() if identity.get(k) != old.get(k))
                refuse = [k for k in changed if k not in REJUDGE_KEYS]
                if refuse and not overwrite:
                    raise RunFolderConflict(
                        f"{self.dir.parent}: holds a run with different {', '.join(refuse)} "
                        f"({_detail(refuse, old, identity)}); use another run_name, or --overwrite to start it again"
                    )
                changes = [
                    f"{k} changed since the shards were written ({_detail([k], old, identity)})"
                    for k in changed
                ]
                remove_owned(self.dir, "shards", _legacy_shards)
        if not is_owned(self.dir, "shards"):
            claim(self.dir, "shards")
        atomic_write(state, json.dumps(identity, indent=2).encode())
        return changes

    def _paths(self, i: int) -> tuple[Path, Path]:
        return self.dir / f"shard-{i:05d}.parquet", self.dir / f"shard-{i:05d}.json"

    def is_done(self, i: int) -> bool:
        return self._paths(i)[1].exists()

    def write(self, i: int, table: pa.Table, stats: dict) -> None:
        data, meta = self._paths(i)
        tmp = data.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, data)
        atomic_write(meta, json.dumps(stats).encode())

    def stats(self, i: int) -> dict:
        return json.loads(self._paths(i)[1].read_text())

    def read(self, i: int) -> pa.Table:
        return pq.read_table(self._paths(i)[0])


def _legacy_shards(folder: Path) -> bool:
    """A shards folder written before ownership markers: negforge's state.json (with the identity rule's
    version) and nothing but shard files beside it."""
    try:
        old = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return False
    names = {p.name for p in folder.iterdir()}
    return (
        isinstance(old, dict)
        and "rules" in old
        and all(n == "state.json" or n.startswith("shard-") or n.endswith(".tmp") for n in names)
    )
