"""The LLM stage of a build: which queries ask for synthetic negatives, the run-wide generation queue, and
attaching the generated passages (scored by the dense model) to a shard's mined results. No Prefect here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, wait

import numpy as np

from negforge.generators.llm_stage import LLMStage
from negforge.generators.synthesize import EditSpan, GenItem
from negforge.mining.pool import MiningContext, mine_queries
from negforge.records import QueryResult, SyntheticNegative, Written


def generation_items(ctx: MiningContext, llm: LLMStage, results: list[QueryResult]) -> list[GenItem]:
    """One item per query that asks for synthetic negatives (seeded `fraction`); marks `llm_asked`.

    Rewrite mode starts from each query's hardest mined negative (the first of its window); edit mode also
    gets the sentence to rewrite in the positive and in that negative (the one closest to the query).
    """
    asked = [r for r in results if llm.synth.wants(r.query.id)]
    items = []
    for r in asked:
        r.llm_asked = True
        base = r.window[0] if r.window else None
        items.append(
            GenItem(
                r.query.id,
                r.query.text,
                ctx.corpus.texts[r.query.positive_rows[0]],
                ctx.corpus.ids[base.candidate.row] if base else None,
                ctx.corpus.texts[base.candidate.row] if base else None,
            )
        )
    if llm.cfg.sources.llm.mode == "edit" and items:
        pos = positive_spans(ctx, asked)
        negs = _spans(
            ctx, asked, [(it.base_doc_id, it.base_text) if it.base_text else None for it in items], "negative"
        )
        for it, p, n in zip(items, pos, negs, strict=True):
            it.edit_positive, it.edit_negative = p, n
    return items


def _spans(
    ctx: MiningContext,
    results: list[QueryResult],
    passages: list[tuple[str | None, str] | None],
    kind: str,
    rows: Sequence[int | None] | None = None,
) -> list[EditSpan | None]:
    """`rows[i]`: the corpus row of passage i, when it is one: its joined title is never a span."""
    from negforge.generators.spans import choose_spans

    if ctx.dense is None or ctx.query_emb is None:
        return [None] * len(results)
    qpos = {q.id: i for i, q in enumerate(ctx.queries)}
    qemb = np.asarray(ctx.query_emb[[qpos[r.query.id] for r in results]])
    starts = None
    if rows is not None:
        starts = [_body_start(ctx.corpus, r) if r is not None else 0 for r in rows]
    return choose_spans(ctx.dense.encode_passages, qemb, passages, kind, starts)


def _body_start(corpus, row: int) -> int:
    """Where a corpus row's body begins in its text (after the title BEIR joins in front), 0 when untitled."""
    title, text = corpus.titles[row], corpus.texts[row]
    return len(title) + 1 if title and text.startswith(title + " ") else 0


def positive_spans(ctx: MiningContext, results: list[QueryResult]) -> list[EditSpan | None]:
    """The sentence of each query's first positive that matches the query best (edit bases), from its body:
    never the joined title."""
    rows = [r.query.positive_rows[0] for r in results]
    return _spans(ctx, results, [(ctx.corpus.ids[i], ctx.corpus.texts[i]) for i in rows], "positive", rows)


def add_rule_negatives(ctx: MiningContext, results: list[QueryResult]) -> dict:
    """The `rules` source for a shard: verified rule edits of each positive, attached like LLM passages.

    Returns the shard's counters (edits made, queries without an applicable sentence or operator).
    """
    from negforge.generators.rule_source import rule_negatives
    from negforge.generators.rules import entity_pool

    cfg = ctx.cfg.sources.rules
    if ctx.entity_pool is None:
        rng = np.random.default_rng(ctx.cfg.seed)
        n = len(ctx.corpus)
        sample = rng.choice(n, size=min(n, cfg.entity_pool_docs), replace=False)
        ctx.entity_pool = entity_pool([ctx.corpus.texts[i] for i in sorted(sample)])
    spans = positive_spans(ctx, results)
    rejected: Counter = Counter()
    made = rule_negatives(
        [r.query.id for r in results], spans, cfg, ctx.cfg.seed, ctx.entity_pool,
        queries=[r.query.text for r in results], rejected=rejected,
    )  # fmt: skip
    attach_synthetic(ctx, results, made)
    kinds: dict[str, int] = {}
    for negs in made.values():
        for g in negs:
            kinds[g.perturbation] = kinds.get(g.perturbation, 0) + 1
    return {
        "made": sum(kinds.values()),
        "by_kind": kinds,
        "queries_without_edit": len(results) - len(made),
        "rejected": dict(rejected),
    }


