"""The two things every config module shares: `ConfigError`, the message a person who wrote the YAML
reads, and `_Strict`, the pydantic base that refuses unknown keys and validates assignments."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A config problem, phrased for the person who wrote the YAML."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
