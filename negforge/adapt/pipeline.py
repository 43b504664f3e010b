"""`negforge adapt`: a corpus alone in, an adapted retriever out. No Prefect here (flows/adapt.py wires it).

Stages, each resumable and cached: load the corpus and sample passages → write queries with the run's LLM
(generation store) → consistency filter → write the kept (query, passage) pairs as a BEIR folder → the usual
negforge build on it (mining, identity rule, filters, mixing; shards resume) → train (a checkpoint is reused
when its dataset and settings are unchanged) → evaluate zero-shot and adapted on an optional labeled split.
Everything lands in `output.dir/<run_name>-adapt/` (adapt.json tells the story with counts and seconds per
stage) and the build in `output.dir/<run_name>/`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negforge.adapt.consistency import apply_consistency
from negforge.adapt.inputs import load_corpus_only, sample_passages
from negforge.adapt.querygen import (
    GeneratedQuery,
    QueryGenResult,
    ask_queries,
    collect_queries,
    dedupe_queries,
    examples_for,
    plan_queries,
)
from negforge.config import DataConfig, RunConfig
from negforge.records import Corpus
from negforge.sources.readers import InputError


class AdaptError(ValueError):
    """An adapt run that cannot go on as configured (no query survived, a retriever that is switched off)."""


@dataclass
class AdaptResult:
    """Where things are and what happened: the adapt folder, its manifest (adapt.json as a dict), the
    build's run folder, the trained checkpoint (None when training was off), evaluation rows."""

    adapt_dir: Path
    manifest: dict
    run_dir: Path | None = None
    checkpoint: Path | None = None
    evaluation: list[dict] = field(default_factory=list)


def adapt_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output.dir).expanduser() / f"{cfg.run_name}-adapt"


def _body(corpus: Corpus, row: int) -> tuple[str, str]:
    """(title, body) of a corpus row as read (texts hold 'title body' when titles were joined)."""
    title, text = (corpus.titles[row] if corpus.titles else ""), corpus.texts[row]
    if title and text.startswith(title + " "):
        return title, text[len(title) + 1 :]
    return "", text


