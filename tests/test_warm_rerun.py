"""Warm means warm: a rerun over a cache that holds every embedding, verdict, key and figure loads no model,
imports neither torch nor matplotlib, mines no shard, and writes the same dataset (issue 25)."""

import json
import subprocess
import sys
import textwrap

import pytest

from negforge.mining.precision import gpu_driver_present

CHILD = textwrap.dedent(
    """
    import hashlib, json, sys
    import pyarrow.parquet as pq
    from negforge import progress
    from negforge.config import load_config
    from negforge.pipeline import run

    progress.set_enabled(False)
    res = run(load_config(None, json.loads(sys.argv[1])), overwrite=sys.argv[2] == "overwrite")
    report = (res.run_dir / "report").glob("scores_*.png")
    print(json.dumps({
        "imported": {m: m in sys.modules for m in ("torch", "matplotlib", "openai", "scipy.stats")},
        "shards": res.manifest["shards"], "reused_mining_seconds": res.manifest["reused_mining_seconds"], "mine": res.manifest["timings"]["mine"],
        "rows": hashlib.sha256(json.dumps(pq.read_table(res.dataset_dir / "parquet" / "rich" / "train.parquet")
                                          .to_pylist(), sort_keys=True).encode()).hexdigest(),
        "plots": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in report},
    }))
    """
)


def _run(overrides: list[str], mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(overrides), mode],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(gpu_driver_present(), reason="on a GPU machine torch is imported to name the GPU")
def test_a_warm_rerun_imports_no_model_stack_and_mines_nothing(tiny_beir, tmp_path):
    overrides = [
        f"data.path={tiny_beir}", f"cache_dir={tmp_path / 'cache'}", f"output.dir={tmp_path / 'runs'}",
        "output.shard_size=4", "selection.depth=20", "sources.dense.backend=auto",
    ]  # fmt: skip
    cold = _run(overrides, "resume")
    assert cold["imported"]["torch"] and cold["imported"]["matplotlib"]  # it encoded and drew
    assert cold["shards"]["reused"] == 0 and cold["mine"]["items"] == 12
    warm = _run(overrides, "overwrite")
    assert {m: warm["imported"][m] for m in ("torch", "matplotlib", "openai")} == dict.fromkeys(
        ("torch", "matplotlib", "openai"), False
    )
    assert warm["shards"]["reused"] == warm["shards"]["total"] == cold["shards"]["total"]
    assert warm["mine"]["items"] == 0 and warm["mine"]["seconds"] == 0
    assert warm["reused_mining_seconds"] > 0 and cold["reused_mining_seconds"] == 0
    assert warm["rows"] == cold["rows"]  # the same dataset, row for row
    assert warm["plots"] == cold["plots"] and warm["plots"]  # the same figures, byte for byte
