"""vistrain-example: its model, dataset, command and listener, registered in-process."""

from __future__ import annotations

import pytest
import torch

from vistrain import plugins
from vistrain.config import DataConfig

import vistrain_example.plugin as plugin_module


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setenv("VISTRAIN_PLUGINS", "none")
    plugins.reset()
    plugins.register_plugin(plugin_module, "example-test")
    yield
    plugins.unregister_plugin("example-test")
    plugins.reset()


def test_model_and_dataset(registered):
    source = plugins.registry("dataset").entry("stripes").load()("12", DataConfig())
    assert len(source.train) == 600 and source.classes == ["horizontal", "vertical", "diagonal"]
    assert source.train.image(0).shape == (12, 12, 3)
    model = plugins.registry("model").entry("example-cnn").load()(num_classes=3, in_chans=3, input_size=12)
    assert model(torch.zeros(2, 3, 12, 12)).shape == (2, 3)


def test_train_then_summary_command(registered, tmp_path, capsys):
    from vistrain.cli import main

    assert main(["run", "--headless", "--model", "example-cnn", "--data", "stripes:12", "--epochs", "2",
                 "--out", str(tmp_path), "--name", "ex", "--set", "optim.lr=0.01"]) == 0
    assert (tmp_path / "ex" / "example-best.txt").read_text().startswith("epoch ")
    capsys.readouterr()
    assert main(["example-summary", str(tmp_path / "ex")]) == 0
    assert capsys.readouterr().out.startswith("best epoch")
