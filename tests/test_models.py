"""The model zoo: every registered built-in builds, runs forward and backward, and swaps its head."""

from __future__ import annotations

import pytest
import torch

from vistrain.plugins import registry


def _builtins() -> list[str]:
    return [e.name for e in registry("model") if e.plugin.startswith("vistrain.") and not e.meta.get("takes_arg")]


BUILTIN_MODELS = _builtins()


# Smallest inputs the conv stacks accept, so the parametrized test stays fast on a CPU.
TINY_SIZE = {"alexnet": 16, "vgg": 16}


def _build(name: str, num_classes: int = 5, **kwargs):
    from vistrain.models.factory import build_from_spec

    meta = registry("model").entry(name).meta
    chans = int(meta.get("in_chans") or 1)
    size = TINY_SIZE.get(str(meta.get("family")), int(meta.get("min_size") or 8))
    spec = {"name": name, "num_classes": num_classes, "in_chans": chans, "input_size": size, "kwargs": kwargs}
    return build_from_spec(spec), (chans, size, size)


def test_the_zoo_is_registered():
    expected = {"lenet5", "lenet5_classic", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn",
                "perceptron", "mlp", "knn", "timm"}
    assert expected <= set(registry("model").names())


@pytest.mark.parametrize("name", BUILTIN_MODELS)
def test_forward_backward_and_head_replacement(name):
    torch.manual_seed(0)
    model, shape = _build(name, num_classes=5)
    x = torch.randn(2, *shape)
    if getattr(model, "nonparametric", False):
        model.fit([(x, torch.tensor([0, 4]))])
    out = model(x)
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    params = [p for p in model.parameters() if p.requires_grad]
    if params:
        out.logsumexp(1).sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    model.reset_classifier(7)
    if getattr(model, "nonparametric", False):
        model.fit([(x, torch.tensor([6, 1]))])
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        feats = model.forward_features(x)
    assert feats.shape[0] == 2 and feats.ndim == 2


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,size", [("lenet5", 28), ("lenet5", 32), ("lenet5_classic", 28)])
def test_lenet5_has_61706_parameters(name, size):
    from vistrain.models.factory import build_from_spec

    model = build_from_spec({"name": name, "num_classes": 10, "in_chans": 1, "input_size": size})
    assert _count(model) == 61_706


