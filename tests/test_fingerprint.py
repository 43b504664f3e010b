"""Model weights fingerprints: by content, read once per process for large files, read again after a rewrite."""

from __future__ import annotations

import os

import negforge.mining.fingerprint as fp


def test_a_large_weights_file_is_read_once_and_again_after_a_rewrite(tmp_path, monkeypatch):
    monkeypatch.setattr(fp, "_REMEMBER_FROM", 1024)  # "large" from 1 KiB, so the test stays small
    model = tmp_path / "model"
    model.mkdir()
    weights = model / "model.safetensors"
    weights.write_bytes(os.urandom(4096))
    (model / "config.json").write_text("{}")
    first = fp.model_fingerprint(model)
    reads = []
    real_open = type(weights).open
    monkeypatch.setattr(
        type(weights), "open", lambda self, *a, **k: reads.append(self.name) or real_open(self, *a, **k)
    )
    assert fp.model_fingerprint(model) == first
    assert reads == ["config.json"]  # the small file is always read, the large one remembered
    weights.write_bytes(os.urandom(8192))  # retrained in place: a new size and mtime
    assert fp.model_fingerprint(model) != first
