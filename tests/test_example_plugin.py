"""The example plugin in plugins/ works through a real entry point-shaped load."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from vistrain import plugins

sys.path.insert(0, str(Path(__file__).parent.parent / "plugins" / "vistrain-example"))


@pytest.fixture
def example_installed(monkeypatch):
    import vistrain_example.plugin as module

    ep = types.SimpleNamespace(name="example", load=lambda: module,
                               dist=types.SimpleNamespace(name="vistrain-example", version="0.1.0"))
    monkeypatch.setattr(plugins, "_entry_points", lambda: [ep])
    monkeypatch.setenv("VISTRAIN_PLUGINS", "example")
    plugins.reset()
    yield


def test_example_plugin_trains_end_to_end(cli, tmp_path, example_installed):
    code, out, err = cli("run", "--headless", "--model", "example-cnn", "--data", "stripes:16", "--epochs", "2",
                         "--out", tmp_path, "--name", "ex", "--set", "optim.lr=0.01")
    assert code == 0, err
    assert (tmp_path / "ex" / "example-best.txt").read_text().startswith("epoch ")
    code, out, _ = cli("example-summary", tmp_path / "ex")
    assert code == 0 and out.startswith("best epoch")
    code, out, _ = cli("plugins", "list")
    assert "vistrain-example 0.1.0" in out


def test_example_plugin_is_excluded_by_the_env_var(cli, example_installed, monkeypatch):
    monkeypatch.setenv("VISTRAIN_PLUGINS", "none")
    plugins.reset()
    code, _, err = cli("run", "--headless", "--model", "example-cnn")
    assert code == 2 and "unknown model 'example-cnn'" in err
