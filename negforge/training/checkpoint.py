"""What a trained checkpoint is (weights fingerprint) and what made it (dataset, config, loss, steps, seed).

The record lives inside the checkpoint folder as `negforge_checkpoint.json`; `model_fingerprint` leaves it out,
so writing it does not change the identity it records.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from negforge.mining import fingerprint as fp

CHECKPOINT_FILE = "negforge_checkpoint.json"


def checkpoint_fingerprint(path: str | Path) -> str:
    """The weights' identity: `model_fingerprint`, which leaves this record out."""
    return fp.model_fingerprint(path)


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
