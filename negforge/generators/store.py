"""Generation store: every finished response is appended (one JSON line, flushed) as it arrives, keyed by
its request key. A rerun after a crash or a killed server reads the store and sends only what is missing.

Each writer process appends to its own file, so parallel workers never interleave lines; a torn last line
from a kill is ignored on reading.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import TextIO


class GenerationStore:
    def __init__(self, folder: str | Path):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict] = {}
        self.torn_lines = 0
        for f in sorted(self.dir.glob("part-*.jsonl")):
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    self.torn_lines += 1
                    continue
                self.records.setdefault(rec["key"], rec)
        self._path = self.dir / f"part-{socket.gethostname()}-{os.getpid()}.jsonl"
        self._fh: TextIO | None = None
        self._lock = threading.Lock()  # shards may run on threads of one process

    def refresh(self) -> int:
        """Read records other processes appended since this store was opened; returns how many are new."""
        before = len(self.records)
        for f in sorted(self.dir.glob("part-*.jsonl")):
            if f == self._path:
                continue
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.records.setdefault(rec["key"], rec)
        return len(self.records) - before

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def append(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            if self._fh is None:
                self._fh = self._path.open("a", encoding="utf-8")
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.records.setdefault(record["key"], record)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
