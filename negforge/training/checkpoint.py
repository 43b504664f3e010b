"""What a trained checkpoint is (weights fingerprint) and what made it (dataset, config, loss, steps, seed).

The record lives inside the checkpoint folder as `negforge_checkpoint.json`. `model_fingerprint` hashes every
file of a folder, so the record itself must be left out of the fingerprint, or writing it would change the
identity it records. Until `negforge.mining.fingerprint` skips the file itself, `checkpoint_fingerprint`
does so here, with the same hashing (it equals `model_fingerprint` on a folder without the record).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from negforge.mining import fingerprint as fp

CHECKPOINT_FILE = "negforge_checkpoint.json"


def checkpoint_fingerprint(path: str | Path) -> str:
    """`model_fingerprint` of the folder, leaving out negforge's own checkpoint record."""
    root = Path(path)
    if not (root / CHECKPOINT_FILE).exists():
        return fp.model_fingerprint(root)
    h = hashlib.sha256()
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.relative_to(root) != Path(CHECKPOINT_FILE)
        and not p.name.endswith(fp._SKIP_SUFFIXES)
        and not (set(p.relative_to(root).parts[:-1]) & fp._SKIP_DIRS)
    )
    if not files:
        raise fp.ModelNotFound(f"{root}: model folder is empty")
    for p in files:
        h.update(str(p.relative_to(root)).encode())
        h.update(fp._file_digest(p).encode())
    return h.hexdigest()[:20]


def write_checkpoint_info(path: str | Path, info: dict[str, Any]) -> Path:
    """Write the record atomically, so a crash never leaves half a JSON beside good weights."""
    dst = Path(path) / CHECKPOINT_FILE
    tmp = dst.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, dst)
    return dst


def read_checkpoint_info(path: str | Path) -> dict[str, Any] | None:
    """The record of a negforge checkpoint, or None for any other model folder."""
    p = Path(path) / CHECKPOINT_FILE
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None