def attach_synthetic(
    ctx: MiningContext, results: list[QueryResult], made: dict[str, list[SyntheticNegative]]
) -> None:
    """Give each generated passage its dense score against its query (when dense is on) and attach it."""
    texts = [(r, g) for r in results for g in made.get(r.query.id, [])]
    scores: list[float | None] = [None] * len(texts)
    embs: list[np.ndarray | None] = [None] * len(texts)
    if texts and ctx.dense is not None and ctx.query_emb is not None:
        qpos = {q.id: i for i, q in enumerate(ctx.queries)}
        embs = list(ctx.dense.encode_passages([g.text for _, g in texts]))
        scores = [
            float(e @ np.asarray(ctx.query_emb[qpos[r.query.id]]))
            for e, (r, _) in zip(embs, texts, strict=True)
        ]
    for (r, g), sc, e in zip(texts, scores, embs, strict=True):
        r.synthetic.append(Written(g, sc, e))


def pregenerate(
    ctx: MiningContext, llm: LLMStage, shards: list[list[int]], todo: list[int], lookahead: int | None = None
) -> Iterator[tuple[int, dict]]:
    """The run's generation stage: todo shards are mined for their items, which all go into one queue.

    Shards are mined and queued ahead of the answers, but at most `lookahead` items (default: 8 × the
    client's concurrency, at least 64) wait in the queue at once, so a 100,000-query run neither mines every
    shard before the first answer nor holds every item in memory; the server still never runs dry while a
    shard is being mined. Yields (shard, its generation counters) as each shard's items complete, so the
    caller judges and writes that shard (its responses are then all in the store) while the others are still
    generating. Raises GenerationFailed (finished answers stored) when a request gets no answer, but only
    after every other shard in flight has finished and been yielded: a crash loses no finished shard.
    """
    from negforge.generators.run_queue import RunGeneration

    bound = lookahead or max(64, 8 * llm.cfg.sources.llm.concurrency)
    queue = RunGeneration(llm)
    pending: dict = {}
    queued = 0

    def finish(fut) -> tuple[int, dict]:
        nonlocal queued
        i, synth, n = pending.pop(fut)
        queued -= n
        fut.result()
        llm.synth.absorb(synth)
        return i, {"counts": dict(synth.stats.counts), "rejected": dict(synth.stats.rejected)}

    failed: list = []

    def ready() -> Iterator[tuple[int, dict]]:
        """Finish what is done: shards that succeeded, in shard order; a failed one is set aside, so one dead
        request never keeps a finished shard from being written."""
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for fut in sorted(done, key=lambda f: pending[f][0]):
            if fut.exception() is not None:
                pending.pop(fut)
                failed.append(fut)
            else:
                yield finish(fut)

    try:
        for i in todo:
            if failed:
                break  # stop mining: the run is going to fail; what is in flight still completes below
            items = generation_items(ctx, llm, mine_queries(ctx, shards[i]))
            fut, synth = queue.submit(items)
            pending[fut] = (i, synth, len(items))
            queued += len(items)
            while queued > bound and len(pending) > 1 and not failed:
                yield from ready()
        while pending:  # drain: every shard in flight is written if its answers came, before any failure
            yield from ready()
        if failed:
            failed[0].result()  # raises GenerationFailed: the finished answers are stored, a rerun resumes
    finally:
        queue.close()
