"""negforge deletes only what it can prove it wrote: a marker file in every folder it creates and may replace.

A run replaces its `dataset/` and `shards/` folders, adapt its `generated/` corpus, and `publish --local` the
files of its Hub layout. Each such folder gets a `.negforge-owned` marker when negforge creates it; a folder
without one (the user's own data under the same name, a sibling reached through a mistyped path) is never
removed: `ForeignFolder` names it and says what to do. Folders written by negforge before markers existed are
recognised by their own layout (`legacy`), so an old run can still be overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

MARKER = ".negforge-owned"


class ForeignFolder(Exception):
    """A folder negforge would replace holds data it did not write (no marker): nothing was deleted."""


def claim(folder: Path, what: str) -> None:
    """Mark `folder` (created by negforge) as negforge's own `what` ("dataset", "shards", ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(json.dumps({"negforge": 1, "what": what}) + "\n")


def is_owned(folder: Path, what: str) -> bool:
    """Whether `folder` carries negforge's marker for `what`."""
    try:
        return json.loads((folder / MARKER).read_text()).get("what") == what
    except (OSError, ValueError, AttributeError):
        return False


def check_owned(folder: Path, what: str, legacy: Callable[[Path], bool] | None = None) -> None:
    """Raise ForeignFolder unless `folder` is absent, marked as `what`, or an older negforge `what` (`legacy`)."""
    if not folder.exists() and not folder.is_symlink():
        return
    real_dir = folder.is_dir() and not folder.is_symlink()
    if real_dir and (is_owned(folder, what) or (legacy is not None and legacy(folder))):
        return
    raise ForeignFolder(
        f"{folder}: exists and was not written by negforge as its {what} (no {MARKER} in it), so negforge "
        "will not replace it; move it away, or choose another run_name or output folder"
    )


def remove_owned(folder: Path, what: str, legacy: Callable[[Path], bool] | None = None) -> None:
    """Delete `folder` if negforge wrote it (see `check_owned`); raises ForeignFolder, deleting nothing,
    otherwise. An absent folder is fine."""
    check_owned(folder, what, legacy)
    if folder.exists():
        shutil.rmtree(folder)


def inside(root: Path, path: Path, key: str) -> Path:
    """`path`, after checking that it resolves inside `root` (symlinks followed); ForeignFolder names `key`."""
    r, p = root.expanduser().resolve(), path.expanduser().resolve()
    if p != r and not p.is_relative_to(r):
        raise ForeignFolder(f"{key}: {path} resolves to {p}, outside {r}; negforge writes only inside it")
    return path


def legacy_dataset(folder: Path) -> bool:
    """A dataset folder written by negforge before ownership markers: its layout, beside its run manifest."""
    return (
        (folder / "dataset_dict.json").is_file()
        and (folder / "parquet").is_dir()
        and (folder.parent / "manifest.json").is_file()
        and (folder.parent / "shards").is_dir()
    )


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a reader sees the old file or the whole new one, never a part: written to a
    temporary file beside it (named by this process, so concurrent writers of one cache entry do not share
    it), flushed to disk, then renamed over `path`."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
