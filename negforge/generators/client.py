"""Async client for OpenAI-compatible endpoints (vLLM first): bounded concurrency, per-request timeout,
retries with exponential backoff and jitter (the openai library's, on connection errors, 408/409/429/5xx),
and failover across several base URLs. It never raises on a bad request: the result carries the error."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ChatRequest:
    key: str
    messages: list[dict[str, str]]
    params: dict  # temperature, top_p, max_tokens, seed, n
    schema: dict | None = None


@dataclass
class ChatResult:
    key: str
    text: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    base_url: str | None = None
    attempts: int = 0
    # every choice's content in the server's order when the request asked for several (params n > 1)
    texts: list[str | None] = field(default_factory=list)
    # compact per-token logprobs [[token, logprob, [[alt, logprob], ...]], ...] when the request asked for
    # them (params logprobs=True) and the server sent them; None otherwise
    logprobs: list | None = None


@dataclass
class ClientStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    failovers: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class GeneratorClient:
    def __init__(
        self,
        base_urls: list[str],
        model: str,
        *,
        concurrency: int = 16,
        timeout: float = 120.0,
        max_retries: int = 3,
        api_key_env: str = "NEGFORGE_LLM_API_KEY",
    ):
        import openai  # ~1 s to import: only a run that talks to an LLM pays it

        if not base_urls:
            raise ValueError("GeneratorClient needs at least one base URL")
        key = os.environ.get(api_key_env) or "EMPTY"  # vLLM accepts any key unless started with --api-key
        self.urls = [u.rstrip("/") for u in base_urls]
        self.clients = [
            openai.AsyncOpenAI(base_url=u, api_key=key, timeout=timeout, max_retries=max_retries)
            for u in self.urls
        ]
        self.model = model
        self.sem = asyncio.Semaphore(concurrency)
        self._next = itertools.cycle(range(len(self.clients)))
        self.stats = ClientStats()
        self.in_flight = 0  # requests sent and not yet answered

    async def complete(self, req: ChatRequest) -> ChatResult:
        """One chat completion; tries each base URL once (each with its own retries) before giving up."""
        async with self.sem:
            self.in_flight += 1
            try:
                return await self._complete(req)
            finally:
                self.in_flight -= 1

    async def _complete(self, req: ChatRequest) -> ChatResult:
        import openai

        start = next(self._next)
        last_error = "unknown"
        for hop in range(len(self.clients)):
            i = (start + hop) % len(self.clients)
            if hop:
                self.stats.failovers += 1
            self.stats.sent += 1
            t0 = time.perf_counter()
            try:
                kwargs: dict = {"model": self.model, "messages": req.messages, **req.params}
                if req.schema is not None:
                    kwargs["response_format"] = {
                        "type": "json_schema",
                        "json_schema": {"name": "negatives", "schema": req.schema, "strict": True},
                    }
                resp = await self.clients[i].chat.completions.create(**kwargs)
                usage = resp.usage
                self.stats.ok += 1
                return ChatResult(
                    req.key,
                    resp.choices[0].message.content if resp.choices else None,
                    None if resp.choices else "no_choices",
                    usage.prompt_tokens if usage else 0,
                    usage.completion_tokens if usage else 0,
                    time.perf_counter() - t0,
                    self.urls[i],
                    hop + 1,
                    logprobs=compact_logprobs(resp.choices[0].logprobs)
                    if resp.choices and req.params.get("logprobs")
                    else None,
                    texts=[c.message.content for c in sorted(resp.choices, key=lambda c: c.index)]
                    if req.params.get("n", 1) > 1
                    else [],
                )
            except openai.APITimeoutError:
                last_error = "timeout"
            except openai.APIConnectionError:
                last_error = "connection"
            except openai.RateLimitError:
                last_error = "http_429"
            except openai.APIStatusError as e:
                last_error = f"http_{e.status_code}"
            except (openai.APIResponseValidationError, ValueError):
                last_error = "malformed_response"
            self.stats.errors[last_error] = self.stats.errors.get(last_error, 0) + 1
        self.stats.failed += 1
        return ChatResult(req.key, None, last_error, attempts=len(self.clients))

    async def run(
        self, requests: Iterable[ChatRequest], on_result: Callable[[ChatResult], Awaitable[None] | None]
    ) -> None:
        """Send all requests concurrently (bounded); `on_result` sees each result as it arrives."""
        tasks = [asyncio.create_task(self.complete(r)) for r in requests]
        for fut in asyncio.as_completed(tasks):
            res = await fut
            out = on_result(res)
            if asyncio.iscoroutine(out):
                await out

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


def compact_logprobs(logprobs: Any) -> list | None:
    """A chat completion choice's `logprobs` as [[token, logprob, [[alt, logprob], ...]], ...] (what the
    store keeps), or None when the server returned none."""
    if logprobs is None:
        return None
    content = getattr(logprobs, "content", None)
    if content is None and isinstance(logprobs, dict):
        content = logprobs.get("content")
    if not content:
        return None
    out = []
    for t in content:
        alts = [[_field(a, "token"), float(_field(a, "logprob"))] for a in _field(t, "top_logprobs") or []]
        out.append([_field(t, "token"), float(_field(t, "logprob")), alts])
    return out


def _field(obj: Any, key: str) -> Any:
    """`obj[key]` of a dict (a raw JSON reply), else the attribute (the openai client's objects); None if absent."""
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, also when the caller already runs an event loop
    (Jupyter, an async framework): then in a helper thread with its own loop."""
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())  # type: ignore[arg-type]
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(lambda: asyncio.run(make_coro())).result()  # type: ignore[arg-type]
