"""A finished run as the Hugging Face Hub sees it: Parquet per config and split under data/, a card, plots.

The same folder serves three uses: `datasets.load_dataset(folder, config)` reads it offline, a reviewer reads
it before anything leaves the machine, and `push.py` pushes exactly these files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
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


#: the files a Hub layout folder holds that negforge wrote (relative paths), so a rewrite removes only those
HUB_MARKER = ".negforge-hub.json"


def _owned_files(dest: Path) -> set[str]:
    """Files an earlier `write_hub_folder` wrote into `dest` (from its marker); empty when none did."""
    try:
        files = json.loads((dest / HUB_MARKER).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {
        f for f in files if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute()
    }


def write_hub_folder(run: RunFiles, dest: Path | str, *, license: str | None = None) -> Path:
    """Write the Hub repository layout to `dest`: README.md (card), data/<config>/<split>-*.parquet, images/.

    Only what negforge wrote is ever removed: the files an earlier write listed in `dest/.negforge-hub.json`
    go (so no stale shard is left behind), everything else in `dest` stays (exports/, the user's own files).
    A file negforge would write over that it did not write itself (a README.md of the user's, a foreign file
    under data/) raises PublishError naming it, before anything is changed.
    """
    from negforge.publish.card import render_card

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    before = _owned_files(dest)
    plan = {
        run.data_path(config, split): src
        for config, splits in run.parquet.items()
        for split, src in splits.items()
    }
    plan.update({f"images/{p.name}": p for p in run.plots})
    targets = [*plan, "README.md"]
    foreign = [t for t in targets if (dest / t).exists() and t not in before]
    if foreign:
        raise PublishError(
            f"{dest}: {', '.join(foreign[:3])} exist{'s' if len(foreign) == 1 else ''} and negforge did not write "
            f"{'it' if len(foreign) == 1 else 'them'} (not in {HUB_MARKER}); publish into an empty folder or "
            "move them away"
        )
    for rel in sorted(before):
        (dest / rel).unlink(missing_ok=True)
    for rel in sorted(before, key=lambda r: -len(Path(r).parts)):  # now-empty folders negforge made
        for parent in Path(rel).parents:
            if parent != Path(".") and (dest / parent).is_dir() and not any((dest / parent).iterdir()):
                (dest / parent).rmdir()
    for rel, src in plan.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)
    (dest / "README.md").write_text(render_card(run, license=license), encoding="utf-8")
    (dest / HUB_MARKER).write_text(json.dumps({"negforge": 1, "files": sorted(targets)}, indent=1) + "\n")
    return dest
