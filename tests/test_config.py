from pathlib import Path

import pytest

from negforge.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(text)
    return p


def test_unknown_key_is_named(tmp_path):
    p = write(tmp_path, "data: {format: beir, path: x}\nselection: {num_negativs: 3}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "unknown key `selection.num_negativs`" in str(e.value)
    assert str(p) in str(e.value)


def test_bad_value_names_key_and_value(tmp_path):
    p = write(tmp_path, "data: {format: beir, path: x}\nselection: {sampling: best}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "`selection.sampling` = 'best'" in str(e.value)


def test_missing_data_path_is_explained():
    with pytest.raises(ConfigError, match="needs data.path"):
        load_config(None, ["data.format=beir"])


def test_overrides_are_typed_and_nested(tmp_path):
    p = write(tmp_path, "data: {format: beir, path: x}\n")
    cfg = load_config(p, ["selection.num_negatives=7", "sources.bm25.enabled=false", "output.formats=[rich]"])
    assert cfg.selection.num_negatives == 7
    assert cfg.sources.bm25.enabled is False
    assert cfg.output.formats == ["rich"]
    assert cfg.score_by == "dense"


def test_override_without_equals_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(write(tmp_path, "data: {format: beir, path: x}\n"), ["selection.depth"])


def test_relative_data_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "data").mkdir()
    cfg = load_config(write(tmp_path, "data: {format: beir, path: data}\n"))
    assert Path(cfg.data.path) == (tmp_path / "data").resolve()


def test_incoherent_sources_are_rejected():
    with pytest.raises(ConfigError, match="needs sources.dense.enabled"):
        load_config(None, ["data.path=x", "sources.dense.enabled=false", "selection.topics.clusters=4"])
    with pytest.raises(ConfigError, match="enable at least one"):
        load_config(None, ["data.path=x", "sources.dense.enabled=false", "sources.bm25.enabled=false"])


def test_fingerprint_ignores_run_name_but_not_selection():
    a = load_config(None, ["data.path=x", "run_name=a"])
    b = load_config(None, ["data.path=x", "run_name=b"])
    c = load_config(None, ["data.path=x", "selection.depth=10"])
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_yaml_that_is_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
