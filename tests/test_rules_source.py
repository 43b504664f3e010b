"""The `rules` source (no LLM): a sentence of the positive picked by the bi-encoder, edited by a verified
rule operator, spliced back; and the sentence choice itself. Real MiniLM, bm25s and faiss."""

import re

from datasets import load_from_disk

from negforge.generators.spans import choose_spans, split_sentences
from negforge.generators.verifiers import verify_edit
from negforge.pipeline import run
from negforge.text_identity import norm_text

ABSTRACT = (
    "Background Aspirin is widely used. Smith et al. reported 12 trials in 2001. "
    "In this cohort, aspirin reduced the risk of myocardial infarction by 44 percent in men. "
    "Bleeding was rare!"
)


def test_split_sentences_keeps_offsets_and_abbreviations():
    spans = split_sentences(ABSTRACT)
    sents = [ABSTRACT[a:b] for a, b in spans]
    assert sents == [
        "Background Aspirin is widely used.",
        "Smith et al. reported 12 trials in 2001.",
        "In this cohort, aspirin reduced the risk of myocardial infarction by 44 percent in men.",
        "Bleeding was rare!",
    ]


def test_choose_spans_picks_the_sentence_closest_to_the_query(minilm_path):
    from negforge.mining.encoders import TorchEncoder

    enc = TorchEncoder(minilm_path, max_seq_length=None, normalize=True)
    q = enc.encode(["Does aspirin lower heart attack risk in men?", "unused"], batch_size=2)
    spans = choose_spans(lambda t: enc.encode(t, batch_size=8), q, [("d1", ABSTRACT), None], "positive")
    assert spans[1] is None
    s = spans[0]
    assert s.sentence.startswith("In this cohort, aspirin reduced") and s.base_doc_id == "d1"
    assert s.splice("X.") == ABSTRACT.replace(s.sentence, "X.")


def test_rules_source_makes_verified_edits_of_the_positive(make_config):
    cfg = make_config("sources.rules.enabled=true", "sources.rules.count=2", "run_name=rules")
    assert [(f.type, f.per_source) for f in cfg.filters] == [
        ("duplicate", {"rules": {"against_positives": False, "near_threshold": None}}),
        ("embedding", {"rules": {"max_positive_sim": None}}),
    ]
    res = run(cfg)
    m = res.manifest
    assert m["rules"]["made"] > 0 and m["counts"]["selected"]["rules"] > 0
    rows = load_from_disk(str(res.dataset_dir))["rich"].to_list()
    seen = 0
    for r in rows:
        forbidden = {norm_text(p) for p in r["positives"]} | {norm_text(r["query"])}
        for n in r["negatives"]:
            if n["source"] != "rules":
                continue
            seen += 1
            g = n["generation"]
            assert n["doc_id"] is None and g["verified"] is True and g["mode"] == "rules"
            pos = next(p for p in r["positives"] if g["span"] in p)
            want = pos.replace(g["span"], g["replacement"], 1)
            if g["perturbation"] in (
                "entity_shift",
                "changed_value",
            ):  # the fact edited everywhere it is stated
                old, new = re.match(r"rule \w+: '(.*)' -> '(.*)'$", g["reasoning"]).groups()
                i = want.index(g["replacement"])
                before, after = want[:i], want[i + len(g["replacement"]) :]
                word = re.compile(rf"(?<!\w){re.escape(old.strip())}(?!\w)")
                want = word.sub(new.strip(), before) + g["replacement"] + word.sub(new.strip(), after)
            assert n["text"] == want
            assert verify_edit(g["span"], g["replacement"], g["perturbation"]).verified
            assert norm_text(n["text"]) not in forbidden
            assert g["base_doc_id"] in r["positive_ids"]
            # the meaning moved as the run's scorer sees it: below the very positive it edits (edit_margin 0)
            base = r["positive_scores"]["dense"][r["positive_ids"].index(g["base_doc_id"])]
            assert n["scores"]["dense"] <= base
        for d in r["dropped"]:
            if d["reason"] == "edit_margin":
                base = r["positive_scores"]["dense"][r["positive_ids"].index(d["generation"]["base_doc_id"])]
                assert d["source"] == "rules" and d["scores"]["dense"] >= base - 1e-6
    assert seen == m["counts"]["selected"]["rules"]
    sep = m["separability"]["rules"]  # the adversarial gap, measured on every run with written negatives
    assert sep["n"] == min(seen, 400)
    assert sep["auc"] is None or 0.0 <= sep["auc"] <= 1.0
    # a rerun gives the same edits (seeded), and two rules negatives of one query are never the same text
    again = load_from_disk(
        str(
            run(
                make_config("sources.rules.enabled=true", "sources.rules.count=2", "run_name=rules2")
            ).dataset_dir
        )
    )["rich"].to_list()
    texts = lambda rs: [[n["text"] for n in r["negatives"] if n["source"] == "rules"] for r in rs]  # noqa: E731
    assert texts(again) == texts(rows)
    assert all(len(set(t)) == len(t) for t in texts(rows))


def test_rules_need_the_dense_model():
    import pytest

    from negforge.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="sources.rules needs sources.dense.enabled"):
        load_config(None, ["data.path=x", "sources.rules.enabled=true", "sources.dense.enabled=false"])
