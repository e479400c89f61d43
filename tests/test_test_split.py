"""The held-out test split: disjoint from train and val, fixed by the split seed, reported at the end of a run."""

from __future__ import annotations

import numpy as np
import pytest

from vistrain.config import DataConfig, resolve_config
from vistrain.data.prepare import load_source, prepare_data
from vistrain.errors import ConfigError


def _ids(image_set) -> set[bytes]:
    return {img.tobytes() for img in image_set.as_array()}


def test_test_split_is_disjoint_stratified_and_leaves_val_alone():
    cfg = DataConfig()
    data = prepare_data(load_source("mnist5k", cfg), cfg)
    train, val, test = _ids(data.train), _ids(data.val), _ids(data.test)
    assert len(data.test) == 1000 and np.bincount(data.test.labels).tolist() == [100] * 10
    assert not train & test and not val & test and not train & val
    assert len(data.train) + len(data.val) + len(data.test) == 5000
    # val is the same images with or without a test split, so old runs' val still means the same
    no_test = DataConfig(test_fraction=0.0)
    data0 = prepare_data(load_source("mnist5k", no_test), no_test)
    assert data0.test is None and _ids(data0.val) == val and len(data0.train) == 4500


def test_test_split_depends_on_the_split_seed_only():
    a = prepare_data(load_source("mnist5k", DataConfig()), DataConfig())
    b = prepare_data(load_source("mnist5k", DataConfig()), DataConfig())
    c = prepare_data(load_source("mnist5k", DataConfig(split_seed=1)), DataConfig(split_seed=1))
    assert _ids(a.test) == _ids(b.test) and _ids(a.test) != _ids(c.test)


def test_fractions_must_leave_training_data():
    with pytest.raises(ConfigError, match="test_fraction"):
        resolve_config(None, None, ["data.val_fraction=0.5", "data.test_fraction=0.5"])


def test_run_reports_best_checkpoint_on_the_test_split(tmp_path, recorder, capsys):
    from vistrain.inference import evaluate_checkpoint
    from vistrain.listeners.console import ConsoleReporter
    from vistrain.runner import execute

    cfg = resolve_config(None, {"output.dir": str(tmp_path), "output.name": "t"},
                         ["data.name=digits", "train.epochs=2", "augment.spec=none", "model.name=mlp"])
    result = execute(cfg, listeners=[ConsoleReporter(plain=True)])
    tests = [e for e in recorder.of("eval_end") if e.split == "test"]
    assert len(tests) == 1 and abs(tests[0].num_samples - 1797 * 0.2) < 10
    assert result.metrics["test_top1"] == pytest.approx(tests[0].top1)
    assert result.metrics["test_checkpoint"] == "best.pt"
    out = capsys.readouterr().out
    assert f"test split ({tests[0].num_samples} held-out images" in out and "test top-1" in out
    # `vistrain eval` on the training dataset picks the same held-out split by default
    again = evaluate_checkpoint(tmp_path / "t" / "checkpoints" / "best.pt", "digits", device="cpu")
    assert again["split"] == "test" and again["top1"] == pytest.approx(tests[0].top1)


def test_a_test_fraction_that_takes_no_image_says_so_instead_of_reporting_nothing(tmp_path, recorder, capsys):
    """Two images per class: val takes one, the other stays in training, so the test split would be empty."""
    import cv2

    from vistrain.listeners.console import ConsoleReporter
    from vistrain.runner import execute

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(tmp_path / "photos" / cls / f"{i}.png"), rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    cfg = DataConfig(name=f"imagefolder:{tmp_path / 'photos'}", test_fraction=0.1)
    data = prepare_data(load_source(cfg.name, cfg), cfg)
    assert data.test is None and len(data.train) == 2 and len(data.val) == 2
    assert data.notes == ["no test split: data.test_fraction 0.1 takes no image: every class has at most one "
                          "training image left, and it stays in training; the run is judged on val only"]
    cfg = resolve_config(None, {"output.dir": str(tmp_path / "runs"), "output.name": "t"},
                         [f"data.name={cfg.name}", "data.test_fraction=0.1", "train.epochs=1", "model.name=mlp"])
    result = execute(cfg, listeners=[ConsoleReporter(plain=True)])
    assert not [e for e in recorder.of("eval_end") if e.split == "test"]
    assert "test_top1" not in result.metrics
    out = capsys.readouterr().out
    assert "no test split: data.test_fraction 0.1" in out and "test split (" not in out
