"""The type checker holds (issue 26): mypy over negforge/ with the settings in pyproject.toml (the pydantic
plugin, strict checks on the records and the interfaces between stages) finds nothing."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_is_clean(tmp_path):
    exe = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    assert exe, "mypy is missing: it comes with the dev extra (pip install -e '.[dev]')"
    out = subprocess.run(
        [exe, "--cache-dir", str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-2000:]
    assert out.stdout.startswith("Success: no issues found"), out.stdout[-2000:]
