"""The query and corpus prompts a retriever is trained and evaluated with: the run's, unless told otherwise.

A dataset mined with E5-style prompts (`sources.dense.query_prompt: "query: "`, `corpus_prompt: "passage: "`)
was scored in that space, so the model trained on it should see the same prompts, and be evaluated with them
(sentence-transformers PR #3334 splits mining prompts into query and corpus prompts the same way). The order of
precedence, for training: the command line, then the run's manifest (`config.sources.dense`), then none. For
evaluation: the command line, then the checkpoint's negforge record (what it was trained with), then the
model's own sentence-transformers prompts (`query`/`document`), then none.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RetrievalPrompts:
    """Prompts prepended to queries and to passages (positives, negatives, corpus), and where they came from."""

    query: str = ""
    corpus: str = ""
    source: str = "none"  # "command line", "run manifest", "checkpoint", "model config" or "none"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def column_prompts(self, columns: list[str]) -> dict[str, str]:
        """sentence-transformers' `prompts` training argument: `anchor` gets the query prompt, every other
        text column (positive, negative, negative_1, ...) the corpus prompt; {} when there are none."""
        out = {}
        for c in columns:
            p = self.query if c == "anchor" else self.corpus if c != "label" else ""
            if p:
                out[c] = p
        return out


def from_manifest(manifest: dict | None) -> RetrievalPrompts | None:
    """The run's dense prompts from its manifest, or None when the manifest has no dense config."""
    dense = ((manifest or {}).get("config") or {}).get("sources", {}).get("dense")
    if not isinstance(dense, dict):
        return None
    return RetrievalPrompts(dense.get("query_prompt") or "", dense.get("corpus_prompt") or "", "run manifest")


def for_training(query: str | None, corpus: str | None, manifest: dict | None) -> RetrievalPrompts:
    """The prompts to train with (module doc); an argument that is None falls back to the manifest."""
    run = from_manifest(manifest)
    if query is None and corpus is None:
        return run or RetrievalPrompts()
    base = run or RetrievalPrompts()
    return RetrievalPrompts(
        base.query if query is None else query, base.corpus if corpus is None else corpus, "command line"
    )


def for_evaluation(model_path: str | Path, query: str | None, corpus: str | None) -> RetrievalPrompts:
    """The prompts to evaluate a model with (module doc); an argument that is None falls back in order."""
    found = _of_checkpoint(Path(model_path)) or _of_model_config(Path(model_path)) or RetrievalPrompts()
    if query is None and corpus is None:
        return found
    return RetrievalPrompts(
        found.query if query is None else query, found.corpus if corpus is None else corpus, "command line"
    )


def _of_checkpoint(path: Path) -> RetrievalPrompts | None:
    f = path / "negforge_checkpoint.json"
    if not f.is_file():
        return None
    p: Any = json.loads(f.read_text()).get("prompts")
    if not isinstance(p, dict):
        return None
    return RetrievalPrompts(p.get("query") or "", p.get("corpus") or "", "checkpoint")


def _of_model_config(path: Path) -> RetrievalPrompts | None:
    f = path / "config_sentence_transformers.json"
    if not f.is_file():
        return None
    p = json.loads(f.read_text()).get("prompts") or {}
    if not (p.get("query") or p.get("document")):
        return None
    return RetrievalPrompts(p.get("query") or "", p.get("document") or "", "model config")
