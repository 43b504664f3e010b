"""One scoring space: every candidate, mined or written, is scored as the positives are (corpus prompt, one
encoder), and a model trained on prompted data is trained and evaluated with the same prompts.

Right values from ../shared/cases/23-synthetic-negative-prompt: with E5-style prompts, a rule edit's recorded
dense score is cos(enc("query: " + q), enc("passage: " + text)), and the MarginMSE label is positive − negative.
all-MiniLM-L6-v2 is the prompt-sensitive encoder: its embedding of "passage: " + text is not that of text.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import load_from_disk

from negforge.pipeline import run
from negforge.training.prompts import RetrievalPrompts, for_evaluation, for_training
from tests.conftest import write_beir

QP, CP = "query: ", "passage: "


@pytest.fixture(scope="module")
def prompted_run(tiny_beir, cache_dir, tmp_path_factory):
    from negforge.config import load_config

    cfg = load_config(
        None,
        [
            f"data.path={tiny_beir}",
            f"cache_dir={cache_dir}",
            f"output.dir={tmp_path_factory.mktemp('prompt_runs')}",
            "run_name=prompts",
            "sources.dense.backend=torch",
            f'sources.dense.query_prompt="{QP}"',
            f'sources.dense.corpus_prompt="{CP}"',
            "sources.rules.enabled=true",
            "sources.rules.count=1",
            "selection.num_negatives=3",
            "selection.score_by=dense",
            "output.scores=true",
            "output.shard_size=4",
        ],
    )
    res = run(cfg)
    return res, load_from_disk(str(res.dataset_dir))


@pytest.fixture(scope="module")
def minilm(minilm_path):
    from sentence_transformers import SentenceTransformer

    m = SentenceTransformer(minilm_path, device="cpu")
    return lambda texts: m.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


def test_written_negatives_are_scored_with_the_corpus_prompt(prompted_run, minilm):
    _, dd = prompted_run
    seen = moved = 0
    labels = {}
    for r in dd["rich"]:
        q = minilm([QP + r["query"]])[0]
        pos = minilm([CP + t for t in r["positives"]]) @ q
        np.testing.assert_allclose(r["positive_scores"]["dense"], pos, atol=1e-4)
        for n in r["negatives"]:
            want = float(minilm([CP + n["text"]])[0] @ q)
            assert n["scores"]["dense"] == pytest.approx(want, abs=1e-4), (r["query_id"], n["source"])
            if n["source"] == "rules":
                seen += 1
                moved += abs(float(minilm([n["text"]])[0] @ q) - want) > 1e-3  # the prompt matters
            for pt, ps in zip(r["positives"], pos, strict=True):
                labels[(r["query"], pt, n["text"])] = float(ps) - want
    assert seen > 0 and moved > 0
    checked = 0
    for t in dd["triplet"]:  # MarginMSE label = positive - negative, both in the prompted space
        want = labels.get((t["anchor"], t["positive"], t["negative"]))
        if want is not None and t["label"] is not None:
            assert t["label"] == pytest.approx(want, abs=1e-3)
            checked += 1
    assert checked > 0


def test_prompt_precedence_for_training_and_evaluation(tmp_path):
    manifest = {"config": {"sources": {"dense": {"query_prompt": QP, "corpus_prompt": CP}}}}
    assert for_training(None, None, manifest) == RetrievalPrompts(QP, CP, "run manifest")
    assert for_training("", None, manifest) == RetrievalPrompts("", CP, "command line")
    assert for_training(None, None, None) == RetrievalPrompts()
    p = RetrievalPrompts(QP, CP)
    assert p.column_prompts(["anchor", "positive", "negative_1", "label"]) == {
        "anchor": QP,
        "positive": CP,
        "negative_1": CP,
    }
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "q> "}}))
    assert for_evaluation(ck, None, None) == RetrievalPrompts("q> ", "", "model config")
    (ck / "negforge_checkpoint.json").write_text(json.dumps({"prompts": {"query": QP, "corpus": CP}}))
    assert for_evaluation(ck, None, None) == RetrievalPrompts(QP, CP, "checkpoint")
    assert for_evaluation(ck, None, "") == RetrievalPrompts(QP, "", "command line")


def test_train_takes_the_runs_prompts_and_evaluate_uses_them(prompted_run, minilm_path, tmp_path):
    from negforge.training import evaluate
    from negforge.training.evaluate import BeirSplit
    from negforge.training.train import TrainConfig, train

    res, _ = prompted_run
    out = tmp_path / "ck"
    t = train(TrainConfig(dataset=res.run_dir, output_dir=out, batch_size=4, max_steps=1, max_seq_length=64))
    assert t.info["prompts"] == {"query": QP, "corpus": CP, "source": "run manifest"}
    saved = json.loads((out / "config_sentence_transformers.json").read_text())["prompts"]
    assert saved["query"] == QP and saved["document"] == CP
    docs = [
        {"_id": "a", "title": "", "text": "Aspirin lowers the risk of heart attack in men."},
        {"_id": "b", "title": "", "text": "Photosynthesis turns light into sugar."},
        {"_id": "c", "title": "", "text": "The offside rule in football."},
    ]
    queries = [
        {"_id": "q1", "text": "does aspirin prevent heart attacks"},
        {"_id": "q2", "text": "plants light"},
    ]
    beir_dir = write_beir(tmp_path / "beir", docs, queries, [("q1", "a"), ("q2", "b")])
    cache = tmp_path / "cache"
    r = evaluate(out, beir_dir, "train", cache_dir=cache)
    assert (r["query_prompt"], r["corpus_prompt"], r["prompts_from"]) == (QP, CP, "checkpoint")
    specs = [json.loads(p.read_text()) for p in (cache / "embeddings").glob("*/complete.json")]
    assert [s["prompt"] for s in specs] == [CP]  # the cached corpus embeddings are the prompted ones
    # the prompts reach the encoder: prompting is the same as writing the prompt into every text
    by_hand = BeirSplit(beir_dir, "train")
    by_hand.queries = {k: QP + v for k, v in by_hand.queries.items()}
    by_hand.corpus_texts = [CP + t for t in by_hand.corpus_texts]
    h = evaluate(out, by_hand, query_prompt="", corpus_prompt="")
    assert h["prompts_from"] == "command line"
    for m in ("ndcg@10", "mrr@10", "recall@100"):
        assert h[m] == pytest.approx(r[m], abs=1e-6)
