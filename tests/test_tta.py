"""Test-time augmentation: vistrain eval --tta and train.test_tta."""

from __future__ import annotations

import pytest
import torch

from vistrain.data.pipeline import InputSpec
from vistrain.errors import ConfigError
from vistrain.inference import TestTimeAugmentation, tta_input


class Probe(torch.nn.Module):
    """A fixed linear classifier that records the shapes it sees."""

    def __init__(self, size: int):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(size * size, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        return self.lin(x.flatten(1))


def test_flip_averages_the_image_and_its_mirror():
    model = Probe(6)
    x = torch.randn(4, 1, 6, 6)
    out = TestTimeAugmentation(model, "flip", 6)(x)
    expected = (torch.softmax(model(x), 1) + torch.softmax(model(x.flip(-1)), 1)) / 2
    assert torch.allclose(out.exp(), expected, atol=1e-6)
    assert torch.allclose(out.exp().sum(1), torch.ones(4))  # a distribution: cross-entropy on it is its NLL


def test_crops_are_the_corners_and_the_centre_and_crops_flip_adds_their_mirrors():
    spec = InputSpec(1, 8, (0.0,), (1.0,), resize="crop", crop_pct=0.8)
    assert tta_input(spec, "crops").size == 10 and tta_input(spec, "crops").crop_pct == 1.0
    assert tta_input(spec, "flip") == spec
    model = Probe(8)
    tta = TestTimeAugmentation(model, "crops", 8)
    x = torch.arange(100.0).view(1, 1, 10, 10)
    views = tta.views(x)
    assert [tuple(v.shape[-2:]) for v in views] == [(8, 8)] * 5
    assert [float(v[0, 0, 0, 0]) for v in views] == [0.0, 2.0, 20.0, 22.0, 11.0]  # top-left of each crop
    assert len(TestTimeAugmentation(model, "crops-flip", 8).views(x)) == 10
    with pytest.raises(ConfigError, match="unknown test-time augmentation 'five'"):
        TestTimeAugmentation(model, "five", 8)


def test_eval_and_a_run_use_tta(cli, tmp_path):
    code, out, err = cli("run", "--headless", "--data", "digits", "--epochs", "1", "--set", "train.test_tta=flip",
                         "--out", tmp_path, "--name", "r")
    assert code == 0, err
    assert "test top-1" in out and "(TTA flip)" in out
    best = tmp_path / "r" / "checkpoints" / "best.pt"
    results = {}
    for mode in ("none", "flip", "crops"):
        code, out, err = cli("eval", best, "--data", "digits", "--tta", mode)
        assert code == 0, err
        assert ("TTA" in out) == (mode != "none")
        results[mode] = out.split("top-1 ")[1].split("%")[0]
    assert len(set(results.values())) > 1  # the views change the predictions (digits are not mirror images)
    code, out, err = cli("eval", best, "--data", "digits", "--tta", "mirror")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unknown test-time augmentation 'mirror'" in err


def test_the_console_names_the_runs_tta_from_its_view_count():
    from vistrain.inference import TTA_VIEWS
    from vistrain.listeners.console import result_summary

    for mode, views in TTA_VIEWS.items():
        line = result_summary({"test_top1": 0.5, "test_tta_views": views})
        assert line.endswith(f"(TTA {mode})" if views else "50.00%"), line
