"""A finished run as the Hugging Face Hub sees it: Parquet per config and split under data/, a card, plots.

The same folder serves three uses: `datasets.load_dataset(folder, config)` reads it offline, a reviewer reads
it before anything leaves the machine, and `push.py` pushes exactly these files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from negforge.publish.card import render_card
from negforge.publish.run_files import PublishError, RunFiles

#: the files a Hub layout folder holds that negforge wrote (relative paths), so a rewrite removes only those
HUB_MARKER = ".negforge-hub.json"


def _owned_files(dest: Path) -> set[str]:
    """Files an earlier `write_hub_folder` wrote into `dest` (from its marker); empty when none did."""
    try:
        files = json.loads((dest / HUB_MARKER).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {
        f for f in files if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute()
    }


def write_hub_folder(run: RunFiles, dest: Path | str, *, license: str | None = None) -> Path:
    """Write the Hub repository layout to `dest`: README.md (card), data/<config>/<split>-*.parquet, images/.

    Only what negforge wrote is ever removed: the files an earlier write listed in `dest/.negforge-hub.json`
    go (so no stale shard is left behind), everything else in `dest` stays (exports/, the user's own files).
    A file negforge would write over that it did not write itself (a README.md of the user's, a foreign file
    under data/) raises PublishError naming it, before anything is changed.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    before = _owned_files(dest)
    plan = {
        run.data_path(config, split): src
        for config, splits in run.parquet.items()
        for split, src in splits.items()
    }
    plan.update({f"images/{p.name}": p for p in run.plots})
    targets = [*plan, "README.md"]
    foreign = [t for t in targets if (dest / t).exists() and t not in before]
    if foreign:
        raise PublishError(
            f"{dest}: {', '.join(foreign[:3])} exist{'s' if len(foreign) == 1 else ''} and negforge did not write "
            f"{'it' if len(foreign) == 1 else 'them'} (not in {HUB_MARKER}); publish into an empty folder or "
            "move them away"
        )
    for rel in sorted(before):
        (dest / rel).unlink(missing_ok=True)
    for rel in sorted(before, key=lambda r: -len(Path(r).parts)):  # now-empty folders negforge made
        for parent in Path(rel).parents:
            if parent != Path(".") and (dest / parent).is_dir() and not any((dest / parent).iterdir()):
                (dest / parent).rmdir()
    for rel, src in plan.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)
    (dest / "README.md").write_text(render_card(run, license=license), encoding="utf-8")
    (dest / HUB_MARKER).write_text(json.dumps({"negforge": 1, "files": sorted(targets)}, indent=1) + "\n")
    return dest
