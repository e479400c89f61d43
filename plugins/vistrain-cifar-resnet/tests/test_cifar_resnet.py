"""vistrain-cifar-resnet: parameter counts, shapes, Lion's update rule and the step schedule."""

from __future__ import annotations

import pytest
import torch

from vistrain import plugins
from vistrain.config import OptimConfig, SchedConfig

import vistrain_cifar_resnet.plugin as plugin_module

# He et al. 2016 table 6 gives 0.27/0.46/0.66/0.85/1.7 M; these are the exact counts for 10 classes.
PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setenv("VISTRAIN_PLUGINS", "none")
    plugins.reset()
    plugins.register_plugin(plugin_module, "cifar-resnet-test")
    yield
    plugins.unregister_plugin("cifar-resnet-test")
    plugins.reset()


@pytest.mark.parametrize("depth", sorted(PARAMS))
def test_parameter_counts_match_the_paper(registered, depth):
    model = plugins.registry("model").entry(f"resnet{depth}").load()(num_classes=10, in_chans=3, input_size=32)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[depth]


@pytest.mark.parametrize("in_chans, size", [(3, 32), (1, 28), (3, 17)])
def test_forward_any_size_and_channels(registered, in_chans, size):
    model = plugins.registry("model").entry("resnet20").load()(num_classes=5, in_chans=in_chans, input_size=size)
    model.eval()
    out = model(torch.randn(2, in_chans, size, size))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    assert model.forward_features(torch.randn(1, in_chans, size, size)).shape == (1, 64)
    model.reset_classifier(7)
    assert model(torch.randn(1, in_chans, size, size)).shape == (1, 7)


def test_lion_moves_every_coordinate_by_lr_and_learns(registered):
    make = plugins.registry("optimizer").entry("lion").load()
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = make([w], OptimConfig(lr=0.1, weight_decay=0.0, betas=(0.9, 0.99)))
    w.grad = torch.tensor([0.5, -1e-6, 0.0])
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([0.9, -1.9, 3.0]))  # sign(0) = 0 leaves w alone
    torch.manual_seed(0)
    x, y = torch.randn(256, 4), torch.randint(0, 3, (256,))
    model = torch.nn.Linear(4, 3)
    opt = make(model.parameters(), OptimConfig(lr=0.01, weight_decay=0.01, betas=(0.9, 0.99)))
    first = torch.nn.functional.cross_entropy(model(x), y).item()
    for _ in range(100):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < first - 0.05


def test_resnet_steps_divides_at_half_and_three_quarters(registered):
    make = plugins.registry("scheduler").entry("resnet-steps").load()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make(opt, SchedConfig(gamma=0.1), total_steps=100, steps_per_epoch=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[49] == 1.0 and lrs[50] == pytest.approx(0.1) and lrs[74] == pytest.approx(0.1)
    assert lrs[75] == pytest.approx(0.01) and lrs[99] == pytest.approx(0.01)
