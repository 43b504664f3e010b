"""report.md's "Written negatives" section: every rejection by reason, the accepted share per request, and
what to do next (a larger model) at this model size."""

from negforge.publish.report import LARGER_MODEL_ADVICE, _written_lines


def test_written_section_counts_requests_samples_and_every_reason():
    manifest = {
        "rules": {"made": 43, "by_kind": {"negation": 20}, "queries_without_edit": 7, "rejected": {"changes_question": 5}},
        "generation": {"this_run": {"requests": 40, "reasks": 10, "from_store": 0, "samples_judged": 90,
                                    "verified": 18, "unverifiable_kind": 6,
                                    "rejected": {"edit_too_small": 12, "off_answer": 4}}},
    }  # fmt: skip
    text = "\n".join(_written_lines(manifest))
    assert "43 verified edits" in text and "changes_question" in text and "7 queries without one" in text
    assert "40 requests (10 re-asks" in text and "90 samples judged" in text
    assert "accepted 24 (60% of requests): 18 verified contradictions, 6 not-answering" in text
    assert "edit_too_small" in text and "off_answer" in text
    assert text.endswith(LARGER_MODEL_ADVICE) and "base_urls" in LARGER_MODEL_ADVICE


def test_no_written_sources_no_section():
    assert _written_lines({"generation": None}) == [] and _written_lines({}) == []
