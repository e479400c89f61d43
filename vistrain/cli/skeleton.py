"""``vistrain plugins new NAME``: a ready-to-install plugin package with a model, a listener and tests."""

from __future__ import annotations

import re
from pathlib import Path

from vistrain.errors import ConfigError, OutputError

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
description = "A vistrain plugin"
requires-python = ">=3.10"
dependencies = ["vistrain"]

[project.entry-points.vistrain]
{name} = "{pkg}.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

README = '''# {name}

A vistrain plugin. It adds the model `{name}-net` and a listener that writes
`{name}-epochs.txt` (one line per finished epoch) into every run folder.

```bash
pip install -e .            # or: vistrain plugins install -e .
python -m pytest            # the tests
vistrain plugins list       # shows {name}
vistrain run --headless --model {name}-net --epochs 1
```

Hooks live in `src/{pkg}/plugin.py`; see vistrain's `docs/plugins.md` for every hook.
Keep that module's imports light (no torch at the top): it is imported by every `vistrain` call.
'''

PLUGIN = '''"""Hook implementations of {name}; factories are lazy strings so importing this stays cheap."""

from __future__ import annotations

from pathlib import Path

from vistrain.hookspecs import hookimpl


@hookimpl
def register_models(register):
    """Add {name}-net."""
    register("{name}-net", "{pkg}.models:create_model", family="{name}", in_chans=1, input_size=28,
             min_size=8, max_size=512, description="{name}: two conv layers and global pooling")


_run_dir: Path | None = None  # the folder of the run being listened to


@hookimpl
def on_event(event):
    """Append each finished epoch's number and loss to {name}-epochs.txt in the run folder."""
    global _run_dir
    if event.kind == "run_started":
        _run_dir = Path(event.run_dir)
    elif event.kind == "epoch_end" and _run_dir is not None:
        with open(_run_dir / "{name}-epochs.txt", "a", encoding="utf-8") as f:
            f.write(f"{{event.epoch}} {{event.train_loss:.4f}}\\n")
'''

MODELS = '''"""The {name}-net model (torch is imported here, only when the model is built)."""

from __future__ import annotations

from torch import nn


class Net(nn.Module):
    """conv-relu-pool twice, global average pooling, a linear head."""

    def __init__(self, num_classes: int, in_chans: int, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward_features(self, x):
        """Pooled features."""
        return self.features(x)

    def forward(self, x):
        return self.classifier(self.features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """A new head for *num_classes*."""
        self.classifier = nn.Linear(self.classifier.in_features, num_classes)


def create_model(num_classes: int, in_chans: int, input_size: int, **kwargs) -> Net:
    """The factory vistrain calls."""
    kwargs.pop("drop_rate", None)
    return Net(num_classes, in_chans, **kwargs)
'''

TEST = '''"""Tests of {name}: the hooks register what they should, the model runs, the entry point is installed."""

from importlib import metadata

import pytest
import torch

from vistrain import plugins
from vistrain.events import EpochEnd, RunStarted

import {pkg}.plugin as plugin_module


@pytest.fixture
def registered(monkeypatch):
    """Only this plugin, registered in-process (installed plugins are left out)."""
    monkeypatch.setenv("VISTRAIN_PLUGINS", "none")
    plugins.reset()
    plugins.register_plugin(plugin_module, "{name}-test")
    yield
    plugins.unregister_plugin("{name}-test")
    plugins.reset()


def test_model_is_registered_and_classifies(registered):
    entry = plugins.registry("model").entry("{name}-net")
    model = entry.load()(num_classes=3, in_chans=1, input_size=28)
    logits = model(torch.zeros(2, 1, 28, 28))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


def test_listener_writes_one_line_per_epoch(tmp_path):
    plugin_module.on_event(RunStarted(run_name="r", run_dir=str(tmp_path), strategy="supervised",
                                      model="{name}-net", dataset="mnist5k", device="cpu"))
    plugin_module.on_event(EpochEnd(stage="train", epoch=1, epochs=2, train_loss=0.5, train_top1=0.9, lr=0.1,
                                    duration_s=1.0, samples=10))
    assert (tmp_path / "{name}-epochs.txt").read_text().split() == ["1", "0.5000"]


def test_entry_point_is_installed():
    eps = {{ep.name: ep.value for ep in metadata.entry_points(group="vistrain")}}
    assert eps.get("{name}") == "{pkg}.plugin", "install the package first: pip install -e ."
'''


def write_skeleton(name: str, directory: Path) -> Path:
    """Write the package for plugin *name* under *directory*; returns its folder."""
    if not NAME_RE.match(name):
        raise ConfigError(f"plugin name {name!r} is not valid",
                          hint="start with a letter and use letters, digits, '-' or '_'")
    pkg = name.lower().replace("-", "_")
    folder = Path(directory).expanduser() / name
    if folder.exists():
        raise OutputError(f"{folder} already exists", hint="choose another name or --dir")
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/{pkg}/__init__.py": '"""The {name} vistrain plugin."""\n',
        f"src/{pkg}/plugin.py": PLUGIN,
        f"src/{pkg}/models.py": MODELS,
        f"tests/test_{pkg}.py": TEST,
    }
    try:
        for rel, template in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template.format(name=name, pkg=pkg), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {folder}: {exc.strerror or exc}", hint="choose a writable --dir") from None
    return folder
