"""Installed package versions, read from package metadata (importing the package would cost seconds for torch)."""

from __future__ import annotations

from importlib import metadata


def package_version(dist: str) -> str | None:
    """The installed version of distribution `dist` (e.g. "torch"), or None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
