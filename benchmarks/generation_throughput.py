"""Completion tokens/s of negforge's generator vs a plain saturating asyncio + openai client, against one
running vLLM server with the same prompts (same messages, schema, sampling parameters and seeds).

Not a test: prints both rates, their ratio, the share of valid negatives, and vLLM's prefix-cache hit rate
(from /metrics) during negforge's run.

    python benchmarks/generation_throughput.py                 # starts SmolLM2 on vLLM (.venv-vllm)
    python benchmarks/generation_throughput.py --base-url http://127.0.0.1:8000/v1 --model negforge-llm
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"


def metrics(base: str) -> dict[str, float]:
    """Prefix-cache counters from vLLM's Prometheus endpoint (v1 names)."""
    text = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for name in ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"):
        vals = [
            float(m.group(1))
            for m in re.finditer(rf"^{re.escape(name)}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.M)
        ]
        out[name] = sum(vals)
    return out


async def plain_client(base_url: str, model: str, requests: list, concurrency: int) -> tuple[int, float]:
    """The peer: AsyncOpenAI + a semaphore, nothing else."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", timeout=900, max_retries=0)
    sem = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(req) -> None:
        nonlocal tokens
        async with sem:
            r = await client.chat.completions.create(
                model=model, messages=req.messages, **req.params,
                response_format={"type": "json_schema", "json_schema": {"name": "negatives", "schema": req.schema, "strict": True}},
            )  # fmt: skip
            tokens += r.usage.completion_tokens

    t0 = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    elapsed = time.perf_counter() - t0
    await client.close()
    return tokens, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", help="an already running server's /v1 URL; default: start one")
    ap.add_argument("--model", default="negforge-llm", help="served model name (with --base-url)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=400)
    ap.add_argument("--vllm-python", default=str(ROOT / ".venv-vllm" / "bin" / "python"))
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from negforge.config import DataConfig, LLMConfig, ServerConfig
    from negforge.generators.checkpoint import ensure_smollm2_checkpoint
    from negforge.generators.client import GeneratorClient
    from negforge.generators.server import VLLMServer
    from negforge.generators.store import GenerationStore
    from negforge.generators.synthesize import GenItem, Synthesizer
    from negforge.mining.fingerprint import model_fingerprint
    from negforge.sources import load_input

    console = Console()
    server = None
    base_url, model, fp = args.base_url, args.model, "external"
    if base_url is None:
        path = ensure_smollm2_checkpoint(Path("~/.cache/negforge").expanduser())
        fp = model_fingerprint(path)
        server = VLLMServer(path, python=args.vllm_python, extra_args=ServerConfig().extra_args,
                            env={"VLLM_CPU_KVCACHE_SPACE": "2"}, log_path=Path(tempfile.gettempdir()) / "bench-vllm.log")  # fmt: skip
        console.print("starting vLLM ...")
        base_url = server.start()
        console.print(f"vLLM up in {server.startup_seconds:.0f} s")
    try:
        data = load_input(DataConfig(format="beir", path=str(args.data), max_queries=args.requests + 4))
        items = [GenItem(q.id, q.text, data.corpus.texts[q.positive_rows[0]]) for q in data.queries]
        cfg = LLMConfig(
            enabled=True,
            count=1,
            mode="from_positive",
            max_tokens=args.max_tokens,
            max_reasks=0,
            temperature=0.7,
        )
        with tempfile.TemporaryDirectory() as tmp:
            warm = Synthesizer(
                cfg, seed=1, served_model=model, model_fingerprint=fp, store=GenerationStore(Path(tmp) / "w")
            )
            warm.generate_sync(
                items[-4:], lambda: GeneratorClient([base_url], model, concurrency=4, timeout=900)
            )
            bench_items = items[: args.requests]
            planner = Synthesizer(
                cfg, seed=13, served_model=model, model_fingerprint=fp, store=GenerationStore(Path(tmp) / "p")
            )
            reqs = [planner.plan(it).request for it in bench_items]
            console.print(f"plain asyncio + openai: {len(reqs)} requests, concurrency {args.concurrency} ...")
            p_tokens, p_secs = asyncio.run(plain_client(base_url, model, reqs, args.concurrency))
            before = metrics(base_url.removesuffix("/v1"))
            console.print("negforge generator ...")
            nf = Synthesizer(
                cfg, seed=13, served_model=model, model_fingerprint=fp, store=GenerationStore(Path(tmp) / "n")
            )
            t0 = time.perf_counter()
            out = nf.generate_sync(
                bench_items,
                lambda: GeneratorClient([base_url], model, concurrency=args.concurrency, timeout=900),
            )
            n_secs = time.perf_counter() - t0
            after = metrics(base_url.removesuffix("/v1"))
    finally:
        if server is not None:
            server.stop()
    n_tokens = nf.stats.counts["completion_tokens"]
    q = after["vllm:prefix_cache_queries_total"] - before["vllm:prefix_cache_queries_total"]
    h = after["vllm:prefix_cache_hits_total"] - before["vllm:prefix_cache_hits_total"]
    valid = sum(len(v) for v in out.values())
    t = Table(
        title=f"generation throughput, {len(reqs)} requests, concurrency {args.concurrency}, max_tokens {args.max_tokens}"
    )
    for c in ("client", "completion tokens", "seconds", "tokens/s"):
        t.add_column(c, justify="right")
    t.add_row("plain asyncio + openai", str(p_tokens), f"{p_secs:.1f}", f"{p_tokens / p_secs:.1f}")
    t.add_row("negforge", str(n_tokens), f"{n_secs:.1f}", f"{n_tokens / n_secs:.1f}")
    console.print(t)
    console.print(f"ratio negforge / plain: {(n_tokens / n_secs) / (p_tokens / p_secs):.3f}")
    console.print(
        f"valid negatives: {valid}/{len(bench_items)} ({valid / len(bench_items):.0%}); rejected: {dict(nf.stats.rejected)}"
    )
    console.print(
        f"prefix-cache hit rate during negforge's run: {h / q:.1%} ({h:.0f} of {q:.0f} tokens)"
        if q
        else "prefix cache: no queries reported"
    )


if __name__ == "__main__":
    main()
