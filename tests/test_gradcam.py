"""Grad-CAM: the heat map points at the one region a model's answer depends on; layers; the CLI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vistrain.config import Config
from vistrain.gradcam import default_layer, grad_cam

REGION = (slice(0, 14), slice(0, 14))  # the top-left quadrant of a 28x28 image


class RegionModel(torch.nn.Module):
    """A constructed CNN: channel 0 detects filled 5x5 squares, channel 1 detects 5x5 plus signs.

    Class 0's logit sums the square detector over the whole image; class 1's logit sums the
    plus detector over the top-left quadrant only, so the answer "1" depends on that region alone.
    """

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 5, padding=2)
        plus = torch.full((5, 5), -1.0)
        plus[2, :] = plus[:, 2] = 1.0
        with torch.no_grad():
            self.conv.weight.copy_(torch.stack([torch.ones(5, 5), plus])[:, None])
            self.conv.bias.copy_(torch.tensor([-15.0, -4.0]))  # squares score 10, pluses 5, noise and each other < 0
        self.act = torch.nn.ReLU()
        mask = torch.zeros(1, 28, 28)
        mask[0][REGION] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, x):
        a = self.act(self.conv(x))
        return torch.stack([a[:, 0].sum((1, 2)), (a[:, 1] * self.mask).sum((1, 2))], dim=1)


def _image(rng: np.random.Generator, plus_at: tuple[int, int], square_at: tuple[int, int]) -> np.ndarray:
    """Noise, a plus sign (centre *plus_at*) and a filled square (centre *square_at*)."""
    img = rng.uniform(0, 0.2, size=(28, 28)).astype(np.float32)
    r, c = plus_at
    img[r, c - 2:c + 3] = img[r - 2:r + 3, c] = 1.0
    r, c = square_at
    img[r - 2:r + 3, c - 2:c + 3] = 1.0
    return img


def test_heat_map_peaks_in_the_region_the_answer_depends_on():
    rng = np.random.default_rng(0)
    model = RegionModel().eval()
    pos = [(int(rng.integers(3, 11)), int(rng.integers(3, 11))) for _ in range(8)]  # plus: in the region
    far = [(int(rng.integers(17, 25)), int(rng.integers(3, 25))) for _ in range(8)]  # square: in the bottom half
    x = torch.from_numpy(np.stack([_image(rng, p, q) for p, q in zip(pos, far)])[:, None])
    marked = grad_cam(model, x, target=1)
    assert marked.layer == "act"  # the last Conv2d with the ReLU after it
    assert marked.heatmaps.shape == (8, 28, 28) and abs(marked.heatmaps.max() - 1.0) < 1e-6
    for h, (r, c) in zip(marked.heatmaps, pos):
        pr, pc = np.unravel_index(h.argmax(), h.shape)
        assert pr < 14 and pc < 14 and abs(pr - r) <= 1 and abs(pc - c) <= 1  # on the plus sign
        assert h[REGION].sum() > 0.9 * h.sum()
    # class 0's evidence is the square outside the region: its maps point there instead
    plain = grad_cam(model, x, target=0)
    for h, (r, c) in zip(plain.heatmaps, far):
        pr, pc = np.unravel_index(h.argmax(), h.shape)
        assert abs(pr - r) <= 2 and abs(pc - c) <= 2
    assert grad_cam(model, x).classes == [0] * 8  # a square outscores a plus: the predicted class is 0


@pytest.mark.parametrize("name, expected", [("lenet5", "features.4"), ("vgg11", None), ("timm:resnet10t", "layer3.0.act2")])
def test_default_layer_for_builtin_and_timm_cnns(name, expected):
    from vistrain.models.factory import create_model

    cfg = Config.model_validate({"model": {"name": name}})
    model, _, input_spec = create_model(cfg.model, 3, (32, 32), 3)
    x = torch.randn(2, input_spec.channels, input_spec.size, input_spec.size)
    layer = default_layer(model, x)
    if expected:
        assert layer == expected
    modules = dict(model.named_modules())
    assert not isinstance(modules[layer], (torch.nn.Linear, torch.nn.Flatten))
    result = grad_cam(model, x)
    assert result.heatmaps.shape == (2, input_spec.size, input_spec.size) and np.isfinite(result.heatmaps).all()


def test_layer_errors():
    from vistrain.errors import ConfigError, UnknownNameError

    model = RegionModel()
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(UnknownNameError, match="did you mean 'conv'"):
        grad_cam(model, x, layer="convv")
    with pytest.raises(ConfigError, match="no Conv2d"):
        grad_cam(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 2)), x)
    with pytest.raises(ConfigError, match="out of range"):
        grad_cam(model, x, target=5)


def test_viz_cam_command(cli, tmp_path):
    from vistrain.checkpoint import make_checkpoint
    from vistrain.durable import atomic_torch_save
    from vistrain.models.factory import create_model

    model, spec, input_spec = create_model(Config().model, 3, (28, 28), 1)
    ckpt = make_checkpoint(model=model, model_spec=spec, input_spec=input_spec.to_dict(), classes=["a", "b", "c"],
                           epoch=1, global_step=1)
    atomic_torch_save(ckpt, tmp_path / "m.pt")
    rng = np.random.default_rng(0)
    files = []
    for i in range(2):
        (tmp_path / f"d{i}").mkdir()
        files.append(tmp_path / f"d{i}" / "img.png")  # the same file name in two folders
        cv2.imwrite(str(files[-1]), (_image(rng, (6, 6), (20, 20)) * 255).astype(np.uint8))
    code, out, err = cli("viz", "cam", tmp_path / "m.pt", *files, "--out", tmp_path / "cam", "--class", "b")
    assert code == 0, err
    assert "layer features.4" in out and "class b" in out
    grid = cv2.imread(str(tmp_path / "cam" / "gradcam.png"))
    assert grid is not None and grid.shape[1] > 300
    assert len(list((tmp_path / "cam").glob("*-cam.png"))) == 2  # one overlay per image, none overwritten
    code, out, err = cli("viz", "cam", tmp_path / "m.pt", *files, "--layer", "features.1", "--out", tmp_path / "c2")
    assert code == 0 and "layer features.1" in out
    code, out, err = cli("viz", "cam", tmp_path / "m.pt", *files, "--class", "zebra")
    assert code == 2 and "no class 'zebra'" in err
    code, out, err = cli("viz", "cam", tmp_path / "m.pt", *files, "--layer", "classifier")
    assert code == 2 and "not an (N, C, H, W) feature map" in err
    code, out, err = cli("viz", "cam", tmp_path / "m.pt", tmp_path / "missing.png")
    assert code == 2 and "could not read" in err
