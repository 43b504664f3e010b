"""Positives and corpus in: BEIR folders, qrels files, pair files, Hugging Face datasets."""

from __future__ import annotations

from dataclasses import replace

from negforge.config import DataConfig
from negforge.records import Corpus, TrainingInput
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
        out = load_beir(
            _given(cfg.path, "data.path"),
            cfg.split,
            join_title=cfg.join_title,
            min_relevance=cfg.min_relevance,
        )
    elif cfg.format == "qrels":
        out = load_qrels_input(
            _given(cfg.qrels, "data.qrels"),
            _given(cfg.queries, "data.queries"),
            _given(cfg.corpus, "data.corpus"),
            join_title=cfg.join_title,
            min_relevance=cfg.min_relevance,
        )
    elif cfg.format == "pairs":
        out = load_pairs(
            _given(cfg.path, "data.path"),
            cfg.columns,
            cfg.corpus,
            join_title=cfg.join_title,
            min_relevance=cfg.min_relevance,
        )
    else:
        out = load_hf(
            _given(cfg.path, "data.path"),
            cfg.split,
            cfg.columns,
            cfg.corpus,
            config=cfg.hf_config,
            join_title=cfg.join_title,
            min_relevance=cfg.min_relevance,
        )
    if cfg.max_queries is not None:
        out = replace(out, queries=out.queries[: cfg.max_queries])
    if cfg.max_passage_chars is not None:
        out = replace(out, layout=[*out.layout, *cut_long_passages(out.corpus, cfg.max_passage_chars)])
    return out


def cut_long_passages(corpus: Corpus, max_chars: int) -> list[str]:
    """Cut every document text longer than `max_chars` characters to that length, in place (a 5 MB passage
    would otherwise land whole in every triplet that uses it); returns the layout note, [] when none was cut."""
    cut = [(corpus.ids[r], len(t)) for r, t in enumerate(corpus.texts) if len(t) > max_chars]
    if not cut:
        return []
    for r, t in enumerate(corpus.texts):
        if len(t) > max_chars:
            corpus.texts[r] = t[:max_chars]
    ex = ", ".join(f"{d} ({n:,} characters)" for d, n in cut[:3])
    return [
        f"{len(cut)} documents longer than data.max_passage_chars={max_chars:,} characters were cut to that "
        f"length (e.g. {ex})"
    ]


def _given(value: str | None, key: str) -> str:
    """A path the config validator requires for this format; InputError naming `key` if it is missing."""
    if value is None:
        raise InputError(f"{key} is required for this data.format")
    return value
