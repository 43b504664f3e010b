"""SyNeg-style synthetic negatives: plan one request per query (all of its negatives together, so the
instruction prefix is shared), send them through the client, check every item, re-ask on empty results.

A request's key covers the model fingerprint, template name and hash, the rendered prompt, the sampling
parameters and the seed; finished responses live in the GenerationStore, so reruns send only missing keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from negforge.config import LLMConfig
from negforge.generators.checks import parse_response, passage_problem, response_schema
from negforge.generators.client import ChatRequest, ChatResult, GeneratorClient
from negforge.generators.store import GenerationStore
from negforge.prompts import attributes, load_template, perturbations


class GenerationFailed(RuntimeError):
    """Requests could not be answered (server down, timeouts); finished ones are stored for the rerun."""


@dataclass
class SyntheticNegative:
    text: str
    perturbation: str
    perturbation_kind: str
    reasoning: str
    attributes: dict[str, str]
    mode: str
    base_doc_id: str | None
    seed: int
    template: str
    template_version: str
    template_sha: str
    model: str
    model_fingerprint: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    request_key: str
    source: str = "llm"  # "llm" (model text) or "rules" (rule-based counterfactual edit, no model)
    span: str | None = None  # edit modes: the sentence of the base passage that was rewritten
    replacement: str | None = None  # edit modes: what replaced it
    verified: bool | None = None  # edit modes: the perturbation passed its verifier (None: no verifier)


@dataclass
class EditSpan:
    """The sentence of a base passage to rewrite (edit mode): chosen by the bi-encoder as the one matching
    the query best. `start`/`end` are character offsets into `base_text`."""

    base_doc_id: str | None
    base_text: str
    start: int
    end: int
    kind: str  # "positive" (contradiction perturbations) or "negative" (not-answering ones)

    @property
    def sentence(self) -> str:
        return self.base_text[self.start : self.end]

    def splice(self, replacement: str) -> str:
        """The base passage with the span replaced."""
        return self.base_text[: self.start] + replacement.strip() + self.base_text[self.end :]


@dataclass
class GenItem:
    """What one query contributes: its text, first positive, and the mined negative to rewrite (if any).

    Edit mode: `edit_positive` is the span of the positive to rewrite under a contradiction perturbation,
    `edit_negative` the span of the hardest mined negative for a not-answering one (either may be None).
    """

    query_id: str
    query: str
    positive: str
    base_doc_id: str | None = None
    base_text: str | None = None
    edit_positive: EditSpan | None = None
    edit_negative: EditSpan | None = None


@dataclass
class GenTask:
    item: GenItem
    mode: str
    perturbations: list[str]
    attrs: dict[str, str]
    attempt: int
    seed: int
    request: ChatRequest


@dataclass
class GenStats:
    counts: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        lat = np.array(self.latencies) if self.latencies else np.zeros(0)
        return {
            **dict(self.counts),
            "rejected": dict(self.rejected),
            "latency_s": {
                "mean": round(float(lat.mean()), 3) if len(lat) else None,
                "p50": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
                "p95": round(float(np.percentile(lat, 95)), 3) if len(lat) else None,
            },
        }


_STATS_LOCK = threading.Lock()


def _seed(*parts: object) -> int:
    return int(hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


class Synthesizer:
    def __init__(
        self, cfg: LLMConfig, *, seed: int, served_model: str, model_fingerprint: str, store: GenerationStore
    ):
        self.cfg = cfg
        self.seed = seed
        self.served_model = served_model
        self.model_fingerprint = model_fingerprint
        self.store = store
        self.stats = GenStats()

    def fork(self) -> Synthesizer:
        """Same model, settings and store, fresh counters: one per shard, so concurrent shards count apart."""
        return Synthesizer(
            self.cfg, seed=self.seed, served_model=self.served_model,
            model_fingerprint=self.model_fingerprint, store=self.store,
        )  # fmt: skip

    def absorb(self, other: Synthesizer) -> None:
        with _STATS_LOCK:
            self.stats.counts.update(other.stats.counts)
            self.stats.rejected.update(other.stats.rejected)
            self.stats.latencies += other.stats.latencies

    def wants(self, query_id: str) -> bool:
        """Seeded per-query choice for `fraction` < 1 (cost control; SyNeg mixes per instance anyway)."""
        return (
            self.cfg.fraction >= 1 or _seed(self.seed, query_id, "fraction") / 0x7FFFFFFF < self.cfg.fraction
        )

    def plan(self, item: GenItem, attempt: int = 0) -> GenTask:
        mode = self.cfg.mode
        if mode == "mixed":
            mode = "rewrite" if _seed(self.seed, item.query_id, "mode") % 2 else "from_positive"
        if mode == "rewrite" and not item.base_text:
            mode = "from_positive"
        seed = _seed(self.seed, item.query_id, attempt)
        rng = np.random.default_rng(seed)
        menu = list(perturbations())
        chosen = [str(x) for x in rng.choice(menu, size=min(self.cfg.count, len(menu)), replace=False)]
        attrs = {k: str(rng.choice(v)) for k, v in attributes().items()}
        tpl = load_template(mode)
        messages = tpl.render(
            perturbation_names=chosen, attrs=attrs, query=item.query, positive=item.positive,
            base=item.base_text if mode == "rewrite" else None,
        )  # fmt: skip
        max_chars = int(len(item.positive) * self.cfg.max_length_ratio) + 200
        schema = response_schema(len(chosen), chosen, max_chars)
        params: dict = {
            "temperature": self.cfg.temperature,
            "top_p": self.cfg.top_p,
            "max_tokens": self.cfg.max_tokens,
        }
        if self.cfg.send_seed:
            params["seed"] = seed
        blob = json.dumps(
            {
                "model": self.model_fingerprint,
                "template": [tpl.name, tpl.sha],
                "messages": messages,
                "params": params,
                "seed": seed,
                "schema": schema,
            },
            sort_keys=True,
        )
        key = hashlib.sha256(blob.encode()).hexdigest()[:32]
        return GenTask(item, mode, chosen, attrs, attempt, seed, ChatRequest(key, messages, params, schema))

    def _record(self, task: GenTask, res: ChatResult) -> dict:
        return {
            "key": task.request.key,
            "query_id": task.item.query_id,
            "text": res.text,
            "prompt_tokens": res.prompt_tokens,
            "completion_tokens": res.completion_tokens,
            "latency_s": round(res.latency_s, 4),
        }

    def _accept(self, task: GenTask, rec: dict) -> list[SyntheticNegative]:
        parsed = parse_response(rec.get("text"))
        if parsed.problem:
            self.stats.rejected[f"response_{parsed.problem}"] += 1
            return []
        if parsed.recovered:
            # JSON dug out of a code fence or prose: usable, but the server ignored response_format
            self.stats.counts["recovered"] += 1
        items = parsed.items
        tpl = load_template(task.mode)
        menu = perturbations()
        out = []
        for i, it in enumerate(items[: len(task.perturbations)]):
            why = passage_problem(
                it.passage, query=task.item.query, positive=task.item.positive,
                base=task.item.base_text if task.mode == "rewrite" else None,
                min_ratio=self.cfg.min_length_ratio, max_ratio=self.cfg.max_length_ratio, copy_threshold=self.cfg.copy_threshold,
            )  # fmt: skip
            if why is None and any(it.passage.strip() == o.text for o in out):
                why = "duplicate_in_response"
            if why:
                self.stats.rejected[why] += 1
                continue
            asked = task.perturbations[
                i
            ]  # the label is what was asked; the model's own claim is kept in reasoning
            out.append(
                SyntheticNegative(
                    text=it.passage.strip(), perturbation=asked, perturbation_kind=menu[asked]["kind"],
                    reasoning=it.reasoning.strip(), attributes=task.attrs, mode=task.mode,
                    base_doc_id=task.item.base_doc_id if task.mode == "rewrite" else None, seed=task.seed,
                    template=tpl.name, template_version=tpl.version, template_sha=tpl.sha, model=self.served_model,
                    model_fingerprint=self.model_fingerprint, prompt_tokens=rec.get("prompt_tokens", 0),
                    completion_tokens=rec.get("completion_tokens", 0), latency_s=rec.get("latency_s", 0.0),
                    request_key=task.request.key,
                )
            )  # fmt: skip
        return out

    async def generate(
        self, items: list[GenItem], client: GeneratorClient | None
    ) -> dict[str, list[SyntheticNegative]]:
        """Synthetic negatives per query id. Every item is one chain (ask, check, re-ask at once when nothing
        valid came back), and all chains share the client's bounded concurrency, so the server always has
        work while any item is unfinished: no rounds that wait for the slowest request. Raises
        GenerationFailed (after storing what finished) when a request gets no answer at all, so the caller
        does not write a shard with holes in it."""
        results: dict[str, list[SyntheticNegative]] = {it.query_id: [] for it in items}
        failed: Counter = Counter()
        if any(self.plan(it).request.key not in self.store for it in items):
            self.store.refresh()  # another process (the run's generation stage) may have answered since

        async def chain(item: GenItem) -> None:
            for attempt in range(self.cfg.max_reasks + 1):
                task = self.plan(item, attempt)
                self.stats.counts["requests"] += 1
                if attempt:
                    self.stats.counts["reasks"] += 1
                rec = self.store.get(task.request.key)
                if rec is not None:
                    self.stats.counts["from_store"] += 1
                elif client is None:
                    failed["no_endpoint"] += 1
                    return
                else:
                    res = await client.complete(task.request)
                    if res.error:
                        failed[res.error] += 1
                        return
                    self.stats.counts["sent_ok"] += 1
                    self.stats.counts["prompt_tokens"] += res.prompt_tokens
                    self.stats.counts["completion_tokens"] += res.completion_tokens
                    self.stats.latencies.append(res.latency_s)
                    rec = self._record(task, res)
                    self.store.append(rec)
                got = self._accept(task, rec)
                if got:
                    results[item.query_id] += got
                    return

        await asyncio.gather(*(chain(it) for it in items))
        if failed:
            self.stats.counts["failed_requests"] += sum(failed.values())
            if set(failed) == {"no_endpoint"}:
                raise GenerationFailed(
                    f"{failed['no_endpoint']} generation requests are not in the store and no LLM endpoint is set"
                )
            raise GenerationFailed(
                f"{sum(failed.values())} LLM requests failed ({dict(failed)}); finished responses are stored, rerun to resume"
            )
        for negs in results.values():
            self.stats.counts["valid"] += len(negs)
        return results

    def generate_sync(self, items: list[GenItem], client_factory) -> dict[str, list[SyntheticNegative]]:
        """Run `generate` in a fresh event loop (library callers and Prefect tasks are synchronous)."""

        async def go() -> dict[str, list[SyntheticNegative]]:
            client = client_factory()
            try:
                return await self.generate(items, client)
            finally:
                if client is not None:
                    await client.close()

        return asyncio.run(go())
