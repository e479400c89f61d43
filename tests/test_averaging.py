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


# --- checkpoint.average_last: the average of a stage's last epochs, inside the run ------------------------------

AVG_RUN = ["run", "--headless", "--data", "digits", "--epochs", "3", "--set", "checkpoint.average_last=2"]


def test_average_last_averages_the_last_epochs_validates_and_resumes_to_the_same_file(cli, tmp_path):
    """epoch-0002.pt and epoch-0003.pt are kept, averaged.pt holds their mean (LeNet: no BatchNorm), its val
    evaluation is an event of its own, and a resume of the finished run writes the same averaged weights."""
    from vistrain.checkpoint import resume_candidates
    from vistrain.events import EvalEnd
    from vistrain.runfolder import read_events

    code, out, err = cli(*AVG_RUN, "--set", "checkpoint.best=last", "--out", tmp_path, "--name", "a")
    assert code == 0, err
    folder = tmp_path / "a" / "checkpoints"
    assert sorted(p.name for p in folder.glob("epoch-*.pt")) == ["epoch-0002.pt", "epoch-0003.pt"]
    avg = load_checkpoint(folder / "averaged.pt")
    parts = [weights(load_checkpoint(folder / f"epoch-000{e}.pt")) for e in (2, 3)]
    for key, value in weights(avg).items():
        assert torch.allclose(value, (parts[0][key] + parts[1][key]) / 2, atol=1e-6), key
    assert avg["weights"] == "average" and avg["averaged_from"] == ["epoch-0002.pt", "epoch-0003.pt"]
    assert "optimizer" not in avg
    # checkpoint.best=last: the average is the stage's final point, so it is best.pt
    best = load_checkpoint(folder / "best.pt")
    assert best["weights"] == "average"
    assert all(torch.equal(best["state_dict"][k], v) for k, v in avg["state_dict"].items())
    events, _ = read_events(tmp_path / "a" / "events.jsonl")
    averaged = [e for e in events if isinstance(e, EvalEnd) and e.split == "val-average"]
    assert len(averaged) == 1 and abs(averaged[0].top1 - avg["metrics"]["val_top1"]) < 1e-12
    assert "averaged weights: val" in out and "average of 2 epochs" in out
    # neither the kept epochs nor the average are resume points
    assert {p.name for p in resume_candidates(folder)} == {"last.pt"}
    before = {k: v.clone() for k, v in avg["state_dict"].items()}
    (folder / "averaged.pt").unlink()
    code, out, err = cli("run", "--headless", "--resume", tmp_path / "a")
    assert code == 0, err
    again = load_checkpoint(folder / "averaged.pt")["state_dict"]
    assert all(torch.equal(again[k], v) for k, v in before.items())


def test_average_last_recomputes_batchnorm_and_max_rule_keeps_a_better_epoch(cli, tmp_path):
    model_args = ["--model", "timm:resnet10t", "--set", "model.input_size=16", "--set", "checkpoint.best=max"]
    code, out, err = cli(*AVG_RUN, *model_args, "--out", tmp_path, "--name", "bn")
    assert code == 0, err
    folder = tmp_path / "bn" / "checkpoints"
    assert "BatchNorm statistics recomputed on 1259 training images" in out
    avg = weights(load_checkpoint(folder / "averaged.pt"))
    parts = [weights(load_checkpoint(folder / f"epoch-000{e}.pt")) for e in (2, 3)]
    stats = [k for k in avg if k.endswith("running_var")]
    assert stats and any(not torch.allclose(avg[k], (parts[0][k] + parts[1][k]) / 2, atol=1e-4) for k in stats)
    # max: the average becomes best.pt only when its val top-1 is at least the best epoch's
    ck = load_checkpoint(folder / "averaged.pt")
    best = load_checkpoint(folder / "best.pt")
    highest = load_checkpoint(folder / "last.pt")["best_metric"]  # the highest val top-1 of epochs 1-3
    assert (best.get("weights") == "average") == (ck["metrics"]["val_top1"] >= highest)


def test_average_last_longer_than_the_stage_warns_and_goes_on(cli, tmp_path):
    code, out, err = cli("run", "--headless", "--data", "digits", "--epochs", "1", "--set", "checkpoint.average_last=4",
                         "--out", tmp_path, "--name", "short")
    assert code == 0, err
    assert "found 1 epoch checkpoint(s) of its last 4 epochs; nothing averaged" in out + err
    assert not (tmp_path / "short" / "checkpoints" / "averaged.pt").exists()


def test_the_report_shows_the_averaged_weights(cli, tmp_path):
    code, out, err = cli(*AVG_RUN, "--set", "checkpoint.best=last", "--out", tmp_path, "--name", "r")
    assert code == 0, err
    avg = load_checkpoint(tmp_path / "r" / "checkpoints" / "averaged.pt")
    code, out, err = cli("report", tmp_path / "r", "--out", tmp_path / "r.html")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    assert f"val top-1 of the averaged weights</td><td>{100 * avg['metrics']['val_top1']:.2f}%" in html
    assert "best.pt holds them" in html
