"""The package's layering holds (issue 26): the import-linter contracts in pyproject.toml — config and the
records import no stage, no library module imports a flow or the CLI, and no import cycle between siblings."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "lint-imports is missing: it comes with the dev extra (pip install -e '.[dev]')"
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in out.stdout
