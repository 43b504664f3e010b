"""The LLM stage of a build: which queries ask for synthetic negatives, the run-wide generation queue, and
attaching the generated passages (scored by the dense model) to a shard's mined results. No Prefect here."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import as_completed

import numpy as np

from negforge.generators.stage import LLMStage
from negforge.generators.synthesize import GenItem, SyntheticNegative
from negforge.mining.pool import MiningContext, QueryResult, mine_queries


def generation_items(ctx: MiningContext, llm: LLMStage, results: list[QueryResult]) -> list[GenItem]:
    """One item per query that asks for synthetic negatives (seeded `fraction`); marks `llm_asked`.

    Rewrite mode starts from each query's hardest mined negative (the first of its window).
    """
    items = []
    for r in results:
        if not llm.synth.wants(r.query.id):
            continue
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
    return items


def attach_synthetic(
    ctx: MiningContext, results: list[QueryResult], made: dict[str, list[SyntheticNegative]]
) -> None:
    """Give each generated passage its dense score against its query (when dense is on) and attach it."""
    texts = [(r, g) for r in results for g in made.get(r.query.id, [])]
    scores: list[float | None] = [None] * len(texts)
    embs: list[np.ndarray | None] = [None] * len(texts)
    if texts and ctx.dense is not None and ctx.query_emb is not None:
        qpos = {q.id: i for i, q in enumerate(ctx.queries)}
        embs = list(
            ctx.dense.encoder().encode(
                [g.text for _, g in texts], batch_size=ctx.cfg.sources.dense.batch_size
            )
        )
        scores = [
            float(e @ np.asarray(ctx.query_emb[qpos[r.query.id]]))
            for e, (r, _) in zip(embs, texts, strict=True)
        ]
    for (r, g), sc, e in zip(texts, scores, embs, strict=True):
        r.synthetic.append((g, sc, e))


def pregenerate(
    ctx: MiningContext, llm: LLMStage, shards: list[list[int]], todo: list[int]
) -> Iterator[tuple[int, dict]]:
    """The run's generation stage: every todo shard is mined for its items, which all go into one queue.

    Yields (shard, its generation counters) as each shard's items complete, so the caller judges and
    writes that shard (its responses are then all in the store) while the others are still generating.
    Raises GenerationFailed (finished answers stored) when a request gets no answer.
    """
    from negforge.generators.run_queue import RunGeneration

    queue = RunGeneration(llm)
    try:
        pending = {}
        for i in todo:
            items = generation_items(ctx, llm, mine_queries(ctx, shards[i]))
            fut, synth = queue.submit(items)
            pending[fut] = (i, synth)
        for fut in as_completed(pending):
            i, synth = pending[fut]
            fut.result()
            llm.synth.absorb(synth)
            yield i, {"counts": dict(synth.stats.counts), "rejected": dict(synth.stats.rejected)}
    finally:
        queue.close()
