"""Run identity by content: what must match for a run folder's finished shards to be reused.

Never paths or times: the corpus and queries as read, the config's fingerprint, model weights fingerprints,
every file a filter reads, and the prompt templates (see `negforge.run_store.shards.ShardStore.open` for what a
mismatch does).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from negforge.config import RunConfig
from negforge.config.filters import MODEL_FILTER_CONFIGS
from negforge.generators.rule_source import RULES_VERSION
from negforge.mining.fingerprint import texts_digest
from negforge.prompts import PROMPTS_DIR
from negforge.records import TrainingInput
from negforge.rich_schema import RICH_SCHEMA_VERSION
from negforge.text_identity import IDENTITY_RULE_VERSION


def run_identity(cfg: RunConfig, data: TrainingInput) -> dict:
    """What must match for finished shards to be reused, by content (never by path or mtime).

    `config`, `corpus`, `queries` (ids, texts, positives, given negatives) and `shard_size` decide what the
    run *is*: a mismatch is refused. `models` (weights fingerprints), `files` (every file a filter reads),
    `prompts` (the template files), `precision` (each model's numeric path) and `rules` (the version of the
    identity rule's text normalisation, and of the rule operators when the rules source is on) decide how
    candidates are judged, and `shard_schema` (the rich row's version) how a shard is stored: a mismatch
    re-judges every shard.
    """
    return {
        "config": cfg.fingerprint(),
        "corpus": texts_digest(
            [f"{i}\t{t}" for i, t in zip(data.corpus.ids, data.corpus.texts, strict=True)]
        ),
        "queries": texts_digest(
            [
                f"{q.id}\t{q.text}\t{q.positive_rows}\t{[(g.row, g.score) for g in q.given]}"
                for q in data.queries
            ]
        ),
        "shard_size": cfg.output.shard_size,
        "models": model_identities(cfg),
        "files": filter_file_digests(cfg),
        "prompts": prompt_digest() if cfg.sources.llm.enabled else None,
        "precision": precision_paths(cfg),
        "rules": f"identity-v{IDENTITY_RULE_VERSION}"
        + (f",rules-v{RULES_VERSION}" if cfg.sources.rules.enabled else ""),
        "shard_schema": f"rich-v{RICH_SCHEMA_VERSION}",
    }


def precision_paths(cfg: RunConfig) -> dict[str, str]:
    """The numeric path of each model, as `negforge.precision_pin.pin_precision` resolved it in the driver
    (e.g. "torch-bf16"): the dense encoder's and each cross-encoder or NLI filter's, with its per-source
    variants' paths where they differ. "auto" only for a config nothing pinned."""
    out: dict[str, str] = {}
    if cfg.sources.dense.enabled:
        out["dense"] = cfg.sources.dense.backend
    for f in cfg.filters:
        if isinstance(f, MODEL_FILTER_CONFIGS):
            out[f"filter:{f.name or f.type}"] = f.backend
            for src in f.per_source:
                path = f.for_source(src).backend
                if path != f.backend:
                    out[f"filter:{f.name or f.type}:{src}"] = path
    return out


def filter_file_digests(cfg: RunConfig) -> dict[str, str]:
    """sha256 of each file a filter reads (answer lists), keyed by filter name and path."""
    out = {}
    for f in cfg.filters:
        path = getattr(f, "answers", None)
        if path:
            p = Path(path).expanduser()
            digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.is_file() else "missing"
            out[f"{f.name or f.type}:{p}"] = digest
    return out


def prompt_digest() -> str:
    """sha256 over the prompt template files shipped in negforge/prompts (names and contents) that judge or
    write negatives; adapt's query-writing templates are left out (what they write is the run's data)."""
    h = hashlib.sha256()
    root = PROMPTS_DIR
    for p in sorted(root.iterdir()):
        if p.name.startswith("querygen_"):  # adapt's query writer: its queries are the data, not a judge
            continue
        if p.is_file() and p.suffix in (".j2", ".yaml", ".txt", ".md"):
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def model_identities(cfg: RunConfig) -> dict[str, str]:
    """Weights fingerprints of the dense model, every model filter and the LLM (when the run asks one: LLM
    negatives or an llm_judge filter; a served name without local weights is identified by its name): a
    model retrained in place under the same path must not let shards judged by the old weights be reused."""
    from negforge.mining.fingerprint import model_fingerprint, resolve_model_path

    out = {}
    if cfg.llm_needed:
        from negforge.generators.llm_stage import llm_identity

        out["llm"] = llm_identity(cfg)[1]
    if cfg.sources.dense.enabled:
        out["dense"] = model_fingerprint(resolve_model_path(cfg.sources.dense.model))
    for f in cfg.filters:
        if isinstance(f, MODEL_FILTER_CONFIGS):
            out[f"filter:{f.name or f.type}"] = model_fingerprint(resolve_model_path(f.model))
    return out


def report_changes(changes: list[str]) -> None:
    """Tell the user (stderr) that finished shards are redone because a judge changed."""
    for c in changes:
        print(f"negforge: {c}; judging every shard again", file=sys.stderr)
