"""vistrain average: the uniform average of checkpoints' weights, BatchNorm statistics recomputed."""

from __future__ import annotations

import torch

from vistrain.checkpoint import holds_ema, load_checkpoint, weights

RUN = ["run", "--headless", "--data", "digits", "--epochs", "2", "--set", "checkpoint.every_steps=5",
       "--set", "checkpoint.keep=3"]


def test_the_average_of_a_runs_step_checkpoints(cli, tmp_path):
    assert cli(*RUN, "--out", tmp_path, "--name", "a")[0] == 0
    steps = sorted((tmp_path / "a" / "checkpoints").glob("step-*.pt"))
    steps.append(tmp_path / "a" / "checkpoints" / "last.pt")  # steps 5 and 15, and the end of epoch 2
    assert len(steps) == 3
    code, out, err = cli("average", *steps, "--out", tmp_path / "avg.pt")
    assert code == 0, err
    assert "the average of 3 checkpoints" in out and out.count("val top-1") == 4
    avg = load_checkpoint(tmp_path / "avg.pt")
    assert avg["weights"] == "average" and not holds_ema(avg) and "optimizer" not in avg
    inputs = [weights(load_checkpoint(p)) for p in steps]
    for key, value in weights(avg).items():
        assert torch.allclose(value, sum(w[key] for w in inputs) / 3, atol=1e-6), key
    code, out, err = cli("eval", tmp_path / "avg.pt", "--data", "digits")
    assert code == 0 and "top-1" in out, err


def test_batchnorm_statistics_are_recomputed_on_the_training_split(cli, tmp_path):
    """The first BatchNorm's running mean becomes the mean of its input over the training images, not the
    average of the inputs' running means."""
    from vistrain.inference import checkpoint_data, images_loader
    from vistrain.models.factory import load_model

    model_args = ["--model", "timm:resnet10t", "--set", "model.input_size=16"]
    assert cli(*RUN, *model_args, "--out", tmp_path, "--name", "bn")[0] == 0
    steps = sorted((tmp_path / "bn" / "checkpoints").glob("step-*.pt"))[-2:]
    code, out, err = cli("average", *steps, "--out", tmp_path / "avg.pt")
    assert code == 0, err
    assert "BatchNorm statistics recomputed on 1259 training images" in out
    model, ckpt, spec = load_model(tmp_path / "avg.pt")
    plain = [weights(load_checkpoint(p)) for p in steps]
    stem_bn = next(name for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d))
    averaged_stats = sum(w[f"{stem_bn}.running_mean"] for w in plain) / 2
    stem = dict(model.named_modules())[stem_bn.rsplit(".", 1)[0] + ".0"]  # the convolution before it
    train = checkpoint_data(ckpt)[1].train
    with torch.no_grad():
        means = [stem(x).mean(dim=(0, 2, 3)) for x, _ in images_loader(train, spec, 256)]
    expected = torch.stack(means).mean(0)  # update_bn: every batch weighs the same
    got = dict(model.named_modules())[stem_bn].running_mean
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, averaged_stats, atol=1e-3)


def test_averaging_bad_inputs(cli, tmp_path):
    assert cli(*RUN, "--out", tmp_path, "--name", "a")[0] == 0
    assert cli(*RUN, "--model", "mlp", "--out", tmp_path, "--name", "m")[0] == 0
    a, m = tmp_path / "a" / "checkpoints" / "best.pt", tmp_path / "m" / "checkpoints" / "best.pt"
    for args, message in [([a], "averaging needs at least two checkpoints"),
                          ([a, m], "holds another model than"),
                          ([a, tmp_path / "nope.pt"], "not found")]:
        code, out, err = cli("average", *args, "--out", tmp_path / "x.pt")
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "x.pt").exists()
