"""A finished run folder as publishing reads it: the manifest, the Parquet file of every config and split, the
report's plots (`read_run`), and the error raised when a folder cannot be published."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


class PublishError(Exception):
    """A run folder that cannot be published (no manifest, no data); the message says what is missing."""


@dataclass
class RunFiles:
    """What a finished run folder holds that publishing needs."""

    run_dir: Path
    manifest: dict
    # config name -> split name -> Parquet file
    parquet: dict[str, dict[str, Path]]
    plots: list[Path] = field(default_factory=list)
    report: Path | None = None

    @property
    def run_name(self) -> str:
        return str(self.manifest.get("run_name") or self.run_dir.name)

    @property
    def fingerprint(self) -> str:
        return str(self.manifest.get("config_fingerprint") or "unknown")

    @property
    def run_id(self) -> str:
        """What commit messages and the card carry to tie published data to its run."""
        return f"negforge run {self.run_name} {self.fingerprint}"

    def data_path(self, config: str, split: str) -> str:
        """Path inside the Hub repository; matches what `Dataset.push_to_hub(data_dir=...)` writes."""
        return f"data/{config}/{split}-00000-of-00001.parquet"

    def digest(self, *extra: str) -> str:
        """Content hash of everything published: unchanged content gives the same digest, so a second push of
        the same run can be recognised on the remote and skipped."""
        h = hashlib.sha256()
        for part in (self.run_id, *extra):
            h.update(part.encode() + b"\0")
        for config in sorted(self.parquet):
            for split in sorted(self.parquet[config]):
                h.update(f"{config}/{split}".encode() + b"\0" + _file_sha256(self.parquet[config][split]))
        for plot in self.plots:
            h.update(plot.name.encode() + b"\0" + _file_sha256(plot))
        return h.hexdigest()[:16]


def _file_sha256(path: Path) -> bytes:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def read_run(run_dir: Path | str) -> RunFiles:
    """Collect manifest, Parquet files (any config names, any splits) and report plots of a finished run."""
    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise PublishError(f"{manifest_path}: no manifest (is the run finished?)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    parquet: dict[str, dict[str, Path]] = {}
    root = run_dir / "dataset" / "parquet"
    if root.is_dir():
        for config_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            splits = {f.stem: f for f in sorted(config_dir.glob("*.parquet"))}
            if splits:
                parquet[config_dir.name] = splits
    if not parquet:
        raise PublishError(f"{root}: no Parquet files (expected dataset/parquet/<config>/train.parquet)")
    report_dir = run_dir / "report"
    plots = sorted(report_dir.glob("*.png")) if report_dir.is_dir() else []
    report = run_dir / "report.md"
    return RunFiles(run_dir, manifest, parquet, plots, report if report.is_file() else None)
