"""The synthetic corpus of benchmarks/scale.py, generated, nothing downloaded (seeded numpy): a BEIR folder of
pseudo-word passages and queries with topic structure, and unit embeddings with the same structure as .npy
(see benchmarks/scale.py's docstring for the design)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

DIM = 384
GEN_VERSION = 1  # bump when the generator changes, so old --work data are regenerated
CHUNK = 50_000


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_vocab(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct pronounceable pseudo-words of 2-4 syllables (no English stopword among them)."""
    onsets = [*"bdfgklmnprstvz", "br", "kr", "st", "tr", "pl", "gr", "sh", "ch"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou", "ea"]
    codas = ["", "", "n", "r", "s", "l", "x", "m"]
    out: dict[str, None] = {}
    while len(out) < n:
        k = 4 * (n - len(out))
        syl = rng.integers(2, 5, size=k)
        parts = [rng.integers(len(a), size=(k, 4)) for a in (onsets, vowels, codas)]
        for j in range(k):
            w = "".join(
                onsets[parts[0][j, s]] + vowels[parts[1][j, s]] + codas[parts[2][j, s]] for s in range(syl[j])
            )
            out.setdefault(w)
            if len(out) == n:
                break
    return list(out)


def zipf_weights(n: int, a: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** a
    return w / w.sum()


def generate(work: Path, n_docs: int, n_queries: int, seed: int) -> dict:
    """Write the BEIR folder and the two .npy files into `work`; returns the generation parameters."""
    from negforge.progress import progress_bar

    params = {
        "version": GEN_VERSION,
        "passages": n_docs,
        "queries": n_queries,
        "seed": seed,
        "dim": DIM,
        "vocab": 50_000,
        "topic_words": 40,
        "topics": max(20, n_docs // 500),
        "super_topics": max(4, n_docs // 25_000),
        "topic_token_share": 0.5,
        "doc_noise": 0.9,
        "query_noise": 0.8,
        "sibling_weight": "uniform(0, 0.5)",
    }
    meta = work / "generated.json"
    if meta.exists() and json.loads(meta.read_text()) == params:
        print(f"data: reusing {work}")
        return params
    shutil.rmtree(work, ignore_errors=True)
    (work / "data" / "qrels").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n_topics, n_super = params["topics"], params["super_topics"]
    vocab = make_vocab(rng, params["vocab"])
    background = zipf_weights(len(vocab), 1.0)
    topic_vocab = rng.integers(len(vocab), size=(n_topics, params["topic_words"]))
    in_topic = zipf_weights(params["topic_words"], 0.8)
    topic_size = zipf_weights(n_topics, 0.6)[rng.permutation(n_topics)]  # heavy-tailed topic sizes
    topic_super = rng.integers(n_super, size=n_topics)
    supers = unit(rng.standard_normal((n_super, DIM)))
    centroids = unit(supers[topic_super] + 0.9 * unit(rng.standard_normal((n_topics, DIM))))
    by_super = np.argsort(topic_super, kind="stable")  # topics grouped by super-topic
    super_start = np.searchsorted(topic_super[by_super], np.arange(n_super))
    super_size = np.bincount(topic_super, minlength=n_super)

    positives = np.sort(rng.choice(n_docs, size=n_queries, replace=False))
    pos_tokens: dict[int, list[int]] = {}
    doc_topic = np.empty(n_docs, dtype=np.int64)
    emb = np.lib.format.open_memmap(work / "corpus_emb.npy", mode="w+", dtype=np.float32, shape=(n_docs, DIM))
    t0 = time.perf_counter()
    with (
        open(work / "data" / "corpus.jsonl", "w", encoding="utf-8") as f,
        progress_bar("generate passages", n_docs) as advance,
    ):
        for s in range(0, n_docs, CHUNK):
            n = min(CHUNK, n_docs - s)
            topics = rng.choice(n_topics, size=n, p=topic_size)
            doc_topic[s : s + n] = topics
            lengths = rng.integers(15, 31, size=n)
            total = int(lengths.sum())
            owner = np.repeat(topics, lengths)
            from_topic = rng.random(total) < params["topic_token_share"]
            toks = rng.choice(len(vocab), size=total, p=background)
            pick = rng.choice(params["topic_words"], size=int(from_topic.sum()), p=in_topic)
            toks[from_topic] = topic_vocab[owner[from_topic], pick]
            ends = np.cumsum(lengths)
            flat = toks.tolist()
            lines = []
            for j in range(n):
                words = flat[ends[j] - lengths[j] : ends[j]]
                row = s + j
                lines.append(f'{{"_id": "d{row}", "text": "{" ".join(vocab[w] for w in words)}"}}\n')
            f.writelines(lines)
            for row in positives[(positives >= s) & (positives < s + n)]:
                j = row - s
                pos_tokens[int(row)] = flat[ends[j] - lengths[j] : ends[j]]
            # embedding: own topic blended with a sibling topic of the same super-topic, plus noise
            sup = topic_super[topics]
            sib = by_super[super_start[sup] + (rng.random(n) * super_size[sup]).astype(np.int64)]
            w = rng.uniform(0.0, 0.5, size=(n, 1)).astype(np.float32)
            base = (1 - w) * centroids[topics] + w * centroids[sib]
            noise = rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
            emb[s : s + n] = unit(base + params["doc_noise"] * noise)
            advance(n)
    emb.flush()
    del emb
    corpus_emb = np.load(work / "corpus_emb.npy", mmap_mode="r")
    q_emb = unit(
        corpus_emb[positives]
        + params["query_noise"] * rng.standard_normal((n_queries, DIM)).astype(np.float32) / np.sqrt(DIM)
    )
    np.save(work / "query_emb.npy", q_emb)
    with open(work / "data" / "queries.jsonl", "w", encoding="utf-8") as fq:
        for i, row in enumerate(positives):
            t = doc_topic[row]
            own = rng.choice(pos_tokens[int(row)], size=3, replace=False).tolist()
            topical = topic_vocab[t, rng.choice(params["topic_words"], size=2, p=in_topic)].tolist()
            words = [vocab[w] for w in dict.fromkeys(topical + own)]
            fq.write(f'{{"_id": "q{i}", "text": "{" ".join(words)}"}}\n')
    qrels = ["query-id\tcorpus-id\tscore", *(f"q{i}\td{row}\t1" for i, row in enumerate(positives))]
    (work / "data" / "qrels" / "train.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    params["generate_seconds"] = round(time.perf_counter() - t0, 1)
    meta.write_text(json.dumps({k: v for k, v in params.items() if k != "generate_seconds"}))
    return params
