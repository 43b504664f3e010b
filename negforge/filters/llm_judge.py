"""LLM judge: the run's own LLM answers "does this passage answer the query?" for every candidate, and
candidates it says answer their query are dropped as likely false negatives (`llm_says_answers`).

The question is a constrained yes/no: `response_format` is a JSON schema {"answer": "yes"|"no"} and the
request asks for logprobs (`logprobs: true, top_logprobs: k`). Scale: `judge_p_yes` is a probability in
[0, 1]. Where the server returns logprobs, it is the "yes" mass over the "yes" + "no" mass among the top
alternatives of the token where the answer word is generated (`judge_source: logprobs`); otherwise it is 1.0
or 0.0 from the parsed answer (`judge_source: answer`). The reply is parsed and validated here whatever the
server claims (servers may ignore response_format; JSON is recovered from code fences and prose); a reply
that cannot be parsed keeps its candidate, marked `judge_unparsed` in its scores and counted in the
filter's `counts` (manifest: filters.stack), never silently.

Requests of a whole batch (every query of a shard) are sent concurrently: while the run's generation stage is
running, through its run-wide queue's client (one concurrency bound for generation and judging together,
counted as `via_run_queue`), otherwise through a GeneratorClient of their own (bounded by `concurrency`,
default sources.llm.concurrency) and each answer is stored in the run's
GenerationStore under its request key (model fingerprint, template name and sha, messages, parameters,
schema) as it arrives, so a rerun sends nothing already answered. When a request gets no answer at all the
batch raises `JudgeFailed` (the shard is not written with unjudged candidates; rerun to resume).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
from pydantic import BaseModel, field_validator

from negforge.config import LLMJudgeFilterConfig
from negforge.filters.base import CandidateBatch, Verdict
from negforge.generators.checks import parse_reply
from negforge.generators.client import ChatRequest, GeneratorClient, run_sync
from negforge.generators.llm_stage import LLMEndpoint
from negforge.prompts import PROMPTS_DIR

SCALE = (
    "judge_p_yes: probability in [0, 1] that the passage answers the query; judge_source=logprobs: yes mass "
    "/ (yes + no mass) over the answer token's top logprobs; judge_source=answer: 1.0 or 0.0 from the "
    "parsed answer (no logprobs returned)"
)
REASON = "llm_says_answers"
TEMPLATE = "llm_judge"
ANSWER_SCHEMA: dict = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answer"],
    "additionalProperties": False,
}


class JudgeFailed(RuntimeError):
    """Judge requests got no answer (server down, timeouts); answers that arrived are stored for the rerun."""


# --- the prompt: a tiny loader of its own (prompts/__init__.py loads the generation modes only) ---------

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)), undefined=jinja2.StrictUndefined, autoescape=False
)


def _as_data(text: str) -> str:
    """Candidate and query text is data: strip anything that would open or close our delimiters."""
    return re.sub(r"</?\s*(query|passage)[^>]*>", " ", text, flags=re.IGNORECASE)


def _clip(text: str, max_chars: int) -> str:
    """At most `max_chars` characters, cut at a word boundary."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return (cut[:space] if space > max_chars // 2 else cut).rstrip() + " ..."


@dataclass(frozen=True)
class JudgeTemplate:
    """The judge prompt (prompts/llm_judge.j2 system block, llm_judge.user.j2 per pair): name, version, and
    the sha of both files (part of every request key, so editing the prompt asks again)."""

    name: str
    version: str
    sha: str

    def render(self, query: str, passage: str) -> list[dict[str, str]]:
        """Chat messages: the fixed system block first (prefix cache), the (query, passage) pair last."""
        system = _env.get_template(f"{self.name}.j2").render().strip()
        user = _env.get_template(f"{self.name}.user.j2").render(
            query=_as_data(query), passage=_as_data(passage)
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user.strip()}]


@cache
def load_judge_template() -> JudgeTemplate:
    """The judge template with its version (from the first line's `version:`) and content sha."""
    from negforge.prompts import template_identity

    return JudgeTemplate(TEMPLATE, *template_identity(TEMPLATE))


