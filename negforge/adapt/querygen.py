"""Queries written by the run's LLM for corpus passages: InPars-style generic few-shot (Bonifacio et al.
2022, "InPars: Data Augmentation for Information Retrieval using Large Language Models") or Promptagator-
style task-specific few-shot (Dai et al. 2022, "Promptagator: Few-shot Dense Retrieval From 8 Examples").

One request per (passage, j < per_passage); the reply is JSON {"query": "..."} (json_schema asked, and
recovered from fences or prose when a server ignores it). Every answer is appended to the run's generation
store as it arrives under a key of (model fingerprint, template name and sha, messages, parameters), so a
rerun sends only what is missing. Each query gets a status: `kept`, or the reason it was rejected
(`empty_response`, `bad_json`, `schema`, `too_short`, `too_long`, `copy_of_passage`, `copy_of_example`; and,
after the consistency filter, `duplicate` from `dedupe_queries`), and provenance (template, model and its
weights fingerprint, source passage, mean token log-probability when the server returns logprobs).

Stages: `plan_queries` (keys, no server needed) → `ask_queries` (only what the store lacks) →
`collect_queries`; `generate_queries` runs all three.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

import jinja2
import numpy as np
from pydantic import BaseModel, field_validator

from negforge.adapt.inputs import FewShotExample, read_fewshot
from negforge.config.adapt import QueryGenConfig
from negforge.generators.checks import parse_reply
from negforge.generators.client import ChatRequest, run_sync
from negforge.generators.llm_stage import LLMEndpoint
from negforge.generators.store import GenerationStore
from negforge.progress import progress_bar
from negforge.prompts import PROMPTS_DIR, template_identity
from negforge.records import Corpus
from negforge.text_identity import norm_text, word_key

BUILTIN_EXAMPLES = PROMPTS_DIR / "querygen_examples.jsonl"
QUERY_SCHEMA: dict = {
    "type": "object",
    "properties": {"query": {"type": "string"}},
    "required": ["query"],
    "additionalProperties": False,
}
STATUSES = (
    "kept", "no_answer", "empty_response", "bad_json", "schema", "too_short", "too_long", "copy_of_passage",
    "copy_of_example", "duplicate",
)  # fmt: skip
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)), undefined=jinja2.StrictUndefined, autoescape=False
)


class QueryGenFailed(RuntimeError):
    """Some query requests got no answer at all (server down, timeouts); the answers that came are stored
    and a rerun sends only the rest."""


class QueryReply(BaseModel):
    query: str

    @field_validator("query")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()


@dataclass(frozen=True)
class QueryTemplate:
    """A query-writing template (system + user files under negforge/prompts) with version and content sha."""

    name: str
    version: str
    sha: str

    def render(self, document: str, examples: list[FewShotExample], task: str, max_chars: int) -> list[dict]:
        """Chat messages: the fixed system block, each example as a user turn and its JSON answer (small
        models copy an example's shape far better than they follow a description), then the document."""
        system = _env.get_template(f"{self.name}.j2").render(task=task).strip()
        user = _env.get_template(f"{self.name}.user.j2")

        def turn(doc: str) -> dict:
            return {"role": "user", "content": user.render(document=_as_data(doc[:max_chars])).strip()}

        msgs = [{"role": "system", "content": system}]
        for ex in examples:
            msgs += [turn(ex.passage), {"role": "assistant", "content": json.dumps({"query": ex.query})}]
        return [*msgs, turn(document)]


@cache
def load_query_template(kind: str) -> QueryTemplate:
    """`inpars` or `promptagator`: the template, its version (first line's `version:`) and sha of both files."""
    name = f"querygen_{kind}"
    return QueryTemplate(name, *template_identity(name))


def _as_data(text: str) -> str:
    """Corpus text is data: anything that would open or close a <document> tag is blanked."""
    return re.sub(r"<\s*/?\s*document[^>]*>", " ", text, flags=re.IGNORECASE)


@dataclass
class GeneratedQuery:
    """One written query and its provenance. `status` is `kept` or the rejection reason (see module doc);
    `mean_logprob` is the mean log-probability (nats per token, <= 0) of the query's tokens, None when
    the server returned no logprobs."""

    id: str
    text: str | None
    passage_id: str
    passage_row: int
    template: str
    template_sha: str
    model: str
    status: str
    request_key: str
    mean_logprob: float | None = None
    consistency_rank: int | None = None  # the passage's rank for this query (None: beyond the depth)
    model_fingerprint: str | None = None
    extra_passage_ids: list[str] = field(default_factory=list)  # passages that wrote the same query

    def provenance(self) -> dict:
        return {
            "template": self.template, "template_sha": self.template_sha, "model": self.model,
            "model_fingerprint": self.model_fingerprint, "passage_id": self.passage_id,
            "also_written_for": self.extra_passage_ids, "mean_logprob": self.mean_logprob,
            "consistency_rank": self.consistency_rank,
        }  # fmt: skip


@dataclass
class QueryGenResult:
    """Every written query (kept and rejected) in request order, counts by status, and token totals."""

    queries: list[GeneratedQuery]
    counts: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    from_store: int = 0

    def kept(self) -> list[GeneratedQuery]:
        return [q for q in self.queries if q.status == "kept"]


def examples_for(cfg: QueryGenConfig) -> list[FewShotExample]:
    """The few-shot pool: the user's file (adapt.generate.fewshot) or the built-in generic examples."""
    return read_fewshot(cfg.fewshot or BUILTIN_EXAMPLES)


def request_key(fingerprint: str, template: QueryTemplate, messages: list, params: dict) -> str:
    """Store key of one query request: any change of model, template, prompt or parameters asks again."""
    blob = json.dumps(
        {"kind": "querygen", "model": fingerprint, "template": [template.name, template.sha],
         "messages": messages, "params": params, "schema": QUERY_SCHEMA},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def mean_query_logprob(tokens: list | None, query: str) -> float | None:
    """Mean logprob of the completion tokens that spell `query` (JSON scaffolding left out); all tokens when
    the query cannot be located; None without logprobs."""
    if not tokens:
        return None
    joined = "".join(t[0] or "" for t in tokens)
    if query:  # the reply is JSON: find the query as it is written there (quotes, backslashes escaped)
        escaped = json.dumps(query, ensure_ascii=False)[1:-1]
        at = joined.find(escaped)
        query = escaped if at >= 0 else query
        at = at if at >= 0 else joined.find(query)
    else:
        at = -1
    picked, off = [], 0
    for t in tokens:
        n = len(t[0] or "")
        if (at < 0 or (off < at + len(query) and off + n > at)) and math.isfinite(t[1]):
            picked.append(t[1])
        off += n
    return round(sum(picked) / len(picked), 5) if picked else None


def check_query(text: str, passage: str, examples: set[str], seen: set[str], cfg: QueryGenConfig) -> str:
    """`kept` or the rejection reason of one parsed query (see the module doc); `seen` holds the normalised
    texts of queries kept so far (a duplicate is a normalised repeat of any of them)."""
    words = text.split()
    if len(words) < cfg.min_words:
        return "too_short"
    if len(words) > cfg.max_words:
        return "too_long"
    n = word_key(text)
    if not n:
        return "too_short"
    np_ = word_key(passage)
    if n == np_ or (len(n.split()) >= cfg.copy_min_words and f" {n} " in f" {np_} "):
        return "copy_of_passage"
    if n in examples:
        return "copy_of_example"
    if n in seen:
        return "duplicate"
    return "kept"


@dataclass
class QueryPlan:
    """Every query request of a run, in order: (passage id, corpus row, request); the template; and the
    normalised few-shot queries (a reply that repeats one is `copy_of_example`)."""

    template: QueryTemplate
    requests: list[tuple[str, int, ChatRequest]]
    example_queries: set[str]

    def missing(self, store: GenerationStore) -> list[tuple[str, int, ChatRequest]]:
        """The requests the store has no answer for."""
        return [p for p in self.requests if p[2].key not in store]


def request_seed(seed: int, row: int, j: int) -> int:
    """The seed of request j for a corpus row (in the key always; sent when sources.llm.send_seed)."""
    return int(np.random.default_rng([seed, row, j]).integers(2**31 - 1))


def plan_queries(
    corpus: Corpus,
    rows: list[int],
    cfg: QueryGenConfig,
    fingerprint: str,
    *,
    seed: int,
    examples: list[FewShotExample],
    send_seed: bool = False,
) -> QueryPlan:
    """`cfg.per_passage` requests for each corpus row in `rows`: the template's system block, a seeded
    choice of `cfg.max_examples` few-shot examples (never one whose passage is the target passage or part
    of it), then the passage. Keys cover the model fingerprint, template, messages, parameters and seed."""
    tpl = load_query_template(cfg.template)
    params: dict = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens}
    if cfg.logprobs:
        params["logprobs"] = True
    plan: list[tuple[str, int, ChatRequest]] = []
    ex_passages = [(e, norm_text(e.passage)) for e in examples]
    for row in rows:
        target = norm_text(corpus.texts[row])
        usable = [e for e, n in ex_passages if n not in target]
        for j in range(cfg.per_passage):
            s = request_seed(seed, row, j)
            pick = np.random.default_rng(s).permutation(len(usable))[: cfg.max_examples]
            msgs = tpl.render(
                corpus.texts[row],
                [usable[i] for i in sorted(pick)],
                cfg.task_description,
                cfg.max_passage_chars,
            )
            sent = {**params, "seed": s} if send_seed else params
            key = request_key(fingerprint, tpl, msgs, {**params, "seed": s})
            plan.append((corpus.ids[row], row, ChatRequest(key, msgs, sent, QUERY_SCHEMA)))
    return QueryPlan(tpl, plan, {word_key(e.query) for e in examples})


def ask_queries(todo: list[tuple[str, int, ChatRequest]], endpoint: LLMEndpoint) -> None:
    """Send `todo` (bounded by sources.llm.concurrency), appending each answer to the store as it arrives.

    Raises QueryGenFailed after every request has been tried when some got no answer (answers are stored)."""
    failed: Counter = Counter()

    async def ask() -> None:
        client = endpoint.client()
        try:
            with progress_bar("write queries", len(todo)) as advance:

                async def one(pid: str, req: ChatRequest) -> None:
                    res = await client.complete(req)
                    advance(1)
                    if res.error:
                        failed[res.error] += 1
                        return
                    endpoint.store.append(
                        {"key": req.key, "kind": "querygen", "passage_id": pid, "text": res.text,
                         "logprobs": [t[:2] for t in res.logprobs] if res.logprobs else None,
                         "prompt_tokens": res.prompt_tokens, "completion_tokens": res.completion_tokens}
                    )  # fmt: skip

                await asyncio.gather(*(one(pid, req) for pid, _, req in todo))
        finally:
            await client.close()

    if todo:
        run_sync(ask)
    if failed:
        n = sum(failed.values())
        raise QueryGenFailed(
            f"{n} of {len(todo)} query requests got no answer ({dict(failed)}); the {len(todo) - n} answers "
            "are stored: rerun to send only the rest"
        )


def collect_queries(
    plan: QueryPlan, corpus: Corpus, cfg: QueryGenConfig, store: GenerationStore, model: str, fingerprint: str
) -> QueryGenResult:
    """Every planned query read from the store and checked (`check_query`); duplicates are marked later,
    after the consistency filter (`dedupe_queries`). Requests without an answer are `no_answer`."""
    result = QueryGenResult([])
    per_row: Counter = Counter()
    text: str | None
    status: str
    for pid, row, req in plan.requests:
        rec = store.get(req.key)
        if rec is None:
            status, text, rec = "no_answer", None, {}
        else:
            result.prompt_tokens += int(rec.get("prompt_tokens") or 0)
            result.completion_tokens += int(rec.get("completion_tokens") or 0)
            parsed = parse_reply(rec.get("text"), QueryReply)
            text = parsed.value.query if parsed.value is not None else None
            if parsed.problem:
                status = parsed.problem
            elif not text:
                status = "empty_response"
            else:
                status = check_query(text, corpus.texts[row], plan.example_queries, set(), cfg)
        qid = f"gq-{pid}-{per_row[pid]}"
        per_row[pid] += 1
        result.queries.append(
            GeneratedQuery(
                qid, text, pid, row, plan.template.name, plan.template.sha, model, status, req.key,
                mean_query_logprob(rec.get("logprobs"), text or ""), model_fingerprint=fingerprint,
            )
        )  # fmt: skip
        result.counts[status] += 1
    return result


def dedupe_queries(queries: list[GeneratedQuery]) -> int:
    """Mark repeats among the `kept` queries (same normalised text) as `duplicate`, first one wins. When the
    repeat was written for another passage, that passage becomes an extra positive of the first query
    (it produced the same query, so it must never be mined as that query's negative). Returns how many."""
    first: dict[str, GeneratedQuery] = {}
    n = 0
    for q in queries:
        if q.status != "kept":
            continue
        k = word_key(q.text or "")
        if k not in first:
            first[k] = q
            continue
        keep = first[k]
        if q.passage_id != keep.passage_id and q.passage_id not in keep.extra_passage_ids:
            keep.extra_passage_ids.append(q.passage_id)
        q.status = "duplicate"
        n += 1
    return n


def generate_queries(
    corpus: Corpus,
    rows: list[int],
    cfg: QueryGenConfig,
    endpoint: LLMEndpoint,
    *,
    seed: int,
    examples: list[FewShotExample] | None = None,
) -> QueryGenResult:
    """Plan, ask what the store lacks, and collect (see the module doc): `cfg.per_passage` queries for each
    corpus row in `rows`, with few-shot examples from `examples` or `examples_for(cfg)`. Duplicates are not
    marked here (`dedupe_queries`, after filtering). Raises QueryGenFailed when requests got no answer."""
    plan = plan_queries(
        corpus, rows, cfg, endpoint.model_fingerprint, seed=seed,
        examples=examples if examples is not None else examples_for(cfg), send_seed=endpoint.llm.send_seed,
    )  # fmt: skip
    todo = plan.missing(endpoint.store)
    ask_queries(todo, endpoint)
    res = collect_queries(plan, corpus, cfg, endpoint.store, endpoint.llm.model, endpoint.model_fingerprint)
    res.from_store = len(plan.requests) - len(todo)
    return res
