"""Shared fixtures: installed third-party plugins are never loaded during tests."""

from __future__ import annotations

import os

import pytest

os.environ["VISTRAIN_PLUGINS"] = "none"
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _isolated_plugins(monkeypatch):
    """Each test starts from a fresh plugin manager with no third-party plugins."""
    from vistrain import plugins

    monkeypatch.setenv("VISTRAIN_PLUGINS", "none")
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from vistrain.cli import main

    def invoke(*args: str):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def recorder():
    """Register a listener plugin that records every event; unregistered afterwards."""
    from vistrain import plugins
    from vistrain.hookspecs import hookimpl

    class Recorder:
        def __init__(self):
            self.events = []

        @hookimpl
        def on_event(self, event):
            self.events.append(event)

        def of(self, kind):
            return [e for e in self.events if e.kind == kind]

    rec = Recorder()
    plugins.register_plugin(rec, "test-recorder")
    try:
        yield rec
    finally:
        plugins.unregister_plugin("test-recorder")


def write_png_digits(root, per_class: int = 3, classes=None, size: int = 28):
    """Write 28x28 grayscale PNG digits from mnist5k as DIR/<class>/*.png; returns the folder."""
    import cv2

    from vistrain.config import DataConfig
    from vistrain.data.embedded import load_mnist5k

    src = load_mnist5k(None, DataConfig())
    classes = classes or [str(i) for i in range(10)]
    arr = src.train.as_array()
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        idx = [i for i, y in enumerate(src.train.labels) if str(y) == c][-per_class:]
        for j, i in enumerate(idx):
            img = arr[i][..., 0]
            if size != 28:
                img = cv2.resize(img, (size, size))
            cv2.imwrite(str(root / c / f"{j}.png"), img)
    return root
