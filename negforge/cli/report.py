"""The summary printed after a build: where the dataset and manifest are, the funnel, the filter verdicts,
scores by source, synthetic-negative counts, skips and notes; read from a run's manifest, so `run`,
`refresh` and `show` print the same thing."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from negforge.cli.common import esc, out


def _report(manifest: dict) -> None:
    from negforge.publish.summary import print_summary

    counts = manifest["counts"]
    data = manifest["data"]
    out.print(f"\n[bold green]dataset:[/bold green] {esc(manifest['outputs']['dataset'])}")
    out.print(f"[bold]manifest:[/bold] {esc(Path(manifest['outputs']['dataset']).parent / 'manifest.json')}")
    out.print(
        f"{data['queries']} queries, {data['positives']} positives, {data['corpus_docs']} documents; "
        f"rows: {', '.join(f'{k}={v}' for k, v in counts['rows'].items())}"
    )
    t = Table(title="funnel (all queries)")
    t.add_column("stage")
    t.add_column("count", justify="right")
    for k, v in counts["funnel"].items():
        t.add_row(k, str(v))
    for k, v in counts["selected"].items():
        t.add_row(f"selected from {esc(k)}", str(v))
    out.print(t)
    funnel = (manifest.get("filters") or {}).get("funnel") or []
    if funnel and manifest["filters"].get("stack"):
        ft = Table(title="verdicts: candidates per source through each filter")
        for col in funnel[0]:
            ft.add_column(esc(col.removeprefix("after_")), justify="left" if col == "source" else "right")
        for row in funnel:
            ft.add_row(*(esc(v) for v in row.values()))
        out.print(ft)
    print_summary(manifest["score_summary"], manifest["score_by"], out)
    if manifest["outputs"].get("report"):
        out.print(f"[bold]report:[/bold] {esc(manifest['outputs']['report'])}")
    gen = manifest.get("generation")
    if gen:
        c = gen["counts"]
        out.print(
            f"[bold]synthetic negatives:[/bold] {c.get('valid', 0)} valid from {c.get('requests', 0)} requests "
            f"({c.get('from_store', 0)} from the generation store, {c.get('reasks', 0)} re-asks); "
            f"rejected: {gen['rejected'] or 'none'}"
        )
    if counts["short_queries"]:
        out.print(
            f"[yellow]{counts['short_queries']} queries got fewer negatives than asked (see manifest)[/yellow]"
        )
    if counts.get("ntuple_rows_dropped_short"):
        out.print(
            f"[yellow]{counts['ntuple_rows_dropped_short']} n-tuple rows left out: too few negatives[/yellow]"
        )
    if manifest["skips"]["counts"]:
        out.print(f"[yellow]input skips:[/yellow] {esc(manifest['skips']['counts'])} (examples in manifest)")
    excluded = {k: v for k, v in (manifest.get("identity") or {}).get("excluded", {}).items() if v}
    if excluded:
        out.print(f"identity rule (never negatives): {excluded}", highlight=False)
    for note in manifest["notes"]:
        out.print(f"[yellow]note:[/yellow] {esc(note)}")
