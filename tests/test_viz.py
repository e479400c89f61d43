"""``vistrain viz weights``: perceptron class templates and first-layer conv filters as a PNG grid."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def _train(cli, out, model: str) -> str:
    code, _out, err = cli("run", "--model", model, "--data", "mnist5k", "--headless", "--epochs", "1",
                          "--out", str(out), "--name", model, "--labels-per-class", "20",
                          "--set", "data.val_fraction=0.02", "--scheduler", "cosine")
    assert code == 0, err
    return str(out / model / "checkpoints" / "best.pt")


def test_perceptron_draws_one_template_per_class(cli, tmp_path):
    ckpt = _train(cli, tmp_path, "perceptron")
    png = tmp_path / "weights.png"
    code, out, err = cli("viz", "weights", ckpt, "--out", str(png))
    assert code == 0, err
    img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    # 10 templates of 28 px, enlarged x2 to 56 px, in a 4x3 grid with 2 px gaps.
    assert img is not None and img.ndim == 2
    assert img.shape == (2 + 3 * (56 + 2), 2 + 4 * (56 + 2))
    weight = torch.load(ckpt, weights_only=True)["state_dict"]["classifier.weight"][3].view(28, 28).numpy()
    expected = ((weight - weight.min()) / (weight.max() - weight.min()) * 255).astype(np.uint8)
    tile = img[2:2 + 56:2, 2 + 3 * 58:2 + 3 * 58 + 56:2]  # class 3: row 0, column 3
    assert np.abs(tile.astype(int) - expected.astype(int)).max() <= 1


def test_cnn_draws_its_first_conv_filters(cli, tmp_path):
    ckpt = _train(cli, tmp_path, "lenet5")
    png = tmp_path / "filters.png"
    code, out, err = cli("viz", "weights", ckpt, "--out", str(png), "--tile", "10")
    assert code == 0, err
    img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    # 6 filters of 5x5, enlarged x2 to 10 px, in a 3x2 grid.
    assert img.shape == (2 + 2 * 12, 2 + 3 * 12)
    assert img[2:12, 2:12].std() > 0  # a trained filter is not flat


def test_rgb_filters_are_written_in_colour():
    from vistrain.models.vgg import create_vgg11
    from vistrain.models.weight_images import weight_image

    img = weight_image(create_vgg11(10, 3, 32), (3, 32, 32), min_tile=3)
    assert img.shape == (2 + 8 * 5, 2 + 8 * 5, 3)  # 64 filters of 3x3 in an 8x8 grid


def test_knn_and_unwritable_paths_are_user_errors(cli, tmp_path):
    from vistrain.checkpoint import make_checkpoint
    from vistrain.durable import atomic_torch_save
    from vistrain.models.knn import KNNClassifier

    spec = {"name": "knn", "num_classes": 2, "in_chans": 1, "input_size": 2, "kwargs": {}}
    model = KNNClassifier(2)
    model.fit([(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]))])
    ckpt = tmp_path / "knn.pt"
    atomic_torch_save(make_checkpoint(model=model, model_spec=spec, classes=["a", "b"], epoch=1, global_step=0,
                                      input_spec={"channels": 1, "size": 2, "mean": [0.5], "std": [0.5]}), ckpt)
    code, _out, err = cli("viz", "weights", str(ckpt), "--out", str(tmp_path / "k.png"))
    assert code == 2 and "k-NN" in err
    code, _out, err = cli("viz", "weights", str(tmp_path / "missing.pt"))
    assert code == 2 and "not found" in err


def test_unknown_image_format_is_a_user_error(cli, tmp_path):
    from vistrain.checkpoint import make_checkpoint
    from vistrain.durable import atomic_torch_save
    from vistrain.models.mlp import create_perceptron

    spec = {"name": "perceptron", "num_classes": 2, "in_chans": 1, "input_size": 8, "kwargs": {}}
    ckpt = tmp_path / "p.pt"
    atomic_torch_save(make_checkpoint(model=create_perceptron(2, 1, 8), model_spec=spec, classes=["a", "b"],
                                      epoch=1, global_step=0,
                                      input_spec={"channels": 1, "size": 8, "mean": [0.5], "std": [0.5]}), ckpt)
    code, _out, err = cli("viz", "weights", str(ckpt), "--out", str(tmp_path / "w.nosuchformat"))
    assert code == 2 and "cannot write" in err
