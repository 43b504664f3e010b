"""The commands that look without building: `validate` (the config with every default and what it means),
`inspect` (the input as a run would read it, before any mining) and `show` (a finished run's summary,
and its explorer page)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from negforge.cli.common import ConfigArg, SetOpt, _load, app, fail, out
from negforge.cli.report import _report
from negforge.config import RunConfig


@app.command()
def validate(
    config: ConfigArg,
    set_: SetOpt = None,
    data: Annotated[
        bool, typer.Option("--data", help="Also load the input as a run would and print what was understood.")
    ] = False,
) -> None:
    """Check CONFIG and print it with every default filled in, each key followed by what it means."""
    from negforge.config import annotated_yaml

    cfg = _load(config, set_, None)
    out.print(annotated_yaml(cfg), highlight=False, markup=False, soft_wrap=True)
    if data:
        _inspect(cfg)


@app.command()
def inspect(config: ConfigArg, set_: SetOpt = None) -> None:
    """Load the input of CONFIG exactly as a run would and print what was understood, before any mining.

    Shows the format and layout detected (which column is the query, the positives, given negatives; how the
    qrels grade column was found), counts of documents, queries and positives per query (min/median/max),
    given negatives, skips by reason with file:line examples, texts shared by several documents, candidates
    the identity rule will exclude, and two example rows in full. Exit code 2 with the file, line and column
    when the input cannot be read as meant.
    """
    _inspect(_load(config, set_, None))


def _inspect(cfg: RunConfig) -> None:
    from negforge.sources.inspect import inspect_data
    from negforge.sources.readers import InputError

    try:
        rep = inspect_data(cfg.data)
    except InputError as e:
        raise fail(e) from None
    out.print(f"[bold]input[/bold] ({rep.format})", highlight=False)
    for line in rep.layout:
        out.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    ppq = rep.positives_per_query
    out.print(
        f"  {rep.documents} documents, {rep.queries} queries, {rep.positives} positives "
        f"(per query min {ppq['min']}, median {ppq['median']}, max {ppq['max']}), "
        f"{rep.given_negatives} given negatives",
        highlight=False,
    )
    if rep.skips:
        out.print("[bold]skips[/bold] (rows not used, by reason)", highlight=False)
        for reason, n in sorted(rep.skips.items()):
            out.print(f"  {reason}: {n}", highlight=False, markup=False)
            for ex in rep.skip_examples.get(reason, []):
                out.print(f"      {ex}", highlight=False, markup=False, soft_wrap=True)
    else:
        out.print("skips: none", highlight=False)
    if rep.unread_columns:
        out.print("[bold]columns not read[/bold] (no row lost; rename one to use it)", highlight=False)
        for line in rep.unread_columns:
            out.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    st = rep.shared_texts
    out.print(
        f"[bold]shared texts[/bold]: {st['groups']} texts shared by {st['documents']} documents under different ids",
        highlight=False,
    )
    for ex in st["examples"][:3]:
        out.print(
            f"  {', '.join(ex['doc_ids'])}: {ex['text']!r}", highlight=False, markup=False, soft_wrap=True
        )
    out.print(
        "[bold]identity rule[/bold] (never negatives): "
        + ", ".join(f"{k} {v}" for k, v in rep.identity.items()),
        highlight=False,
    )
    for i, row in enumerate(rep.examples, 1):
        out.print(f"[bold]example {i}[/bold]", highlight=False)
        out.print(
            json.dumps(row, indent=2, ensure_ascii=False), highlight=False, markup=False, soft_wrap=True
        )


@app.command()
def show(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (runs/<name>).")],
    open_: Annotated[
        bool,
        typer.Option(
            "--open", help="Print the run explorer's path (report.html); open it when there is a display."
        ),
    ] = False,
) -> None:
    """Print the summary of a finished run from its manifest (with --open, then the run explorer's path)."""
    path = run_dir / "manifest.json"
    if not path.is_file():
        raise fail(f"{path}: no manifest (is the run finished?)")
    _report(json.loads(path.read_text()))
    if open_:
        from negforge.publish.explorer import open_explorer

        try:
            print(open_explorer(run_dir))  # the last line: the page's path
        except FileNotFoundError as e:
            raise fail(e) from None
