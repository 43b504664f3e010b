"""SyNeg-style synthetic negatives: plan one request per query (all of its negatives together, so the
instruction prefix is shared), send them through the client, check every item, re-ask on empty results
(edit mode: saying why the answer was refused).
Edit mode (negforge.generators.edit_mode) plans `count` one-sentence requests per query instead, one
perturbation each, and verifies every edit.

A request's key covers the model fingerprint, template name and hash, the rendered prompt, the sampling
parameters and the seed; finished responses live in the GenerationStore, so reruns send only missing keys.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import numpy as np

from negforge.config import LLMConfig
from negforge.generators.checks import parse_response, passage_problem, response_schema
from negforge.generators.client import ChatRequest, ChatResult, GeneratorClient
from negforge.generators.edit_mode import accept_sampled_edit, edit_kinds, plan_edit
from negforge.generators.records import (
    EditSpan,
    GenItem,
    GenStats,
    GenTask,
    derive_seed,
    request_key,
    tokens_per_valid,
)
from negforge.generators.store import GenerationStore
from negforge.prompts import attributes, load_template, perturbations
from negforge.records import SyntheticNegative

__all__ = [
    "EditSpan",
    "GenItem",
    "GenStats",
    "GenTask",
    "GenerationFailed",
    "Synthesizer",
    "SyntheticNegative",
    "tokens_per_valid",
]


class GenerationFailed(RuntimeError):
    """Requests could not be answered (server down, timeouts); finished ones are stored for the rerun."""


_STATS_LOCK = threading.Lock()


_seed = derive_seed


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

    def slots(self, item: GenItem) -> int:
        """Requests per item: `count` one-perturbation requests in edit mode (when the item has an edit
        span), else one request that asks for all `count` negatives."""
        return self.cfg.count if self.cfg.mode == "edit" and edit_kinds(item) else 1

    def plan(self, item: GenItem, attempt: int = 0, slot: int = 0, rejection: str | None = None) -> GenTask:
        """The request of (item, attempt[, slot]) and what it asks for; deterministic, so its key finds a
        stored answer. Edit mode without any edit span falls back to from_positive; its re-asks say why the
        previous answer (`rejection`) was refused."""
        mode = self.cfg.mode
        if mode == "edit":
            if edit_kinds(item):
                return plan_edit(self, item, attempt, slot, rejection)
            mode = "from_positive"
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
        key = request_key(self.model_fingerprint, (tpl.name, tpl.sha), messages, params, seed, schema)
        return GenTask(item, mode, chosen, attrs, attempt, seed, ChatRequest(key, messages, params, schema))

    def _record(self, task: GenTask, res: ChatResult) -> dict:
        return {
            "key": task.request.key,
            "query_id": task.item.query_id,
            "text": res.text,
            **({"texts": res.texts} if res.texts else {}),
            "prompt_tokens": res.prompt_tokens,
            "completion_tokens": res.completion_tokens,
            "latency_s": round(res.latency_s, 4),
        }

    def _accept(self, task: GenTask, rec: dict) -> list[SyntheticNegative]:
        if task.mode in ("edit", "span"):  # span: an edit answered with the target's new text only
            return accept_sampled_edit(self, task, rec)
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
        out: list[SyntheticNegative] = []
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
        """Synthetic negatives per query id. Every request slot of an item (one; edit mode: `count`) is one
        chain (ask, check, re-ask at once when nothing valid came back), and all chains share the client's
        bounded concurrency, so the server always has work while any item is unfinished: no rounds that wait
        for the slowest request. An item's negatives come in slot order (deterministic), an edit equal to an
        earlier slot's dropped (`duplicate_in_query`). Raises GenerationFailed (after storing what
        finished) when a request gets no answer at all, so the caller does not write a shard with holes."""
        slots = [(it, s) for it in items for s in range(self.slots(it))]
        got_by_slot: dict[tuple[str, int], list[SyntheticNegative]] = {}
        failed: Counter = Counter()
        if any(self.plan(it, 0, s).request.key not in self.store for it, s in slots):
            self.store.refresh()  # another process (the run's generation stage) may have answered since

        async def chain(item: GenItem, slot: int) -> None:
            rejection: str | None = None
            for attempt in range(self.cfg.max_reasks + 1):
                task = self.plan(item, attempt, slot, rejection)
                self.stats.counts["requests"] += 1
                if attempt:
                    self.stats.counts["reasks"] += 1
                rec = self.store.get(task.request.key)
                if rec is not None:
                    self.stats.counts["from_store"] += 1
                    self.stats.counts["from_store_prompt_tokens"] += rec.get("prompt_tokens", 0)
                    self.stats.counts["from_store_completion_tokens"] += rec.get("completion_tokens", 0)
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
                    got_by_slot[(item.query_id, slot)] = got
                    return
                rejection = task.rejection

        await asyncio.gather(*(chain(it, s) for it, s in slots))
        if failed:
            self.stats.counts["failed_requests"] += sum(failed.values())
            if set(failed) == {"no_endpoint"}:
                raise GenerationFailed(
                    f"{failed['no_endpoint']} generation requests are not in the store and no LLM endpoint is set"
                )
            raise GenerationFailed(
                f"{sum(failed.values())} LLM requests failed ({dict(failed)}); finished responses are stored, rerun to resume"
            )
        results: dict[str, list[SyntheticNegative]] = {it.query_id: [] for it in items}
        for it, s in slots:
            for neg in got_by_slot.get((it.query_id, s), []):
                if any(neg.text == o.text for o in results[it.query_id]):
                    self.stats.rejected["duplicate_in_query"] += 1
                    continue
                results[it.query_id].append(neg)
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