def test_lenet5_width_scales_every_layer_and_survives_a_checkpoint_round_trip():
    from vistrain.models.factory import build_from_spec

    spec = {"name": "lenet5", "num_classes": 10, "in_chans": 1, "input_size": 28, "kwargs": {"width": 2}}
    wide = build_from_spec(spec)
    # conv 1->12 (5x5), conv 12->32, FC 800->240, 240->168, 168->10
    assert _count(wide) == (25 * 12 + 12) + (25 * 12 * 32 + 32) + (800 * 240 + 240) + (240 * 168 + 168) + (168 * 10 + 10)
    assert wide(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    again = build_from_spec(spec)
    again.load_state_dict(wide.state_dict())  # a wide checkpoint loads into the same spec
    from vistrain.errors import ConfigError

    with pytest.raises(ConfigError, match="width must be a positive number") as err:
        build_from_spec({**spec, "kwargs": {"width": 0}})
    assert "model.kwargs" in err.value.hint


def test_lenet5_with_batchnorm_normalises_every_hidden_layer():
    from vistrain.errors import ConfigError
    from vistrain.models.factory import build_from_spec

    spec = {"name": "lenet5", "num_classes": 10, "in_chans": 1, "input_size": 28, "kwargs": {"norm": "batch"}}
    model = build_from_spec(spec)
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    assert [m.num_features for m in norms] == [6, 16, 120, 84]
    # the layers before a BatchNorm lose their biases; each BatchNorm has a scale and a shift per feature
    assert _count(model) == 61_706 - (6 + 16 + 120 + 84) + 2 * (6 + 16 + 120 + 84) == 61_932
    model.train()
    x = torch.randn(64, 1, 28, 28) * 3 + 5
    first = model.features[:2](x)  # conv then BatchNorm: zero mean, unit variance per map in training
    assert first.mean(dim=(0, 2, 3)).abs().max() < 1e-4 and (first.var(dim=(0, 2, 3)) - 1).abs().max() < 0.01
    # without norm the weight names are the plain LeNet-5's, so its checkpoints keep loading
    assert list(build_from_spec({**spec, "kwargs": {}}).state_dict()) == [
        "features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias", "pre_logits.1.weight",
        "pre_logits.1.bias", "pre_logits.3.weight", "pre_logits.3.bias", "classifier.weight", "classifier.bias"]
    with pytest.raises(ConfigError, match="norm must be 'batch' or none"):
        build_from_spec({**spec, "kwargs": {"norm": "layer"}})


def test_vgg16_at_224_with_1000_classes_has_138357544_parameters():
    from vistrain.models.vgg import create_vgg16

    with torch.device("meta"):  # shapes only: no 550 MB allocation
        assert _count(create_vgg16(1000, 3, 224)) == 138_357_544


def test_alexnet_paper_layout_parameters():
    from vistrain.models.alexnet import create_alexnet

    with torch.device("meta"):
        paper = create_alexnet(1000, 3, 227)  # two-GPU split kept as groups=2
        single = create_alexnet(1000, 3, 227, groups=1)
        no_lrn = create_alexnet(1000, 3, 227, lrn=False)
    assert _count(paper) == 60_965_224
    assert _count(single) == 62_378_344
    assert any(isinstance(m, torch.nn.LocalResponseNorm) for m in paper.modules())
    assert not any(isinstance(m, torch.nn.LocalResponseNorm) for m in no_lrn.modules())
    assert paper.features[0].kernel_size == (11, 11) and paper.features[0].stride == (4, 4)


def test_small_input_variants_are_chosen_for_mnist_sizes():
    from vistrain.config import ModelConfig
    from vistrain.models.factory import create_model

    for name in ("alexnet", "vgg11"):
        model, spec, input_spec = create_model(ModelConfig(name=name), 10, (28, 28), 1)
        assert input_spec.size == 28 and input_spec.channels == 3 and model.small
        assert model(torch.randn(2, 3, 28, 28)).shape == (2, 10)
    model, _spec, input_spec = create_model(ModelConfig(name="alexnet"), 10, (500, 400), 3)
    assert input_spec.size == 227 and not model.small


def test_vgg_batchnorm_and_depths():
    from vistrain.models.vgg import create_vgg11, create_vgg19_bn

    plain, bn = create_vgg11(10, 3, 32), create_vgg19_bn(10, 3, 32)
    convs = lambda m: sum(isinstance(x, torch.nn.Conv2d) for x in m.modules())  # noqa: E731
    assert convs(plain) == 8 and convs(bn) == 16
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in plain.modules())
    assert sum(isinstance(x, torch.nn.BatchNorm2d) for x in bn.modules()) == 16
    assert all(m.kernel_size == (3, 3) for m in bn.modules() if isinstance(m, torch.nn.Conv2d))


def test_perceptron_is_one_layer_and_mlp_takes_hidden_sizes():
    from vistrain.models.mlp import create_mlp, create_perceptron

    p = create_perceptron(10, 1, 28)
    assert _count(p) == 784 * 10 + 10
    m = create_mlp(10, 1, 28, hidden="800,800")
    assert _count(m) == (784 * 800 + 800) + (800 * 800 + 800) + (800 * 10 + 10)
    assert _count(create_mlp(10, 1, 28, hidden=[32])) == 784 * 32 + 32 + 32 * 10 + 10