def judge_request_key(
    model_fingerprint: str, template: JudgeTemplate, messages: list, params: dict, schema: dict
) -> str:
    """The store key of one judge request: model fingerprint, template name and sha, the rendered messages,
    the parameters (temperature, max_tokens, logprobs) and the schema; any change asks again."""
    blob = json.dumps(
        {
            "kind": "llm_judge",
            "model": model_fingerprint,
            "template": [template.name, template.sha],
            "messages": messages,
            "params": params,
            "schema": schema,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


# --- parsing the reply and reading p(yes) ------------------------------------------------------------------

_ANSWER_AT = re.compile(r'"answer"\s*:\s*"\s*(yes|no)\b', re.I)


class JudgeAnswer(BaseModel):
    """The judge's reply: {"answer": "yes"|"no"} (case, spaces and final punctuation ignored)."""

    answer: str

    @field_validator("answer")
    @classmethod
    def _yes_no(cls, v: str) -> str:
        a = v.strip().strip(".!").lower()
        if a not in ("yes", "no"):
            raise ValueError("answer must be yes or no")
        return a


def parse_answer(text: str | None) -> tuple[str | None, str | None, bool]:
    """(answer, problem, recovered) of one judge reply: answer is "yes" or "no", or None with the problem
    (`empty_response`, `bad_json`, `schema`). Parsed by `negforge.generators.checks.parse_reply`: plain JSON
    as it is, else the first valid object dug out of code fences or prose (`recovered=True`)."""
    r = parse_reply(text, JudgeAnswer)
    return (r.value.answer if r.value is not None else None), r.problem, r.recovered


def _word(token: str) -> str:
    """A token as an answer word: surrounding space, quotes and colons off, lower case."""
    return token.strip().strip("\"':").strip().lower()


def p_yes_from_logprobs(tokens: list | None) -> float | None:
    """p(yes) in [0, 1] from compact logprobs: at the token where the answer word starts (found after
    `"answer": "` in the generated text), the probability mass of alternatives that spell the start of
    "yes" over that of "yes" plus "no" (the sampled token included). None when there is no such token or
    neither word has mass among its alternatives."""
    if not tokens:
        return None
    joined = "".join(t[0] or "" for t in tokens)
    m = _ANSWER_AT.search(joined)
    if m is None:
        return None
    pos, off, at = m.start(1), 0, None
    for t in tokens:
        if off <= pos < off + len(t[0] or ""):
            at = t
            break
        off += len(t[0] or "")
    if at is None:
        return None
    tok, lp, alts = at
    best: dict[str, float] = {}
    for t, x in [[tok, lp], *alts]:
        if t is not None and math.isfinite(x):
            best[t] = max(best.get(t, -math.inf), x)
    yes = sum(math.exp(x) for t, x in best.items() if _word(t) and "yes".startswith(_word(t)))
    no = sum(math.exp(x) for t, x in best.items() if _word(t) and "no".startswith(_word(t)))
    if yes + no <= 0:
        return None
    return yes / (yes + no)


# --- the filter --------------------------------------------------------------------------------------------


class LLMJudgeFilter:
    """Drops candidates the run's LLM says answer their query (p_yes >= threshold); see the module doc."""

    FALSE_NEGATIVE_REASONS = frozenset({REASON})  # RLHN's relabelling judge is exactly this question

    def __init__(self, cfg: LLMJudgeFilterConfig, endpoint: LLMEndpoint | None) -> None:
        self.cfg = cfg
        self.name = cfg.name or cfg.type
        self.endpoint = endpoint  # None: built without a started LLM (nothing left to judge in this run)
        self.template = load_judge_template()
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """Settings, prompt identity, the scale of judge_p_yes, and this process's counters."""
        ep = self.endpoint
        return {
            **self.cfg.model_dump(exclude={"name"}),
            "template": self.template.name,
            "template_version": self.template.version,
            "template_sha": self.template.sha,
            "served_model": ep.served_model if ep else None,
            "model_fingerprint": ep.model_fingerprint if ep else None,
            "scale": SCALE,
            "counts": dict(self.counts),
        }

    def params(self) -> dict:
        """Request parameters: greedy, a small completion budget, and logprobs when configured."""
        p: dict = {"temperature": 0.0, "max_tokens": self.cfg.max_tokens}
        if self.cfg.logprobs:
            p.update(logprobs=True, top_logprobs=self.cfg.top_logprobs)
        return p

    def request(self, query: str, passage: str) -> ChatRequest:
        """The judge request of one (query, passage) pair; its key finds a stored answer."""
        if self.endpoint is None:
            raise RuntimeError(f"filters.{self.name}: no LLM endpoint (the run did not start sources.llm)")
        messages = self.template.render(query, _clip(passage, self.cfg.max_passage_chars))
        params = self.params()
        key = judge_request_key(
            self.endpoint.model_fingerprint, self.template, messages, params, ANSWER_SCHEMA
        )
        return ChatRequest(key, messages, params, ANSWER_SCHEMA)

    def client(self) -> GeneratorClient:
        """A client for the run's endpoints (created inside the event loop that uses it)."""
        assert self.endpoint is not None
        return self.endpoint.client(self.cfg.concurrency)

    async def _ask(
        self,
        requests: dict[str, tuple[ChatRequest, str]],
        counts: Counter,
        shared: GeneratorClient | None = None,
    ) -> Counter:
        """Send every request (bounded concurrency), storing each answer as it arrives; returns failures.
        `shared`: the run-wide queue's client (not closed here), else an own client for this batch."""
        ep = self.endpoint
        assert ep is not None
        failed: Counter = Counter()
        client = shared or self.client()

        async def one(req: ChatRequest, query_id: str) -> None:
            res = await client.complete(req)
            if res.error:
                failed[res.error] += 1
                return
            counts["sent_ok"] += 1
            counts["prompt_tokens"] += res.prompt_tokens
            counts["completion_tokens"] += res.completion_tokens
            ep.store.append(
                {
                    "key": req.key, "kind": "llm_judge", "query_id": query_id, "text": res.text,
                    "logprobs": res.logprobs, "prompt_tokens": res.prompt_tokens,
                    "completion_tokens": res.completion_tokens, "latency_s": round(res.latency_s, 4),
                }
            )  # fmt: skip

        try:
            await asyncio.gather(*(one(r, q) for r, q in requests.values()))
        finally:
            if shared is None:
                await client.close()
        return failed

    def verdict(self, rec: dict, counts: Counter) -> Verdict:
        """The verdict of one stored answer: p_yes from its logprobs, else from its parsed answer."""
        answer, problem, recovered = parse_answer(rec.get("text"))
        if answer is None:
            counts["judge_unparsed"] += 1
            counts[f"judge_unparsed_{problem}"] += 1
            return Verdict(True, scores={"judge_unparsed": 1, "judge_problem": problem})
        if recovered:
            counts["recovered"] += 1
        p = p_yes_from_logprobs(rec.get("logprobs"))
        source = "logprobs"
        if p is None:
            p, source = (1.0 if answer == "yes" else 0.0), "answer"
        counts[f"p_from_{source}"] += 1
        counts[f"answer_{answer}"] += 1
        scores = {"judge_p_yes": round(p, 5), "judge_source": source, "judge_answer": answer}
        if p >= self.cfg.threshold:
            return Verdict(False, REASON, scores)
        return Verdict(True, scores=scores)

    def apply(self, batch: CandidateBatch) -> list[Verdict]:
        """One verdict per candidate; every missing answer of the batch is asked at once (across queries)."""
        if not batch.candidates:
            return []
        ep = self.endpoint
        if ep is None:
            raise RuntimeError(f"filters.{self.name}: no LLM endpoint (the run did not start sources.llm)")
        counts: Counter = Counter()
        keys = []
        missing: dict[str, tuple[ChatRequest, str]] = {}
        for c in batch.candidates:
            q = batch.queries[c.qi]
            req = self.request(q.text, c.text)
            keys.append(req.key)
            if req.key not in ep.store and req.key not in missing:
                missing[req.key] = (req, q.id)
        if missing:
            ep.store.refresh()  # another process may have answered since
            missing = {k: v for k, v in missing.items() if k not in ep.store}
        counts["judged"] += len(keys)  # candidates; identical (query, passage) pairs are asked once
        counts["from_store"] += len(set(keys)) - len(missing)
        failed: Counter = Counter()
        queue = ep.shared_queue()
        if missing and queue is not None:  # generation is running: its queue's client bounds both
            counts["via_run_queue"] += len(missing)
            failed = queue.run(lambda client: self._ask(missing, counts, client))
        elif missing:
            failed = run_sync(lambda: self._ask(missing, counts))
        if failed:
            with self._lock:
                self.counts.update(counts)
                self.counts["failed_requests"] += sum(failed.values())
            raise JudgeFailed(
                f"filters.{self.name}: {sum(failed.values())} LLM judge requests failed ({dict(failed)}); "
                "finished answers are stored, rerun to resume"
            )
        out = [self.verdict(ep.store.get(k) or {}, counts) for k in keys]
        with self._lock:
            self.counts.update(counts)
        return out
