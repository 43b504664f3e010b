"""The `publish` command: a finished run as a local Hub folder, a push to a Hub dataset repository, and/or
exports for other trainers."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from negforge.cli.common import app, fail, out


class ExportFormat(StrEnum):
    flagembedding = "flagembedding"
    tevatron = "tevatron"
    marginmse = "marginmse"


@app.command()
def publish(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder (runs/<name>).")],
    local: Annotated[
        Path | None,
        typer.Option(help="Write the Hub repository layout here (README.md card, data/<config>/*.parquet)."),
    ] = None,
    repo: Annotated[
        str | None, typer.Option(help="Push to this Hub dataset repository (ORG/NAME); token from HF_TOKEN.")
    ] = None,
    private: Annotated[bool, typer.Option(help="Create the repository private.")] = False,
    revision: Annotated[str | None, typer.Option(help="Push to this branch (created if missing).")] = None,
    token_secret: Annotated[
        str | None,
        typer.Option(help="Read the Hub token from this Prefect Secret block instead of HF_TOKEN."),
    ] = None,
    export: Annotated[
        list[ExportFormat] | None,
        typer.Option(
            help="Also export the rich config for another trainer (repeatable); written to LOCAL/exports or RUN_DIR/exports."
        ),
    ] = None,
    license: Annotated[
        str | None, typer.Option(help="Licence id for the card (default: the run's, else 'other').")
    ] = None,
    score: Annotated[
        str | None, typer.Option(help="Score scale for exported scores and margins (default: the run's).")
    ] = None,
) -> None:
    """Publish a finished run: a local Hub folder, a push to the Hub, and/or exports.

    The card (README.md) is written from the run's manifest: sources, models and their fingerprints, prompt
    versions, filters, row counts, plots, and a training snippet. Pushing commits each config, then the card,
    with commit messages naming the run; pushing the same run again changes nothing, and a push that failed
    midway finishes when run again. The token is never printed or written.
    """
    from negforge.publish.publisher import publish as run_publish
    from negforge.publish.run_files import PublishError

    try:
        outcome = run_publish(
            run_dir,
            local=local,
            repo_id=repo,
            private=private,
            revision=revision,
            token_secret=token_secret,
            exports=[e.value for e in export or []],
            license=license,
            score=score,
        )
    except PublishError as e:
        raise fail(e) from None
    if outcome.local:
        out.print(f"Hub layout written to {outcome.local}", highlight=False, markup=False)
    for kind, path in outcome.exports.items():
        out.print(f"{kind} export: {path}", highlight=False, markup=False)
    if outcome.push:
        p = outcome.push
        state = "already up to date" if p.skipped else f"{len(p.commits)} commits"
        out.print(
            f"pushed {outcome.run_id} to {p.repo_id}@{p.revision}: {state}", highlight=False, markup=False
        )
