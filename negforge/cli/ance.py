"""The ANCE commands: `refresh` (re-mine and re-filter a run's negatives with a newer checkpoint, as a new
run folder) and `loop` (build, then rounds of train and refresh)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from negforge.cli.common import (
    ConfigArg,
    Engine,
    SetOpt,
    _load,
    _train_errors,
    _user_errors,
    app,
    esc,
    fail,
    out,
)
from negforge.cli.report import _report


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
            from negforge.flows.environment import quiet_user_errors  # (the import configures Prefect)

            quiet_user_errors(_train_errors())
            from negforge.flows.refresh import refresh_negatives

            manifest = refresh_negatives(
                cfg.model_dump(mode="json"), str(checkpoint), chunk=chunk, run_name=run_name
            )
        else:
            from negforge.training.refresh import refresh as refresh_local

            manifest = refresh_local(cfg, checkpoint, chunk=chunk, run_name=run_name).manifest
    except _user_errors() as e:
        raise fail(e) from None
    _report(manifest)
    r = manifest.get("refresh") or {}
    out.print(f"refreshed with {esc(r.get('checkpoint'))} (fingerprint {r.get('checkpoint_fingerprint')})")


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
            from negforge.flows.environment import quiet_user_errors  # (the import configures Prefect)

            quiet_user_errors(_train_errors())
            from negforge.flows.refresh import ance_loop_flow

            done = ance_loop_flow(
                cfg.model_dump(mode="json"), tc.model_dump(mode="json"), rounds, str(out_dir)
            )
        else:
            from negforge.training.refresh import ance_loop

            done = [vars(r) for r in ance_loop(cfg, tc, rounds, out_dir=out_dir)]
    except _train_errors() as e:
        raise fail(e) from None
    for r in done:
        out.print(
            f"round {r['round']}: checkpoint {r['checkpoint']} ({r['fingerprint']}) → negatives {r['run_dir']}"
        )
