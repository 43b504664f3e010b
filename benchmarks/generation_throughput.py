"""Whole-run generation throughput: negforge's run-wide queue vs a plain saturating asyncio + openai client,
on one vLLM server, with the same first-attempt requests (messages, schema, sampling, seeds).

Per round and mode: negforge runs the build over SciFact train queries with `sources.llm.fraction: 1` (mining,
the generation queue with its re-asks, checks and verifiers, filters, mixing, writing); the peer sends the
first-attempt requests of the same items with AsyncOpenAI + a semaphore and nothing else. The two alternate
order over rounds, so neither always gets the other's prefix cache. Printed side by side: completion
tokens/s of each and their ratio (negforge over its generation window), the share of that window in which the
server ran fewer than `concurrency` requests (sampled from vLLM's /metrics), valid negatives per request and
per 1,000 completion tokens for each mode, tokens per valid negative, and the prefix-cache hit rate.

    python benchmarks/generation_throughput.py                        # starts SmolLM2 on vLLM (.venv-vllm)
    python benchmarks/generation_throughput.py --queries 100 --rounds 2 --modes rewrite edit
    python benchmarks/generation_throughput.py --base-url http://127.0.0.1:8000/v1 --model negforge-llm
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"


def metrics(base: str) -> dict[str, float]:
    """Prefix-cache counters and the running-requests gauge from vLLM's Prometheus endpoint (v1 names)."""
    text = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for name in (
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:num_requests_running",
    ):
        vals = [
            float(m.group(1))
            for m in re.finditer(rf"^{re.escape(name)}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.M)
        ]
        out[name] = sum(vals)
    return out


class RunningSampler:
    """Samples vllm:num_requests_running every `interval` s in a thread, between start() and stop()."""

    def __init__(self, base: str, interval: float = 0.25) -> None:
        self.base, self.interval = base, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.samples.append((time.perf_counter(), metrics(self.base)["vllm:num_requests_running"]))
            self._stop.wait(self.interval)

    def start(self) -> RunningSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def under(self, concurrency: int, t0: float, t1: float) -> float:
        """Share of samples in [t0, t1] with fewer than `concurrency` requests running."""
        xs = [v for t, v in self.samples if t0 <= t <= t1]
        return sum(v < concurrency for v in xs) / len(xs) if xs else float("nan")


async def plain_client(base_url: str, model: str, requests: list, concurrency: int) -> tuple[int, float]:
    """The peer: AsyncOpenAI + a semaphore, nothing else. Returns (completion tokens, seconds)."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", timeout=900, max_retries=0)
    sem = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(req) -> None:
        nonlocal tokens
        async with sem:
            kw = {"model": model, "messages": req.messages, **req.params}
            if req.schema is not None:
                kw["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "negatives", "schema": req.schema, "strict": True},
                }
            r = await client.chat.completions.create(**kw)
            tokens += r.usage.completion_tokens if r.usage else 0

    t0 = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    elapsed = time.perf_counter() - t0
    await client.close()
    return tokens, elapsed


def first_requests(cfg) -> list:
    """The first-attempt request of every item negforge's build would send (same mining, same seeds)."""
    from negforge.generators.attach import generation_items
    from negforge.generators.llm_stage import start_llm
    from negforge.mining.pool import mine_queries
    from negforge.pipeline import load_data, make_context, prepare_bm25, prepare_dense
    from negforge.timing import Timings

    t = Timings()
    data = load_data(cfg, t)
    bm25 = prepare_bm25(cfg, data, t)
    dense, qemb = prepare_dense(cfg, data, t)
    ctx = make_context(cfg, data, bm25, dense, qemb, t)
    llm = start_llm(cfg)  # base_urls set: no server started
    try:
        items = generation_items(ctx, llm, mine_queries(ctx, list(range(len(data.queries)))))
        return [llm.synth.plan(it, 0).request for it in items]
    finally:
        llm.close()


class RequestClock:
    """Wraps GeneratorClient.complete to time negforge's generation window (first send to last answer)."""

    def __init__(self) -> None:
        self.first = self.last = None

    def __enter__(self) -> RequestClock:
        from negforge.generators.client import GeneratorClient

        self._orig = orig = GeneratorClient.complete
        clock = self

        async def complete(client, req):
            now = time.perf_counter()
            clock.first = now if clock.first is None else clock.first
            res = await orig(client, req)
            clock.last = time.perf_counter()
            return res

        GeneratorClient.complete = complete
        return self

    def __exit__(self, *exc) -> None:
        from negforge.generators.client import GeneratorClient

        GeneratorClient.complete = self._orig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", help="an already running server's /v1 URL; default: start one")
    ap.add_argument("--model", default="negforge-llm", help="served model name (with --base-url)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", nargs="+", default=["rewrite", "edit"])
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=400)
    ap.add_argument("--cache-dir", default=str(Path("~/.cache/negforge").expanduser()))
    ap.add_argument("--vllm-python", default=str(ROOT / ".venv-vllm" / "bin" / "python"))
    ap.add_argument("--json", type=Path, help="write the figures here too")
    ap.add_argument(
        "--seed",
        type=int,
        default=100,
        help="round r uses seed+r (a new seed keeps the store from answering)",
    )
    args = ap.parse_args()

    from negforge.config import ServerConfig, load_config
    from negforge.generators.checkpoint import ensure_smollm2_checkpoint
    from negforge.generators.server import VLLMServer
    from negforge.pipeline import run

    server = None
    base_url, model = args.base_url, args.model
    model_arg = model
    if base_url is None:
        path = ensure_smollm2_checkpoint(Path(args.cache_dir))
        server = VLLMServer(path, python=args.vllm_python, extra_args=ServerConfig().extra_args,
                            env={"VLLM_CPU_KVCACHE_SPACE": "2"}, log_path=Path(tempfile.gettempdir()) / "bench-vllm.log")  # fmt: skip
        print("starting vLLM ...", flush=True)
        base_url = server.start()
        model, model_arg = "negforge-llm", str(path)
        print(f"vLLM up in {server.startup_seconds:.0f} s", flush=True)
    base = base_url.removesuffix("/v1")
    rows: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="genbench-"))
    try:
        for rnd in range(args.rounds):
            for mode in args.modes:
                seed = args.seed + rnd
                over = [
                    f"data.path={args.data}", f"data.max_queries={args.queries}", f"cache_dir={args.cache_dir}",
                    f"output.dir={tmp}", f"run_name={mode}-r{rnd}", f"seed={seed}", "sources.llm.enabled=true",
                    "sources.llm.fraction=1", "sources.llm.count=1", f"sources.llm.mode={mode}",
                    f"sources.llm.max_tokens={args.max_tokens}", f"sources.llm.concurrency={args.concurrency}",
                    f"sources.llm.base_urls=[{base_url}]", f"sources.llm.model={model_arg}", "output.shard_size=10",
                ]  # fmt: skip
                cfg = load_config(None, over)
                reqs = first_requests(cfg)
                order = ["plain", "negforge"] if rnd % 2 == 0 else ["negforge", "plain"]
                row: dict = {"round": rnd, "mode": mode, "order": "→".join(order), "items": len(reqs)}
                for who in order:
                    if who == "plain":
                        tok, secs = asyncio.run(plain_client(base_url, model, reqs, args.concurrency))
                        row.update(plain_tokens=tok, plain_s=secs, plain_tps=tok / secs)
                        continue
                    before = metrics(base)
                    sampler = RunningSampler(base).start()
                    with RequestClock() as clock:
                        t0 = time.perf_counter()
                        res = run(cfg, overwrite=True)
                        wall = time.perf_counter() - t0
                    sampler.stop()
                    after = metrics(base)
                    st = res.manifest["generation"]["this_run"]
                    window = (clock.last or t0) - (clock.first or t0)
                    tok = st.get("completion_tokens", 0)
                    q = after["vllm:prefix_cache_queries_total"] - before["vllm:prefix_cache_queries_total"]
                    h = after["vllm:prefix_cache_hits_total"] - before["vllm:prefix_cache_hits_total"]
                    valid = st.get("valid", 0)
                    row.update(
                        nf_tokens=tok, nf_window_s=window, nf_wall_s=wall, nf_tps=tok / window if window else 0.0,
                        under_concurrency=sampler.under(args.concurrency, clock.first or t0, clock.last or t0),
                        requests=st.get("requests", 0), sent=st.get("sent_ok", 0), valid=valid,
                        valid_per_request=valid / max(1, st.get("sent_ok", 0)),
                        valid_per_1k_tokens=1000 * valid / max(1, tok), rejected=st.get("rejected", {}),
                        tokens_per_valid=st.get("tokens_per_valid"), prefix_hit=h / q if q else None,
                    )  # fmt: skip
                row["ratio"] = row["nf_tps"] / row["plain_tps"] if row.get("plain_tps") else None
                rows.append(row)
                print(json.dumps(row, default=str), flush=True)
    finally:
        if server is not None:
            server.stop()
    print()
    head = (
        f"{'round':>5} {'mode':>8} {'order':>16} {'items':>5} {'plain tok/s':>11} {'negforge tok/s':>14} "
        f"{'ratio':>6} {'<conc':>6} {'valid/req':>9} {'valid/1k tok':>12} {'prefix hit':>10}"
    )
    print(f"whole-run generation, SciFact train, {args.queries} queries, concurrency {args.concurrency}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['round']:>5} {r['mode']:>8} {r['order']:>16} {r['items']:>5} {r['plain_tps']:>11.1f} "
            f"{r['nf_tps']:>14.1f} {r['ratio']:>6.3f} {r['under_concurrency']:>6.1%} {r['valid_per_request']:>9.1%} "
            f"{r['valid_per_1k_tokens']:>12.2f} {(r['prefix_hit'] or 0):>10.1%}"
        )
    for mode in args.modes:
        rs = [r for r in rows if r["mode"] == mode]
        if rs:
            print(
                f"{mode}: mean ratio {statistics.mean(r['ratio'] for r in rs):.3f}, valid per request "
                f"{statistics.mean(r['valid_per_request'] for r in rs):.1%}, rejected {rs[-1]['rejected']}, "
                f"tokens per valid {rs[-1]['tokens_per_valid']}"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
