"""``vistrain export``: every format reloads and matches the checkpoint's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vistrain.config import Config
from vistrain.checkpoint import make_checkpoint
from vistrain.durable import atomic_torch_save
from vistrain.models.factory import load_model

@pytest.fixture
def checkpoint(tmp_path):
    """A LeNet-5 checkpoint for the digits dataset (random weights: the round trip is what is tested)."""
    from vistrain.models.factory import create_model

    cfg = Config.model_validate({"data": {"name": "digits"}})
    torch.manual_seed(0)
    model, spec, input_spec = create_model(cfg.model, 10, (28, 28), 1)
    ckpt = make_checkpoint(model=model, model_spec=spec, input_spec=input_spec.to_dict(),
                           classes=[str(i) for i in range(10)], epoch=1, global_step=1,
                           config=cfg.model_dump(mode="json"))
    path = tmp_path / "best.pt"
    atomic_torch_save(ckpt, path)
    return path


def _reference(path, x):
    model, _, _ = load_model(path)
    with torch.no_grad():
        return model(x)


def test_safetensors_round_trip(cli, checkpoint):
    from vistrain.export import load_safetensors

    code, out, err = cli("export", checkpoint, "--format", "safetensors")
    assert code == 0, err
    assert "val images of digits" in out and "max |difference| 0" in out and "tolerance" in out
    model, meta = load_safetensors(checkpoint.with_suffix(".safetensors"))
    assert meta["classes"] == [str(i) for i in range(10)] and meta["input"]["size"] == 28
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), _reference(checkpoint, x))


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_torchscript_round_trip(cli, checkpoint, tmp_path):
    code, out, err = cli("export", checkpoint, "--format", "torchscript", "--out", tmp_path / "m.ts")
    assert code == 0, err
    loaded = torch.jit.load(str(tmp_path / "m.ts"))
    x = torch.randn(3, 1, 28, 28)  # another batch size than the traced one
    with torch.no_grad():
        assert torch.allclose(loaded(x), _reference(checkpoint, x), atol=1e-5)


def test_onnx_round_trip(cli, checkpoint):
    import onnxruntime as ort

    code, out, err = cli("export", checkpoint, "--format", "onnx")
    assert code == 0, err
    path = checkpoint.with_suffix(".onnx")
    assert not path.with_name(path.name + ".data").exists()  # one self-contained file
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, 28, 28)
    got = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, _reference(checkpoint, x).numpy(), atol=1e-4, rtol=1e-4)


def test_onnx_without_the_extra_is_one_line(cli, checkpoint, monkeypatch):
    import vistrain.export

    monkeypatch.setattr(vistrain.export, "ONNX_MODULES", ("onnx", "vistrain_no_such_module"))
    code, out, err = cli("export", checkpoint, "--format", "onnx")
    assert code == 2 and err.count("\n") == 1
    assert "vistrain_no_such_module" in err and "pip install 'vistrain[onnx]'" in err
    assert not checkpoint.with_suffix(".onnx").exists()


def test_a_mismatch_is_an_error(cli, checkpoint, monkeypatch):
    """The check can fail: a reloaded model that answers differently is reported, not waved through."""
    import vistrain.export

    real = vistrain.export.load_safetensors

    def tampered(path):
        model, meta = real(path)
        with torch.no_grad():
            model.classifier.bias.add_(0.01)
        return model, meta

    monkeypatch.setattr(vistrain.export, "load_safetensors", tampered)
    code, out, err = cli("export", checkpoint, "--format", "safetensors")
    assert code == 2 and "differs from the checkpoint's outputs by up to 0.01" in err


def test_bad_format_and_missing_checkpoint(cli, checkpoint, tmp_path):
    code, out, err = cli("export", checkpoint, "--format", "tflite")
    assert code == 2 and "unknown export format 'tflite'" in err
    code, out, err = cli("export", tmp_path / "nope.pt")
    assert code == 2 and "not found" in err