def test_pretrained_file_for_a_builtin_with_new_head(tmp_path):
    from vistrain.models.factory import build_from_spec
    from vistrain.models.lenet import create_lenet5

    source = create_lenet5(100, 1, 28)
    path = tmp_path / "lenet.pth"
    torch.save(source.state_dict(), path)
    model = build_from_spec({"name": "lenet5", "num_classes": 10, "in_chans": 1, "input_size": 28}, pretrained=str(path))
    assert torch.equal(model.features[0].weight, source.features[0].weight)
    assert model.classifier.out_features == 10


def test_pretrained_from_another_architecture_is_a_clear_error(tmp_path):
    from vistrain.errors import CheckpointError
    from vistrain.models.factory import build_from_spec
    from vistrain.models.mlp import create_perceptron

    path = tmp_path / "p.pth"
    torch.save(create_perceptron(10, 1, 28).state_dict(), path)
    with pytest.raises(CheckpointError, match="do not fit"):
        build_from_spec({"name": "lenet5", "num_classes": 10, "in_chans": 1, "input_size": 28}, pretrained=str(path))
    with pytest.raises(CheckpointError, match="not found"):
        build_from_spec({"name": "lenet5", "num_classes": 10, "in_chans": 1, "input_size": 28},
                        pretrained=str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_resnet18_with_a_local_weights_file(tmp_path, suffix):
    import timm

    from vistrain.models.factory import build_from_spec

    torch.manual_seed(0)
    source = timm.create_model("resnet18", num_classes=1000)
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    else:
        torch.save({"state_dict": source.state_dict()}, path)
    # 10 classes and grayscale: the head is replaced and the RGB stem is summed over its channels.
    model = build_from_spec({"name": "timm:resnet18", "num_classes": 10, "in_chans": 1, "input_size": 32},
                            pretrained=str(path))
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert torch.allclose(model.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    assert model.fc.out_features == 10
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    model.reset_classifier(4)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 4)


def test_timm_hub_offline_says_how_to_supply_a_file(monkeypatch):
    import timm

    from vistrain.errors import CheckpointError
    from vistrain.models.factory import build_from_spec

    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("We couldn't connect to 'https://huggingface.co' to load this file")
        return real(*args, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(CheckpointError, match="could not fetch") as info:
        build_from_spec({"name": "timm:resnet18", "num_classes": 10, "in_chans": 3, "input_size": 32}, pretrained="hub")
    assert "--pretrained PATH" in str(info.value)


def test_unknown_timm_model_suggests(cli):
    code, _out, err = cli("models", "info", "timm:resnet181")
    assert code == 2 and "resnet18" in err


def _fast_run(model: str, out, *extra: str) -> list[str]:
    return ["run", "--model", model, "--data", "mnist5k", "--headless", "--epochs", "1", "--out", str(out),
            "--name", model.replace(":", "-"), "--labels-per-class", "3", "--set", "data.val_fraction=0.02",
            "--scheduler", "cosine", "--lr", "1e-3", "--batch-size", "25", *extra]


@pytest.mark.parametrize("model", ["alexnet", "vgg11"])
def test_run_small_variant_on_mnist5k_for_one_epoch(cli, tmp_path, model):
    code, out, err = cli(*_fast_run(model, tmp_path))
    assert code == 0, err
    assert "epoch 1/1" in out and "top-1" in out
    ckpt = torch.load(tmp_path / model / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["input"]["size"] == 28 and ckpt["input"]["channels"] == 3
    rows = (tmp_path / model / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("supervised,1,")


def test_run_timm_resnet18_from_a_local_file(cli, tmp_path):
    import timm

    path = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18", num_classes=1000).state_dict(), path)
    code, out, err = cli(*_fast_run("timm:resnet18", tmp_path, "--pretrained", str(path),
                                    "--set", "model.input_size=32"))
    assert code == 0, err
    ckpt = torch.load(tmp_path / "timm-resnet18" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["state_dict"]["fc.weight"].shape == (10, 512)
