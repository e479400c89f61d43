"""Config: defaults, YAML, flags, --set, and error messages."""

from __future__ import annotations

import pytest
import yaml

from vistrain.config import Config, parse_set, resolve_config
from vistrain.errors import ConfigError


def test_defaults_are_the_documented_recipe():
    cfg = Config()
    assert cfg.model.name == "lenet5"
    assert cfg.data.name == "mnist5k"
    assert cfg.strategy.name == "supervised"
    assert yaml.safe_load(cfg.to_yaml())["optim"]["name"] == cfg.optim.name


def test_resolution_order_yaml_then_flags_then_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 3\n  seed: 5\noptim:\n  lr: 0.1\n")
    cfg = resolve_config(f, {"train.epochs": 7, "optim.lr": None}, ["train.epochs=9", "data.name=digits"])
    assert cfg.train.epochs == 9  # --set beats flag beats file
    assert cfg.train.seed == 5  # from file
    assert cfg.optim.lr == 0.1  # a None flag does not override
    assert cfg.data.name == "digits"


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError) as err:
        resolve_config(None, None, ["train.epohcs=3"])
    assert "train.epohcs" in str(err.value) and "'epochs'" in str(err.value)


def test_unknown_section_suggests(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optimm:\n  lr: 1\n")
    with pytest.raises(ConfigError, match="did you mean 'optim'"):
        resolve_config(f)


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"train\.epochs.*'many'"):
        resolve_config(None, None, ["train.epochs=many"])


def test_malformed_yaml_reports_the_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train:\n  epochs: 3\n  seed: [1, 2\nmodel: x\n")
    with pytest.raises(ConfigError, match=r"line \d+"):
        resolve_config(f)


def test_yaml_must_be_a_mapping(tmp_path):
    f = tmp_path / "list.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve_config(f)


def test_yaml_is_loaded_safely(tmp_path):
    f = tmp_path / "evil.yaml"
    f.write_text("train: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        resolve_config(f)


def test_set_parses_yaml_scalars():
    assert parse_set("a.b=3") == (["a", "b"], 3)
    assert parse_set("a=true") == (["a"], True)
    assert parse_set("a=x") == (["a"], "x")
    with pytest.raises(ConfigError):
        parse_set("novalue")


def test_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        resolve_config("/nonexistent/c.yaml")
