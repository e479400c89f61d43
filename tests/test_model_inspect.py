"""Model inspection: receptive field and jump, FLOPs, and the ``models info`` / ``models list`` commands."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from vistrain.models.inspect import GLOBAL, receptive_field, summarize


@pytest.mark.parametrize("k,p", [(5, 2), (3, 2), (5, 3)])
def test_conv_then_pool_sees_p_plus_k_minus_1(k, p):
    model = nn.Sequential(nn.Conv2d(1, 4, k), nn.ReLU(), nn.MaxPool2d(p, p))
    assert receptive_field(model, (1, 32, 32), "2") == (p + k - 1, p)


def test_jump_multiplies_strides_and_dilation_widens():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.Conv2d(4, 4, 3, stride=2), nn.Conv2d(4, 4, 3, dilation=2))
    rows = {r.name: (r.rf, r.jump) for r in summarize(model, (1, 64, 64)).layers}
    assert rows == {"0": (3, 2), "1": (7, 4), "2": (7 + 2 * 2 * 4, 4)}


def test_vgg16_receptive_fields():
    from vistrain.models.vgg import create_vgg16

    with torch.device("meta"):
        model = create_vgg16(1000, 3, 224)
    rows = {r.name: r for r in summarize(model, (3, 224, 224)).layers}
    assert (rows["features.28"].rf, rows["features.28"].jump) == (196, 16)  # conv5_3
    assert (rows["features.30"].rf, rows["features.30"].jump) == (212, 32)  # pool5: the conv stack's output
    assert rows["classifier"].rf == GLOBAL


def test_lenet5_table_params_and_flops():
    from vistrain.models.lenet import create_lenet5

    summary = summarize(create_lenet5(10, 1, 28), (1, 28, 28))
    rows = {r.name: r for r in summary.layers}
    assert summary.total_params == 61_706
    assert sum(r.params for r in summary.layers) == 61_706
    assert rows["features.0"].out_shape == (6, 28, 28)
    assert rows["features.0"].flops == 2 * 28 * 28 * 6 * 25  # one multiply-add = 2 FLOPs
    assert rows["classifier"].flops == 2 * 84 * 10
    assert (rows["features.2"].rf, rows["features.5"].rf) == (6, 16)
    assert summary.total_flops == sum(r.flops for r in summary.layers)


def test_residual_branches_do_not_double_the_jump():
    import timm

    with torch.device("meta"):
        model = timm.create_model("resnet18")
    rows = {r.name: r for r in summarize(model, (3, 224, 224)).layers}
    assert rows["layer4.0.downsample.0"].jump == 32
    assert rows["layer4.1.act2"].rf == 435  # the published ResNet-18 value


def test_models_info_cli(cli):
    code, out, err = cli("models", "info", "vgg16", "--input", "3x224x224", "--classes", "1000")
    assert code == 0, err
    assert "138,357,544 params" in out and "212" in out and "features.30" in out
    code, out, _ = cli("models", "info", "alexnet", "--classes", "1000", "--set", "lrn=false")
    assert code == 0 and "LocalResponseNorm" not in out and "3x227x227" in out
    code, out, _ = cli("models", "info", "alexnet", "--classes", "1000")
    assert "LocalResponseNorm" in out and "60,965,224 params" in out


@pytest.mark.parametrize("args,needle", [
    (["models", "info", "lenet5", "--input", "28x28"], "CxHxW"),
    (["models", "info", "knn"], "no layers"),
    (["models", "info", "lenet6"], "lenet5"),
])
def test_models_info_errors(cli, args, needle):
    code, _out, err = cli(*args)
    assert code == 2 and needle in err


def test_models_list_wildcards_and_timm(cli):
    code, out, _ = cli("models", "list", "vgg1?_bn", "--no-timm")
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert code == 0 and names == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    code, out, _ = cli("models", "list", "timm:resnet1*")
    assert code == 0 and "timm:resnet18 " in out and " timm " in out and "vgg" not in out


def test_builtin_model_list_does_not_import_torch():
    code = ("import sys; from vistrain.plugins import registry; import vistrain.cli.models;"
            "names = registry('model').names(); print(len(names), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) >= 15 and out[1] == "False"
