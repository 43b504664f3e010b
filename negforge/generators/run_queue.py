"""Generation as its own stage of the run: one event loop, one client, one bounded queue for every shard.

Each shard's items are submitted as soon as the shard is mined; every item is a chain (ask, check, re-ask at
once), and all chains share the client's `concurrency` per endpoint, so the server is kept busy until the
last item is done instead of idling while a shard waits for its slowest request. Answers go to the
generation store as they arrive, so a crash or a killed server loses nothing finished; a shard is handed on
(judged, mixed, written) as soon as all of its items are complete.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from negforge.generators.client import GeneratorClient
from negforge.generators.llm_stage import LLMStage
from negforge.generators.synthesize import GenItem, Synthesizer
from negforge.records import SyntheticNegative

T = TypeVar("T")


class RunGeneration:
    """A background event loop with the run's one client; `submit` queues a shard's items on it."""

    def __init__(self, llm: LLMStage) -> None:
        self.llm = llm
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="negforge-llm-queue", daemon=True)
        self.thread.start()
        self.client: GeneratorClient = asyncio.run_coroutine_threadsafe(self._client(), self.loop).result()
        llm.queue = self  # other askers of this LLM (the llm_judge filter) share the client while it runs

    async def _client(self) -> GeneratorClient:
        return self.llm.client()  # created on the loop that uses it (its semaphore binds there)

    def submit(self, items: list[GenItem]) -> tuple[Future[dict[str, list[SyntheticNegative]]], Synthesizer]:
        """Queue one shard's items; returns a future of negatives per query id and the shard's counters."""
        synth = self.llm.synth.fork()
        return asyncio.run_coroutine_threadsafe(synth.generate(items, self.client), self.loop), synth

    def run(self, make_coro: Callable[[GeneratorClient], Coroutine[Any, Any, T]]) -> T:
        """Run `make_coro(client)` on the queue's loop with its client (same concurrency bound as the
        generation chains) and wait for its result; called from other threads (the shard that filters)."""
        return asyncio.run_coroutine_threadsafe(make_coro(self.client), self.loop).result()

    def in_flight(self) -> int:
        """Requests the client is waiting on now (for progress and the throughput benchmark)."""
        return self.client.in_flight

    async def _shutdown(self) -> None:
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)  # chains end before their loop does
        await self.client.close()

    def close(self) -> None:
        """Cancel pending chains, wait for them to end, close the client and stop the loop (finished answers
        are already stored)."""
        if self.llm.queue is self:
            self.llm.queue = None
        if not self.loop.is_running():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            if not self.thread.is_alive():
                self.loop.close()
