"""negforge command line: `negforge run CONFIG.yaml`, `negforge validate`, `negforge show`.

One Typer `app` (negforge.cli.common) that each command module registers on when imported: `build` (run,
adapt, serve), `checks` (validate, inspect, show), `calibrate`, `training` (train, evaluate), `publishing` (publish) and
`ance` (refresh, loop). The import order below is the order of commands in `negforge --help`.
"""

from __future__ import annotations

# each import registers its commands on `app`: this order is the order of commands in --help
# isort: off
from negforge.cli.common import ConfigArg, Engine, SetOpt, app, err, out
from negforge.cli.build import adapt, run, serve
from negforge.cli.checks import inspect, show, validate
from negforge.cli.calibrate import calibrate
from negforge.cli.training import LossName, evaluate, train
from negforge.cli.publishing import ExportFormat, publish
from negforge.cli.ance import loop, refresh

# isort: on

__all__ = [
    "ConfigArg",
    "Engine",
    "ExportFormat",
    "LossName",
    "SetOpt",
    "adapt",
    "app",
    "calibrate",
    "err",
    "evaluate",
    "inspect",
    "loop",
    "out",
    "publish",
    "refresh",
    "run",
    "serve",
    "show",
    "train",
    "validate",
]
