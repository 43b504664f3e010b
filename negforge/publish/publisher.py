"""One entry point for `negforge publish`: local Hub folder, exports, push; the CLI only wires options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from negforge.publish.hub_layout import write_hub_folder
from negforge.publish.push import PushResult
from negforge.publish.run_files import PublishError, read_run


@dataclass
class PublishOutcome:
    """Where things went, for the CLI to print."""

    run_id: str
    local: Path | None = None
    exports: dict[str, Path] = field(default_factory=dict)
    push: PushResult | None = None


def publish(
    run_dir: Path | str,
    *,
    local: Path | str | None = None,
    repo_id: str | None = None,
    private: bool = False,
    revision: str | None = None,
    token_secret: str | None = None,
    exports: list[str] | None = None,
    license: str | None = None,
    score: str | None = None,
) -> PublishOutcome:
    """Write the local Hub folder, the exports (into LOCAL/exports, else RUN_DIR/exports), then push."""
    from negforge.publish.exporters import export
    from negforge.publish.push import push_run

    if not (local or repo_id or exports):
        raise PublishError("nothing to do: give --local DIR, --repo ORG/NAME and/or --export FORMAT")
    run = read_run(run_dir)
    outcome = PublishOutcome(run.run_id)
    if local:
        outcome.local = write_hub_folder(run, local, license=license)
    if exports:
        out_dir = Path(local or run.run_dir) / "exports"
        for kind in dict.fromkeys(exports):
            outcome.exports[kind] = export(run, kind, out_dir, score=score)
    if repo_id:
        outcome.push = push_run(
            run.run_dir,
            repo_id,
            private=private,
            revision=revision,
            token_secret=token_secret,
            license=license,
        )
    return outcome
