"""Generator client and synthesizer against FaultyOpenAIServerDouble: every fault is retried, failed over,
or counted by reason; nothing crashes; finished work survives a failure and is not asked again."""

import asyncio
import time

import pytest

from negforge.config import LLMConfig
from negforge.generators.client import ChatRequest, GeneratorClient
from negforge.generators.store import GenerationStore
from negforge.generators.synthesize import GenerationFailed, GenItem, Synthesizer
from tests.fault_server import FaultyOpenAIServerDouble

POSITIVE = (
    "Aspirin reduces fever in adults by inhibiting cyclooxygenase enzymes, which lowers prostaglandin "
    "synthesis in the hypothalamus; randomized trials report a mean drop of one degree within two hours."
)
BASE = (
    "Ibuprofen is a nonsteroidal anti-inflammatory drug that relieves pain and inflammation; it also "
    "lowers fever, and paediatric trials compare its effect with paracetamol over several hours."
)


def items(n: int) -> list[GenItem]:
    return [
        GenItem(f"q{i}", f"does aspirin lower fever number {i}", POSITIVE, f"d{i}", BASE) for i in range(n)
    ]


def synth(tmp_path, **cfg) -> Synthesizer:
    llm = LLMConfig(enabled=True, count=2, **cfg)
    return Synthesizer(
        llm,
        seed=13,
        served_model="double",
        model_fingerprint="fp-double",
        store=GenerationStore(tmp_path / "store"),
    )


def client(urls, **kw) -> GeneratorClient:
    # 10 s: an answer from the double takes milliseconds, but a loaded 2-core CI machine can stall a second;
    # the timeout fault alone runs with a short timeout (the double sleeps 3 s there)
    return GeneratorClient(urls, "double", **{"timeout": 10.0, "max_retries": 2, **kw})


def run(s: Synthesizer, its, c):
    return s.generate_sync(its, lambda: c)


@pytest.mark.parametrize("fault", ["500", "429", "drop", "timeout"])
def test_transient_faults_are_retried(tmp_path, fault):
    with FaultyOpenAIServerDouble([fault]) as srv:
        s = synth(tmp_path)
        out = run(s, items(1), client([srv.base_url], **({"timeout": 1.0} if fault == "timeout" else {})))
    assert srv.modes[:2] == [fault, "ok"]
    assert len(out["q0"]) == 2 and {n.perturbation for n in out["q0"]} <= set(
        s.plan(items(1)[0]).perturbations
    ) | {""}
    assert s.stats.counts["sent_ok"] == 1


def test_failover_to_the_next_base_url(tmp_path):
    with FaultyOpenAIServerDouble(default="500") as bad, FaultyOpenAIServerDouble() as good:
        c = client([bad.base_url, good.base_url], max_retries=0)
        out = run(synth(tmp_path), items(4), c)
    assert all(len(v) == 2 for v in out.values())
    assert c.stats.failovers >= 1 and len(good.requests) == 4


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("bad_content", "response_bad_json"), ("refusal", "refusal")],
)
def test_bad_content_is_rejected_with_its_reason_and_reasked(tmp_path, fault, reason):
    with FaultyOpenAIServerDouble([fault]) as srv:
        s = synth(tmp_path, max_reasks=1, send_seed=True)
        out = run(s, items(1), client([srv.base_url]))
    assert s.stats.rejected[reason] >= 1
    assert s.stats.counts["reasks"] == 1 and len(out["q0"]) == 2  # the re-ask (new seed) succeeded
    assert srv.requests[0]["seed"] != srv.requests[1]["seed"]


def test_fenced_json_with_prose_is_recovered_and_counted(tmp_path):
    with FaultyOpenAIServerDouble(default="fenced") as srv:
        s = synth(tmp_path)
        out = run(s, items(3), client([srv.base_url]))
    assert set(srv.modes) == {"fenced"}
    assert all(len(v) == 2 for v in out.values())  # every negative kept
    assert s.stats.counts["recovered"] == 3 and s.stats.counts["valid"] == 6
    assert "reasks" not in s.stats.counts and not s.stats.rejected
    assert s.stats.as_dict()["recovered"] == 3


@pytest.mark.parametrize("fault", ["malformed", "truncated"])
def test_malformed_bodies_never_crash(tmp_path, fault):
    with FaultyOpenAIServerDouble(default=fault) as srv:
        s = synth(tmp_path)
        c = client([srv.base_url], max_retries=0)
        with pytest.raises(GenerationFailed, match="failed"):
            run(s, items(2), c)
    assert sum(c.stats.errors.values()) == 2


def test_finished_responses_survive_a_dead_server_and_are_not_sent_again(tmp_path):
    its = items(6)
    with FaultyOpenAIServerDouble(["ok", "ok", "ok"], default="500") as srv:
        s = synth(tmp_path)
        with pytest.raises(GenerationFailed, match="rerun to resume"):
            run(s, its, client([srv.base_url], max_retries=0))
    assert len(s.store.records) == 3
    s.store.close()
    with FaultyOpenAIServerDouble() as srv2:
        again = synth(tmp_path)
        out = run(again, its, client([srv2.base_url]))
    assert len(srv2.requests) == 3 and again.stats.counts["from_store"] == 3
    assert all(len(v) == 2 for v in out.values())


def test_request_shape_suits_vllm_prefix_cache_and_structured_output(tmp_path):
    with FaultyOpenAIServerDouble() as srv:
        run(synth(tmp_path), items(3), client([srv.base_url]))
    systems = {r["messages"][0]["content"] for r in srv.requests}
    assert len(systems) == 1  # the fixed instruction block is identical, first, for every request
    for r in srv.requests:
        assert r["response_format"]["type"] == "json_schema" and "guided_json" not in r
        assert r["response_format"]["json_schema"]["schema"]["properties"]["negatives"]["minItems"] == 2
        assert r["messages"][-1]["content"].endswith("</passage>")  # per-item text last
        assert "seed" not in r  # vLLM's CPU build crashes on seeded requests; only sent when configured


def test_concurrency_is_bounded(tmp_path):
    with FaultyOpenAIServerDouble(delay=0.3) as srv:
        c = client([srv.base_url], concurrency=3, timeout=10)
        start = time.perf_counter()
        run(synth(tmp_path), items(9), c)
        elapsed = time.perf_counter() - start
    assert elapsed >= 0.9  # 9 requests of 0.3 s, 3 at a time: at least 3 rounds


def test_chat_request_without_schema_sends_no_response_format(tmp_path):
    with FaultyOpenAIServerDouble() as srv:
        c = client([srv.base_url])

        async def go():
            try:
                return await c.complete(
                    ChatRequest("k", [{"role": "user", "content": "hi"}], {"max_tokens": 5})
                )
            finally:
                await c.close()

        res = asyncio.run(go())
    assert res.error is None and "response_format" not in srv.requests[0]