def write_beir(dst: Path, corpus: Corpus, kept: list[GeneratedQuery]) -> str:
    """The kept queries as a BEIR folder (corpus.jsonl, queries.jsonl with provenance, qrels/train.tsv),
    written atomically; returns a digest of the queries and qrels (the build's data identity follows)."""
    tmp = dst.with_name(dst.name + ".tmp")
    (tmp / "qrels").mkdir(parents=True, exist_ok=True)
    with (tmp / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for i, did in enumerate(corpus.ids):
            title, body = _body(corpus, i)
            f.write(json.dumps({"_id": did, "title": title, "text": body}, ensure_ascii=False) + "\n")
    h = hashlib.sha256()
    with (tmp / "queries.jsonl").open("w", encoding="utf-8") as f:
        for q in kept:
            line = json.dumps({"_id": q.id, "text": q.text, "metadata": q.provenance()}, ensure_ascii=False)
            f.write(line + "\n")
            h.update(line.encode())
    with (tmp / "qrels" / "train.tsv").open("w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q in kept:
            for pid in [
                q.passage_id,
                *q.extra_passage_ids,
            ]:  # passages that wrote the same query: positives too
                f.write(f"{q.id}\t{pid}\t1\n")
                h.update(f"{q.id}\t{pid}".encode())
    if dst.exists():
        import shutil

        shutil.rmtree(dst)
    tmp.replace(dst)
    return h.hexdigest()[:16]


def build_config(cfg: RunConfig, beir: Path) -> RunConfig:
    """The run config of the build on the written queries (BEIR train split; join_title already applied)."""
    data = DataConfig(format="beir", path=str(beir), split="train", join_title=cfg.data.join_title)
    return cfg.model_copy(update={"data": data})


def _stage(manifest: dict, name: str, t0: float, **counts: Any) -> None:
    manifest["stages"].append({"stage": name, "seconds": round(time.perf_counter() - t0, 2), **counts})


def _generation_section(gen: QueryGenResult) -> dict:
    """Counts as written (before the consistency filter): `valid` passed every check of `check_query`."""
    n = len(gen.queries)
    valid = gen.counts["kept"]
    return {
        "requests": n, "from_store": gen.from_store, "by_status": dict(gen.counts), "valid": valid,
        "valid_share": round(valid / n, 4) if n else None,
        "prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
    }  # fmt: skip


def adapt(cfg: RunConfig, *, overwrite: bool = False, train: bool = True) -> AdaptResult:
    """Run every stage (see the module doc); returns where everything is.

    Raises InputError for a config whose data is not `format: corpus`, an empty corpus, a passage count
    larger than the corpus, or a bad few-shot file (file:line and column named); QueryGenFailed when query
    requests got no answer (answers are stored: rerun to resume); AdaptError when no query survives or the consistency
    retriever is switched off."""
    from negforge.generators.llm_stage import LLMEndpoint, generation_store, llm_identity, start_llm
    from negforge.mining.bm25 import BM25Miner
    from negforge.mining.dense import DenseMiner
    from negforge.mining.fingerprint import texts_digest
    from negforge.pipeline import run

    if cfg.data.format != "corpus":
        raise InputError(
            f"negforge adapt reads a corpus alone: set data.format=corpus (got {cfg.data.format!r})"
        )
    a = cfg.adapt
    need = a.consistency.retriever
    off = [s for s in ("bm25", "dense") if need in (s, "hybrid") and not getattr(cfg.sources, s).enabled]
    if off:
        raise AdaptError(f"adapt.consistency.retriever={need} needs sources.{off[0]}.enabled=true")
    out = adapt_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "run_name": cfg.run_name,
        "stages": [],
        "config": cfg.adapt.model_dump(mode="json"),
    }
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    corpus, skips, origin = load_corpus_only(cfg.data)
    rows = sample_passages(corpus, a.generate.passages, cfg.seed)
    examples = examples_for(a.generate)
    _stage(manifest, "load", t0, corpus=len(corpus), skipped=skips.counts(), passages=len(rows),
           fewshot_examples=len(examples), origin=origin)  # fmt: skip

    t0 = time.perf_counter()
    _, fingerprint = llm_identity(cfg)
    store = generation_store(cfg, fingerprint)
    g = a.generate
    plan = plan_queries(corpus, rows, g, fingerprint, seed=cfg.seed, examples=examples,
                        send_seed=cfg.sources.llm.send_seed)  # fmt: skip
    todo = plan.missing(store)
    store.close()
    if todo:  # the LLM starts only when the store lacks answers (a rerun that changes k or training does not)
        llm = start_llm(cfg)
        try:
            ask_queries(todo, LLMEndpoint.from_stage(llm))
            manifest["llm"] = llm.describe()
            store = llm.synth.store
        finally:
            llm.close()
    gen = collect_queries(plan, corpus, g, store, cfg.sources.llm.model, fingerprint)
    gen.from_store = len(plan.requests) - len(todo)
    secs = time.perf_counter() - t0
    manifest["generation"] = _generation_section(gen)
    _stage(manifest, "generate", t0, requests=len(gen.queries), sent=len(todo), valid=gen.counts["kept"],
           queries_per_s=round(len(todo) / secs, 3) if todo and secs else None)  # fmt: skip

    t0 = time.perf_counter()
    bm25 = dense = None
    if need in ("bm25", "hybrid"):
        bm25 = BM25Miner(cfg.sources.bm25, cfg.cache_path)
        bm25.prepare(corpus.texts, texts_digest(corpus.texts))
    if need in ("dense", "hybrid"):
        dense = DenseMiner(cfg.sources.dense, cfg.cache_path)
        dense.prepare(corpus.texts, cfg.seed)
    rep = apply_consistency(gen.queries, a.consistency, corpus, bm25, dense)
    dupes = dedupe_queries(gen.queries)  # after filtering: a repeat whose first copy failed is not lost
    kept = gen.kept()
    manifest["consistency"] = {
        "retriever": need, "k": a.consistency.k, "logprob_keep": a.consistency.logprob_keep,
        "judged": rep.judged, "pass_rate": None if rep.pass_rate is None else round(rep.pass_rate, 4),
        "counts": dict(rep.counts), "duplicates": dupes, "examples": rep.examples,
    }  # fmt: skip
    _stage(manifest, "consistency", t0, judged=rep.judged, kept=len(kept))
    with (out / "queries.jsonl").open("w", encoding="utf-8") as f:  # every written query, kept or not
        for q in gen.queries:
            f.write(
                json.dumps(
                    {"id": q.id, "text": q.text, "status": q.status, **q.provenance()}, ensure_ascii=False
                )
                + "\n"
            )
    if not kept:
        _write(out, manifest, t_all)
        raise AdaptError(
            f"no generated query survived ({dict(gen.counts)}; consistency {dict(rep.counts)}): see "
            f"{out / 'queries.jsonl'}; try more passages, adapt.consistency.k, or another template"
        )

    t0 = time.perf_counter()
    digest = write_beir(out / "generated", corpus, kept)
    build = run(build_config(cfg, out / "generated"), overwrite=overwrite)
    m = build.manifest
    _stage(manifest, "mine", t0, queries=len(kept), run_dir=str(build.run_dir),
           negatives=sum(m.get("counts", {}).get("selected", {}).values()))  # fmt: skip
    manifest["queries_digest"] = digest
    result = AdaptResult(out, manifest, build.run_dir)

    if train:
        result.checkpoint = _train(
            cfg, build.run_dir, f"{digest}-{m.get('config_fingerprint')}", out, manifest
        )
        if a.eval.path:
            result.evaluation = _evaluate(cfg, result.checkpoint, manifest)
    _write(out, manifest, t_all)
    result.manifest = manifest
    return result


def _train(cfg: RunConfig, run_dir: Path, digest: str, out: Path, manifest: dict) -> Path:
    """Train on the build (or reuse the checkpoint whose stamp matches `digest` and the settings)."""
    from negforge.training.train import TrainConfig, train

    t0 = time.perf_counter()
    t = cfg.adapt.train
    tc = TrainConfig(
        dataset=run_dir, config=t.config, model=t.model or cfg.sources.dense.model, loss=t.loss,
        batch_size=t.batch_size, epochs=t.epochs, max_steps=t.max_steps, learning_rate=t.learning_rate,
        seed=t.seed, output_dir=out / "checkpoint",
    )  # fmt: skip
    # the checkpoint is reused only for the same queries, the same build (config fingerprint) and settings
    stamp = {"data": digest, "train": tc.model_dump(mode="json")}
    stamp_path = out / "checkpoint" / "adapt_stage.json"
    if stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        _stage(manifest, "train", t0, reused=True)
        return out / "checkpoint"
    stamp_path.unlink(missing_ok=True)  # a crash while training must not leave an old stamp by new weights
    res = train(tc)
    stamp_path.write_text(json.dumps(stamp, sort_keys=True))
    _stage(manifest, "train", t0, reused=False, steps=res.steps, loss=t.loss)
    return res.output_dir


def _evaluate(cfg: RunConfig, checkpoint: Path, manifest: dict) -> list[dict]:
    from negforge.training.evaluate import evaluate

    t0 = time.perf_counter()
    e = cfg.adapt.eval
    assert e.path is not None  # the caller evaluates only when adapt.eval.path is set
    base = cfg.adapt.train.model or cfg.sources.dense.model
    rows: list[dict[str, Any]] = []
    for label, model in (("zero-shot", base), ("adapted", str(checkpoint))):
        r: dict[str, Any] = dict(
            evaluate(model, e.path, e.split, cache_dir=cfg.cache_path, max_queries=e.max_queries)
        )
        r["row"] = label
        rows.append(r)
    for r in rows[1:]:
        r["delta_ndcg@10"] = round(r["ndcg@10"] - rows[0]["ndcg@10"], 5)
    manifest["evaluation"] = rows
    _stage(manifest, "evaluate", t0, split=e.split, queries=rows[0]["queries"])
    return rows


def _write(out: Path, manifest: dict, t_all: float) -> None:
    manifest["seconds"] = round(time.perf_counter() - t_all, 2)
    tmp = out / "adapt.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    tmp.replace(out / "adapt.json")
