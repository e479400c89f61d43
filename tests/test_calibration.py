"""Calibration: ECE, reliability diagrams, temperature scaling fitted on val alone, and where T is used."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vistrain.calibration import expected_calibration_error, fit_temperature, reliability


def test_ece_equals_a_hand_computation():
    # top confidences 0.95 (right), 0.95 (wrong), 0.6 (right), 0.4 (class 2, wrong): three bins
    probs = np.array([[0.95, 0.05, 0.0], [0.95, 0.05, 0.0], [0.6, 0.4, 0.0], [0.3, 0.3, 0.4]])
    labels = np.array([0, 1, 0, 0])
    expected = 2 / 4 * abs(0.5 - 0.95) + 1 / 4 * abs(1 - 0.6) + 1 / 4 * abs(0 - 0.4)
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)
    table = reliability(probs, labels)
    assert table.counts.sum() == 4 and len(table.counts) == 15
    assert expected_calibration_error(np.eye(3), np.arange(3)) == pytest.approx(0.0)  # sure and right


def test_the_fitted_temperature_undoes_an_overconfident_scale():
    """Labels drawn from softmax(z); a model that reports 3·z is overconfident by T = 3."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20000, 5, generator=g) * 2
    labels = torch.multinomial(torch.softmax(z, 1), 1, generator=g).squeeze(1)
    t = fit_temperature(3 * z, labels)
    assert t == pytest.approx(3.0, rel=0.05)
    before = expected_calibration_error(torch.softmax(3 * z, 1), labels)
    after = expected_calibration_error(torch.softmax(3 * z / t, 1), labels)
    assert after < before / 3


@pytest.fixture
def permuted_test_labels():
    """``permtest:SEED``: the 8x8 digits with an explicit test split whose labels are permuted by SEED; train and
    val (carved by the run from the rest) are the same for every seed."""
    from vistrain import plugins
    from vistrain.data.source import DataSource
    from vistrain.hookspecs import hookimpl

    def load(arg, cfg):
        from vistrain.data.prepare import load_source

        base = load_source("digits", cfg)
        n = len(base.train)
        test_idx = np.arange(0, n, 4)
        keep = np.setdiff1d(np.arange(n), test_idx)
        test = base.train.subset(test_idx)
        labels = np.array(test.labels)
        if int(arg):
            labels = np.random.default_rng(int(arg)).permutation(labels)
        test.labels = labels
        return DataSource("permtest", base.classes, base.train.subset(keep), test=test, channels=base.channels,
                          image_size=base.image_size)

    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register("permtest", load, takes_arg=True, description="digits, test labels permuted")

    plugins.register_plugin(Plugin(), "test-permtest")
    yield
    plugins.unregister_plugin("test-permtest")


def test_temperature_scaling_never_reads_the_test_split(cli, tmp_path, permuted_test_labels):
    """The same checkpoint on the same data, its test labels permuted or not: the fitted temperature is the same
    (the test scores printed after it differ: the test split is scored for the report only)."""
    from vistrain.checkpoint import load_checkpoint, temperature

    code, out, err = cli("run", "--headless", "--data", "permtest:0", "--epochs", "2", "--out", tmp_path, "--name", "r")
    assert code == 0, err
    best = tmp_path / "r" / "checkpoints" / "best.pt"
    fitted, lines = [], []
    for seed in (0, 1):
        ck = load_checkpoint(best)
        ck["config"]["data"]["name"] = f"permtest:{seed}"  # the same run's checkpoint, another test labelling
        path = tmp_path / f"ck{seed}.pt"
        torch.save(ck, path)
        code, out, err = cli("calibrate", path)
        assert code == 0, err
        fitted.append(temperature(load_checkpoint(path)))
        lines.append([line for line in out.splitlines() if line.strip().startswith("test")][0])
    assert fitted[0] == fitted[1] and fitted[0] != 1.0
    assert lines[0] != lines[1]  # the permuted labels did reach the test report


def test_eval_predict_and_teachers_use_the_checkpoints_temperature(cli, tmp_path):
    from vistrain.checkpoint import load_checkpoint
    from vistrain.inference import Predictions, split_probabilities
    from vistrain.models.factory import load_model

    assert cli("run", "--headless", "--data", "digits", "--epochs", "1", "--out", tmp_path, "--name", "r")[0] == 0
    best = tmp_path / "r" / "checkpoints" / "best.pt"
    plain = split_probabilities(best, "val")[0]
    code, out, err = cli("calibrate", best, "--out", tmp_path / "cal.pt")
    assert code == 0, err
    t = load_checkpoint(tmp_path / "cal.pt")["temperature"]
    assert load_model(tmp_path / "cal.pt")[0].vistrain_temperature == t  # teachers label with it (labelling.py)
    scaled = split_probabilities(tmp_path / "cal.pt", "val")[0]
    expected = torch.softmax(torch.log(torch.from_numpy(plain).double()) / t, 1).numpy()
    assert np.allclose(scaled, expected, atol=1e-4)
    code, out, err = cli("eval", tmp_path / "cal.pt", "--data", "digits", "--reliability", tmp_path / "rel.png")
    assert code == 0 and f"at T={t:.3g}" in out and "ECE" in out, err
    png = (tmp_path / "rel.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    import cv2

    img = cv2.imwrite(str(tmp_path / "img.png"), np.full((8, 8), 128, np.uint8))
    assert img
    (res_plain,) = list(Predictions(best, [str(tmp_path / "img.png")], top_k=1))
    (res_cal,) = list(Predictions(tmp_path / "cal.pt", [str(tmp_path / "img.png")], top_k=1))
    assert res_plain[1][0][0] == res_cal[1][0][0]  # the same class
    assert res_plain[1][0][1] != pytest.approx(res_cal[1][0][1])  # another confidence
