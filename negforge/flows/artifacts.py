"""Prefect artifacts of a build: the report as Markdown, a table per source, progress while shards run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)


def _key(run_name: str, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    clean = "".join(ch if ch.isalnum() else "-" for ch in run_name.lower()).strip("-")
    return f"negforge-{clean}-{what}"


class ShardProgress:
    """A progress artifact moved as shards finish (nothing to show when no shard is left to do)."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.id: Any = None  # the artifact's UUID once created

    def __enter__(self) -> ShardProgress:
        if self.total:
            self.id = create_progress_artifact(0.0, description=f"shards mined (of {self.total})")
        return self

    def advance(self) -> None:
        self.done += 1
        if self.id is not None:
            update_progress_artifact(self.id, 100.0 * self.done / self.total)

    def __exit__(self, *exc: object) -> None:
        return None


def publish_run_artifacts(manifest: dict, run_dir: Path) -> None:
    """The report (Markdown, with local paths of its plots) and one table per source."""
    name = manifest.get("run_name", "run")
    report = run_dir / "report.md"
    head = (
        f"Run folder: `{run_dir}`  \nDataset: `{manifest['outputs']['dataset']}`  \n"
        f"Plots: {', '.join(f'`{p}`' for p in sorted((run_dir / 'report').glob('*.png')))}\n\n"
    )
    body = report.read_text(encoding="utf-8") if report.exists() else ""
    create_markdown_artifact(head + body, key=_key(name, "report"), description="negforge run report")
    funnel = {r["source"]: r for r in (manifest.get("filters") or {}).get("funnel", [])}
    summary = {
        r["source"]: r for r in manifest.get("score_summary", []) if isinstance(r, dict) and "source" in r
    }
    for source in sorted(set(funnel) | (set(summary) - {"all"})):
        row = {
            **funnel.get(source, {"source": source}),
            **{f"score_{k}": v for k, v in summary.get(source, {}).items() if k != "source"},
        }
        create_table_artifact(
            [row], key=_key(name, f"source-{source}"), description=f"{source}: funnel and scores"
        )
