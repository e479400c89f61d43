"""vistrain lr-find: the sweep, its suggestions on a problem with a known good range, the command."""

from __future__ import annotations

import math

import pytest
import torch

from vistrain.data.pipeline import TensorBatchLoader
from vistrain.lr_find import lr_at, suggest, sweep


def test_the_schedule_is_geometric():
    assert lr_at(0, 5, 1e-4, 1.0) == pytest.approx(1e-4)
    assert lr_at(4, 5, 1e-4, 1.0) == pytest.approx(1.0)
    assert lr_at(2, 5, 1e-4, 1.0) == pytest.approx(1e-2)


def test_suggestions_fall_inside_the_known_good_range_of_a_quadratic_problem():
    """Least squares with standardised, nearly isotropic inputs: plain SGD on the mean squared error has Hessian
    2/n XᵀX ≈ 2·I, so it diverges above lr ≈ 1 and barely moves in 100 steps below 1e-3. Every suggestion must
    land in [1e-3, 1]; the sweep must stop on divergence."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) * 3 + 0.1 * torch.randn(4096, 1, generator=g)
    model = torch.nn.Linear(8, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    result = sweep(model, TensorBatchLoader(x, y, 256, shuffle=True), torch.optim.SGD(model.parameters(), lr=1.0),
                   torch.nn.functional.mse_loss, device=torch.device("cpu"), start_lr=1e-6, end_lr=100.0, steps=120)
    assert result.diverged and result.lrs[-1] < 100.0
    for name, lr in result.suggestions.items():
        assert 1e-3 <= lr <= 1.0, (name, lr)


def test_valley_is_two_thirds_down_the_longest_fall():
    lrs = [10 ** (-6 + i * 0.1) for i in range(40)]
    losses = [2.0] * 10 + [2.0 - 0.1 * i for i in range(1, 16)] + [0.5 + 0.3 * i for i in range(15)]
    s = suggest(lrs, losses)
    # the fall runs from index 9 (2.0, the last of the plateau) to index 24 (0.5): 2/3 of the way is index 19
    assert s["valley"] == pytest.approx(lrs[19])
    assert s["minimum"] == pytest.approx(lrs[24] / 10)
    assert lrs[9] <= s["steepest"] <= lrs[24]


def test_the_command_prints_plots_and_applies(cli, tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text("data:\n  name: digits\ntrain:\n  epochs: 3\n")
    code, out, err = cli("lr-find", "-c", config, "--steps", "40", "--start-lr", "1e-5", "--end-lr", "1",
                         "--out", tmp_path / "lr.png", "--apply", config)
    assert code == 0, err
    assert "valley" in out and "steepest" in out and "minimum" in out and "*" in out  # the terminal plot
    png = (tmp_path / "lr.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import yaml

    doc = yaml.safe_load(config.read_text())
    assert doc["data"]["name"] == "digits" and doc["train"]["epochs"] == 3  # the rest kept
    valley = float(out.split("valley")[1].split()[0])
    assert math.isclose(doc["optim"]["lr"], valley, rel_tol=0.01)
    for args, message in [(["--suggestion", "middle"], "unknown suggestion 'middle'"),
                          (["--start-lr", "1", "--end-lr", "0.1"], "must be above 0 and below --end-lr")]:
        code, out, err = cli("lr-find", "--data", "digits", *args, "--out", tmp_path / "x.png")
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_the_sweep_under_ddp_agrees_across_ranks(cli, tmp_path):
    """--nproc 2: each rank sweeps its shard with the model in DDP and the losses averaged, so both stop at the same
    step; rank 0 writes the plot and the config."""
    config = tmp_path / "c.yaml"
    code, out, err = cli("lr-find", "--data", "digits", "--nproc", "2", "--steps", "20", "--start-lr", "1e-5",
                         "--end-lr", "1", "--out", tmp_path / "lr.png", "--apply", config)
    assert code == 0, err
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    import yaml

    assert 1e-5 <= yaml.safe_load(config.read_text())["optim"]["lr"] <= 1
