"""Mixed precision, channels-last and torch.compile: the options a user turns on, run on the CPU."""

from __future__ import annotations

import pytest
import torch

from vistrain.config import resolve_config
from vistrain.engine.device import amp_dtype, grad_scaler, prepare_model
from vistrain.errors import ConfigError

CPU = torch.device("cpu")


@pytest.mark.parametrize("setting, dtype", [("auto", None), ("off", None), ("on", torch.bfloat16),
                                            ("bf16", torch.bfloat16), ("fp16", torch.float16),
                                            (True, torch.bfloat16), (False, None), ("true", torch.bfloat16),
                                            ("false", None)])
def test_train_amp_modes_on_the_cpu(setting, dtype):
    cfg = resolve_config(None, {"train.amp": setting})
    assert amp_dtype(CPU, cfg.train.amp) == dtype
    scaler = grad_scaler(CPU, amp_dtype(CPU, cfg.train.amp))
    assert (scaler is not None) == (dtype == torch.float16)


def test_an_unknown_amp_mode_is_one_line():
    with pytest.raises(ConfigError, match=r"train.amp.*'auto', 'off', 'on', 'bf16' or 'fp16'"):
        resolve_config(None, {"train.amp": "fp8"})


def small_cnn():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))


def test_channels_last_gives_the_eager_outputs_and_gradients():
    torch.manual_seed(0)
    eager = small_cnn()
    other = small_cnn()
    other.load_state_dict(eager.state_dict())
    prepared = prepare_model(other, channels_last=True)
    assert prepared is other and other[0].weight.is_contiguous(memory_format=torch.channels_last)
    # the saved weights are the same numbers whatever their layout
    assert all(torch.equal(a, b) for a, b in zip(eager.state_dict().values(), other.state_dict().values()))
    x = torch.randn(6, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    out_e = eager(x)
    out_c = prepared(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out_e, out_c, atol=1e-5)
    torch.nn.functional.cross_entropy(out_e, y).backward()
    torch.nn.functional.cross_entropy(out_c, y).backward()
    for a, b in zip(eager.parameters(), other.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5)


def test_a_compiled_model_gives_the_eager_outputs():
    """torch.compile (inductor, C++ on the CPU): one forward in eval mode, about 20 s to compile."""
    torch.manual_seed(0)
    eager = small_cnn().eval()
    other = small_cnn().eval()
    other.load_state_dict(eager.state_dict())
    compiled = prepare_model(other, channels_last=True, compile=True)
    assert compiled is not other  # the compiled wrapper; ``other`` stays the module checkpoints save
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(eager(x), compiled(x.contiguous(memory_format=torch.channels_last)), atol=1e-5)


def test_a_channels_last_run_trains_like_the_eager_one(cli, tmp_path):
    """The same seeded run, once in each layout: the same val accuracy to within float noise."""
    import yaml

    common = ["run", "--headless", "--data", "digits", "--epochs", "2", "--deterministic", "--set", "train.threads=1",
              "--out", tmp_path, "--name"]
    assert cli(*common, "eager")[0] == 0
    code, out, err = cli(*common, "cl", "--set", "train.channels_last=true")
    assert code == 0, err
    ref = torch.load(tmp_path / "eager" / "checkpoints" / "last.pt", weights_only=True)
    got = torch.load(tmp_path / "cl" / "checkpoints" / "last.pt", weights_only=True)
    for key in ref["state_dict"]:
        assert torch.allclose(ref["state_dict"][key].float(), got["state_dict"][key].float(), atol=1e-4), key
    assert yaml.safe_load((tmp_path / "cl" / "config.yaml").read_text())["train"]["channels_last"] is True
