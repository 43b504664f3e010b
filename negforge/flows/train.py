"""`train` and `evaluate` flows: thin wiring over negforge.training, plus a metrics artifact in the UI."""

from __future__ import annotations

import re
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from negforge.flows.driver_task import driver_task
from negforge.publish.markdown import code, md
from negforge.training.evaluate import METRICS, EvalResult
from negforge.training.evaluate import evaluate as evaluate_model
from negforge.training.evaluate import load_split as read_split
from negforge.training.train import TrainConfig
from negforge.training.train import train as train_model

fit = driver_task(train_model, name="train")
load_split = driver_task(read_split, name="load-split")
score = driver_task(evaluate_model, name="evaluate", task_run_name="evaluate-{model}")


@flow(name="train", validate_parameters=True)
def train_flow(config: dict[str, Any], progress: bool = False) -> dict:
    """Fine-tune on a negforge dataset as `config` (a TrainConfig as a dict) says; returns the checkpoint record."""
    cfg = TrainConfig.model_validate(config)
    result = fit(cfg, progress=progress)
    get_run_logger().info("checkpoint %s (fingerprint %s, %d steps)", result.output_dir, result.fingerprint,
                          result.steps)  # fmt: skip
    return {**result.info, "output_dir": str(result.output_dir)}


def _artifact_key(data: str, split: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    stem = re.sub(r"[^a-z0-9]+", "-", f"retrieval-{data.rstrip('/').rsplit('/', 1)[-1]}-{split}".lower())
    return stem.strip("-")[:100]


def _markdown(results: list[EvalResult], data: str, split: str) -> str:
    head = "| model | fingerprint | " + " | ".join(METRICS) + " | queries | docs |"
    lines = [f"# Retrieval on {code(data)} ({md(split)})", "", head, "|" + "---|" * (len(METRICS) + 4)]
    for i, r in enumerate(results):
        cells = [f"{r[m]:.4f}" + (f" ({r[m] - results[0][m]:+.4f})" if i else "") for m in METRICS]
        lines.append(f"| {code(r['model'])} | {code(r['fingerprint'][:12])} | {' | '.join(cells)} | {r['queries']} | "
                     f"{r['corpus_docs']} |")  # fmt: skip
    if len(results) > 1:
        lines += ["", "Changes in brackets are against the first model (zero-shot)."]
    return "\n".join(lines) + "\n"


@flow(name="evaluate", validate_parameters=True)
def evaluate_flow(
    models: list[str],
    data: str,
    split: str = "test",
    cache_dir: str | None = None,
    batch_size: int = 64,
    max_seq_length: int | None = None,
    max_queries: int | None = None,
    query_prompt: str | None = None,
    corpus_prompt: str | None = None,
) -> list[dict]:
    """Score each model on the BEIR split at `data`; publishes the metrics as table and markdown artifacts.
    Prompts: None takes each model's own (negforge.training.prompts)."""
    beir = load_split(data, split, max_queries)
    results: list[EvalResult] = [
        score(
            m,
            beir,
            split,
            cache_dir=cache_dir,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            query_prompt=query_prompt,
            corpus_prompt=corpus_prompt,
        )
        for m in models
    ]
    key = _artifact_key(data, split)
    create_table_artifact(
        key=key,
        table=[dict(r) for r in results],
        description=f"nDCG@10, MRR@10, Recall@100 on {data} ({split})",
    )
    create_markdown_artifact(key=key + "-summary", markdown=_markdown(results, data, split))
    return [dict(r) for r in results]
