"""Positives and corpus in: BEIR folders, qrels files, pair files, Hugging Face datasets."""

from __future__ import annotations

from dataclasses import replace

from negforge.config import DataConfig
from negforge.records import TrainingInput
from negforge.sources.pairs import load_hf, load_pairs
from negforge.sources.qrels import load_beir, load_qrels_input
from negforge.sources.readers import InputError

__all__ = ["InputError", "load_input"]


def load_input(cfg: DataConfig) -> TrainingInput:
    """Load what the config names; `max_queries` keeps the first N queries in input order.

    Raises InputError (file, line or row, column named) for input that cannot be read as meant.
    """
    if cfg.format == "corpus":
        raise InputError(
            f"data.format=corpus ({cfg.path}) has a corpus but no queries: run `negforge adapt CONFIG` to write "
            "queries for it (domain adaptation), or give queries and qrels (format beir, qrels, pairs or hf)"
        )
    if cfg.format == "beir":
        out = load_beir(cfg.path, cfg.split, join_title=cfg.join_title, min_relevance=cfg.min_relevance)
    elif cfg.format == "qrels":
        out = load_qrels_input(
            cfg.qrels, cfg.queries, cfg.corpus, join_title=cfg.join_title, min_relevance=cfg.min_relevance
        )
    elif cfg.format == "pairs":
        out = load_pairs(
            cfg.path, cfg.columns, cfg.corpus, join_title=cfg.join_title, min_relevance=cfg.min_relevance
        )
    else:
        out = load_hf(
            cfg.path,
            cfg.split,
            cfg.columns,
            cfg.corpus,
            config=cfg.hf_config,
            join_title=cfg.join_title,
            min_relevance=cfg.min_relevance,
        )
    if cfg.max_queries is not None:
        out = replace(out, queries=out.queries[: cfg.max_queries])
    return out
