"""One pydantic model of a run: YAML in, clear errors out (the bad key, the bad value, the file).

The models live by idea: `sources` (the input and the negative sources), `selection` (rank window, margins,
sampling), `filters` (the filter stack), `run` (`RunConfig` and its run-level sections) and `loading` (YAML,
`--set` overrides, error messages); every name is importable from `negforge.config` as before.
"""

from __future__ import annotations

from negforge.config.adapt import AdaptConfig
from negforge.config.base import ConfigError
from negforge.config.filters import (
    AnswerLeakFilterConfig,
    CrossEncoderFilterConfig,
    DuplicateFilterConfig,
    EmbeddingFilterConfig,
    FilterConfig,
    LLMJudgeFilterConfig,
    NLIFilterConfig,
    SanityFilterConfig,
    SourceName,
    default_filters,
)
from negforge.config.loading import annotated_yaml, load_config, parse_overrides
from negforge.config.run import CurriculumConfig, ExecutionConfig, MixConfig, OutputConfig, RunConfig
from negforge.config.selection import CalibrationConfig, SelectionConfig, SimANSConfig, TopicsConfig
from negforge.config.sources import (
    BM25Config,
    Columns,
    DataConfig,
    DenseConfig,
    IndexConfig,
    LLMConfig,
    RandomConfig,
    RulesConfig,
    ServerConfig,
    SourcesConfig,
)

__all__ = [
    "AdaptConfig",
    "AnswerLeakFilterConfig",
    "BM25Config",
    "CalibrationConfig",
    "Columns",
    "ConfigError",
    "CrossEncoderFilterConfig",
    "CurriculumConfig",
    "DataConfig",
    "DenseConfig",
    "DuplicateFilterConfig",
    "EmbeddingFilterConfig",
    "ExecutionConfig",
    "FilterConfig",
    "IndexConfig",
    "LLMConfig",
    "LLMJudgeFilterConfig",
    "MixConfig",
    "NLIFilterConfig",
    "OutputConfig",
    "RandomConfig",
    "RulesConfig",
    "RunConfig",
    "SanityFilterConfig",
    "SelectionConfig",
    "ServerConfig",
    "SimANSConfig",
    "SourceName",
    "SourcesConfig",
    "TopicsConfig",
    "annotated_yaml",
    "default_filters",
    "load_config",
    "parse_overrides",
]
