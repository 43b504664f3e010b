"""The commands around a retriever: `train` (fine-tune a sentence-transformers bi-encoder on a negforge
dataset) and `evaluate` (nDCG@10, MRR@10 and Recall@100 of models side by side on a BEIR split)."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from negforge.cli.common import Engine, _train_errors, _user_errors, app, esc, fail, out


class LossName(StrEnum):
    mnrl = "mnrl"
    cached_mnrl = "cached_mnrl"
    marginmse = "marginmse"


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
    query_prompt: Annotated[
        str | None,
        typer.Option(help="Prepended to queries; default: the run's sources.dense.query_prompt (manifest)."),
    ] = None,
    corpus_prompt: Annotated[
        str | None,
        typer.Option(
            help="Prepended to passages; default: the run's sources.dense.corpus_prompt (manifest)."
        ),
    ] = None,
) -> None:
    """Fine-tune a sentence-transformers bi-encoder on a negforge dataset and save the checkpoint.

    Then compare it with the base model: negforge evaluate BASE CHECKPOINT --data BEIR_FOLDER
    """
    from pydantic import ValidationError

    from negforge.training.train import TrainConfig

    try:
        cfg = TrainConfig(
            dataset=dataset,
            config=config,
            curriculum=curriculum or [],
            model=model,
            loss=loss.value,
            batch_size=batch_size,
            mini_batch_size=mini_batch_size,
            epochs=epochs,
            max_steps=max_steps,
            learning_rate=learning_rate,
            warmup_ratio=warmup_ratio,
            seed=seed,
            max_seq_length=max_seq_length,
            output_dir=output_dir,
            query_prompt=query_prompt,
            corpus_prompt=corpus_prompt,
        )
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise fail(msgs) from None
    try:
        if engine is Engine.prefect:
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
            from negforge.flows.environment import quiet_user_errors  # (the import configures Prefect)

            quiet_user_errors(_train_errors())
            from negforge.flows.train import train_flow

            info = train_flow(cfg.model_dump(mode="json"), progress=progress)
        else:
            from negforge.training.train import train as train_local

            res = train_local(cfg, progress=progress)
            info = {**res.info, "output_dir": str(res.output_dir)}
    except _train_errors() as e:
        raise fail(e) from None
    out.print(f"\n[bold green]checkpoint:[/bold green] {esc(info['output_dir'])}")
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
    query_prompt: Annotated[
        str | None,
        typer.Option(
            help="Prepended to queries, for every model; default: each checkpoint's own (what it was "
            "trained with, from the run's manifest), else the model's query prompt, else none."
        ),
    ] = None,
    corpus_prompt: Annotated[
        str | None,
        typer.Option(help="Prepended to documents, for every model; default as for --query-prompt."),
    ] = None,
) -> None:
    """nDCG@10, MRR@10 and Recall@100 of each model on a BEIR split, printed side by side."""
    from negforge.training.evaluate import print_comparison

    cache = None if cache_dir.lower() == "none" else cache_dir
    try:
        if engine is Engine.prefect:
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
            from negforge.flows.environment import quiet_user_errors  # (the import configures Prefect)

            quiet_user_errors(_train_errors())
            from negforge.flows.train import evaluate_flow

            results: list[Any] = evaluate_flow(
                list(models),
                str(data),
                split,
                cache_dir=cache,
                batch_size=batch_size,
                max_seq_length=max_seq_length,
                max_queries=max_queries,
                query_prompt=query_prompt,
                corpus_prompt=corpus_prompt,
            )
        else:
            from negforge.training.evaluate import BeirSplit
            from negforge.training.evaluate import evaluate as evaluate_local

            beir = BeirSplit(data, split, max_queries)
            results = [
                evaluate_local(
                    m,
                    beir,
                    cache_dir=cache,
                    batch_size=batch_size,
                    max_seq_length=max_seq_length,
                    query_prompt=query_prompt,
                    corpus_prompt=corpus_prompt,
                )
                for m in models
            ]
    except _user_errors() as e:
        raise fail(e) from None
    print_comparison(results, out)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(list(results), indent=2) + "\n")
        out.print(f"results written to {json_out}", markup=False)
