"""The four strategies on real (tiny) runs: transfer, distill, pseudo-label, noisy-student; stats, resume, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vistrain import plugins
from vistrain.data.pipeline import InputSpec
from vistrain.data.source import ArrayImageSet
from vistrain.checkpoint import load_checkpoint, make_checkpoint
from vistrain.durable import atomic_torch_save
from vistrain.errors import ConfigError
from vistrain.events import PseudoLabelStats
from vistrain.models.lenet import LeNet5
from vistrain.strategies.labelling import balance_classes, check_confidence_cap, label_round, select_confident
from vistrain.strategies.transfer import head_only

DIGITS = [str(i) for i in range(10)]
TINY = ["--headless", "--data", "digits", "--epochs", "1", "--set", "data.batch_size=64",
        "--set", "output.system_interval_s=0.5", "--log-every", "1000"]


def lenet_checkpoint(path, classes=DIGITS, seed=0):
    torch.manual_seed(seed)
    model = LeNet5(len(classes), 1, 28)
    spec = {"name": "lenet5", "num_classes": len(classes), "in_chans": 1, "input_size": 28, "kwargs": {}}
    atomic_torch_save(make_checkpoint(model=model, model_spec=spec, input_spec=InputSpec(1, 28, (0.1307,), (0.3081,)).to_dict(),
                                      classes=classes, epoch=1, global_step=1), path)
    return path


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    """A LeNet-5 trained one epoch on digits: a real (weak) teacher and transfer source."""
    from vistrain.cli import main

    plugins.reset()
    out = tmp_path_factory.mktemp("teacher")
    assert main(["run", *TINY, "--epochs", "2", "--set", "data.batch_size=32", "--out", str(out), "--name", "t"]) == 0
    return out / "t" / "checkpoints" / "best.pt"


# --- pseudo-label mechanics -----------------------------------------------------------------


def test_class_balancing_keeps_the_most_confident_and_duplicates_rare_classes():
    probs = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.8, 0.2, 0.0], [0.7, 0.3, 0.0],
                      [0.1, 0.9, 0.0], [0.0, 0.2, 0.8]], dtype=np.float32)
    accepted = select_confident(probs, 0.5)
    assert accepted.tolist() == [0, 1, 2, 3, 4, 5]
    out = balance_classes(accepted, probs, 3, target=2)
    assert sorted(out.tolist()) == [0, 2, 4, 4, 5, 5]  # class 0: top two of four; 1 and 2 duplicated
    out = balance_classes(accepted, probs, 3, target=3)
    assert np.bincount(probs[out].argmax(1), minlength=3).tolist() == [3, 3, 3]
    assert out[:3].tolist() == [0, 2, 3]
    assert balance_classes(accepted, probs, 3).tolist().count(4) == 2  # default target: mean count, ceil(6/3)


class _Ctx:
    def __init__(self):
        self.events = []
        self.data = type("D", (), {"classes": ["a", "b", "c"]})()

    def emit(self, e):
        self.events.append(e)


def test_label_round_soft_vs_hard_and_its_statistics():
    images = ArrayImageSet(np.zeros((4, 2, 2, 1), np.uint8), np.array([0, 1, 1, 2]))
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.2, 0.25, 0.55], [0.34, 0.33, 0.33]], np.float32)
    ctx = _Ctx()
    soft = label_round(ctx, 1, images, probs, threshold=0.5, soft=True, balance=False)
    hard = label_round(ctx, 2, images, probs, threshold=0.5, soft=False, balance=False, previous=np.array([0, 1, 1, 0]))
    assert soft.images.soft and np.allclose(soft.images.targets(), probs[:3])
    assert not hard.images.soft and hard.images.targets().tolist() == [0, 1, 2]
    s1, s2 = ctx.events
    assert isinstance(s1, PseudoLabelStats) and s1.round == 1 and s1.flip_rate is None
    assert s1.counts_before == [1, 1, 1] and s1.counts_after == [1, 1, 1]
    assert len(s1.confidence_hist) == 20 and sum(s1.confidence_hist) == 4 and s1.confidence_hist[14] == 1
    assert s1.acceptance_rate == 0.75 and s1.mean_confidence == pytest.approx((0.7 + 0.5 + 0.55) / 3)
    assert s1.accuracy == pytest.approx(2 / 3) and s1.class_names == ["a", "b", "c"] and s1.threshold == 0.5
    assert s2.flip_rate == pytest.approx(0.25)  # item 2 changed label
    with pytest.raises(ConfigError, match=r"accepted none of 4 .*highest confidence is 0\.700"):
        label_round(ctx, 3, images, probs, threshold=0.9, soft=True, balance=True)


# --- transfer ----------------------------------------------------------------------------------


def test_a_threshold_at_or_above_a_smoothed_teachers_cap_is_caught_before_training():
    from types import SimpleNamespace

    def check(smoothing, classes, threshold):
        logged = []
        ctx = SimpleNamespace(config=SimpleNamespace(train=SimpleNamespace(label_smoothing=smoothing)),
                              data=SimpleNamespace(classes=[str(c) for c in range(classes)]),
                              log=lambda message, level="info": logged.append((level, message)))
        check_confidence_cap(ctx, threshold)
        return logged

    assert check(0.1, 10, 0.9) == []  # cap 0.91: the default keeps the teacher's surest images, without a word
    assert check(0.0, 1000, 0.99) == []  # no smoothing, no cap
    [(level, message)] = check(0.1, 100, 0.9)  # cap 0.901: all but nothing passes
    assert level == "warning" and "caps the teachers' targets at 0.9010 (100 classes), just above" in message
    with pytest.raises(ConfigError, match=r"at 0\.9100 \(10 classes\), below strategy.params.threshold 0\.95"):
        check(0.1, 10, 0.95)


def test_head_only_keeps_batchnorm_statistics_and_freezes_the_backbone():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten())
            self.classifier = torch.nn.Linear(4 * 4 * 4, 3)

        def forward(self, x):
            return self.classifier(self.features(x))

    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wrapped = head_only(model).train()
    opt = torch.optim.SGD([p for p in wrapped.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        wrapped(torch.randn(8, 1, 6, 6)).sum().backward()
        opt.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("classifier."))
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])


def test_probe_leaves_the_backbone_bit_identical_and_finetune_uses_group_lrs(cli, tmp_path, teacher_ckpt):
    src = load_checkpoint(teacher_ckpt)["state_dict"]
    code, out, err = cli("run", *TINY, "--out", tmp_path, "--name", "probe", "--strategy", "transfer",
                         "--set", "strategy.params.mode=probe", "--set", f"strategy.params.source={teacher_ckpt}")
    assert code == 0, err
    ck = load_checkpoint(tmp_path / "probe" / "checkpoints" / "best.pt")
    assert ck["stage"] == "probe" and (tmp_path / "probe" / "checkpoints" / "probe-best.pt").exists()
    backbone = [k for k in src if not k.startswith("classifier.")]
    assert backbone and all(torch.equal(src[k], ck["state_dict"][k]) for k in backbone)
    assert not torch.equal(src["classifier.weight"], ck["state_dict"]["classifier.weight"])
    assert "transfer: cached" in out  # the default probe trains on cached features ...
    lr = load_checkpoint(tmp_path / "probe" / "checkpoints" / "best.pt")["config"]["optim"]["lr"]
    assert ck["optimizer"]["param_groups"][0]["max_lr"] == pytest.approx(10 * lr)  # ... at 10x the LR
    code, out, err = cli("run", *TINY, "--out", tmp_path, "--name", "probe-aug", "--strategy", "transfer",
                         "--set", "strategy.params.mode=probe", "--set", f"strategy.params.source={teacher_ckpt}",
                         "--set", "strategy.params.cache_features=false", "--set", "strategy.params.probe_lr_mult=2")
    assert code == 0, err
    assert "transfer: cached" not in out
    ck = load_checkpoint(tmp_path / "probe-aug" / "checkpoints" / "best.pt")
    assert all(torch.equal(src[k], ck["state_dict"][k]) for k in backbone)
    groups = ck["optimizer"]["param_groups"]
    assert len(groups) == 1 and groups[0]["max_lr"] == pytest.approx(2 * lr)
    code, out, err = cli("run", *TINY, "--out", tmp_path, "--name", "ft", "--strategy", "transfer",
                         "--set", f"strategy.params.source={teacher_ckpt}", "--set", "strategy.params.freeze_epochs=1",
                         "--set", "strategy.params.backbone_lr_mult=0.25")
    assert code == 0, err
    assert "stage 1/2: transfer: 1 head-only epochs" in out
    ck = load_checkpoint(tmp_path / "ft" / "checkpoints" / "best.pt")
    groups = ck["optimizer"]["param_groups"]
    assert ck["stage"] == "finetune" and len(groups) == 2
    assert groups[0]["max_lr"] == pytest.approx(0.25 * groups[1]["max_lr"])  # backbone vs head peak LR
    assert not torch.equal(src["features.0.weight"], ck["state_dict"]["features.0.weight"])


@pytest.mark.parametrize("suffix, gray_stem", [(".safetensors", False), (".pth", True)])
def test_transfer_from_a_timm_weights_file(cli, tmp_path, suffix, gray_stem):
    """A timm model's own weights file (ImageNet-style: RGB stem, 1000 classes) on the digits: the
    backbone is loaded as is (with ``model.in_chans=1`` the stem is summed over RGB) and stays frozen
    in probe mode; the head is new."""
    import timm

    torch.manual_seed(3)
    source = timm.create_model("resnet10t", pretrained=False, num_classes=1000)
    weights = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / f"resnet10t{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(weights, str(path))
    else:
        torch.save(weights, path)
    extra = ["--set", "model.in_chans=1"] if gray_stem else []
    code, out, err = cli("run", *TINY, "--model", "timm:resnet10t", "--set", "model.input_size=32", *extra,
                         "--out", tmp_path, "--name", "timm-probe", "--strategy", "transfer",
                         "--set", "strategy.params.mode=probe", "--set", f"strategy.params.source={path}")
    assert code == 0, err
    assert f"transfer: timm:resnet10t from weights {path}" in out
    got = load_checkpoint(tmp_path / "timm-probe" / "checkpoints" / "best.pt")["state_dict"]
    stem = "conv1.0.weight"
    if gray_stem:
        assert got[stem].shape[1] == 1 and torch.allclose(got[stem], weights[stem].sum(dim=1, keepdim=True))
    else:
        assert torch.equal(got[stem], weights[stem])
    backbone = [k for k in weights if not k.startswith(("fc.", stem)) and "num_batches_tracked" not in k]
    assert len(backbone) > 20 and all(torch.equal(weights[k], got[k]) for k in backbone)
    assert got["fc.weight"].shape == (10, weights["fc.weight"].shape[1])  # a fresh head for the 10 digits
    assert not torch.equal(got["fc.weight"], weights["fc.weight"][:10])


# --- distillation ------------------------------------------------------------------------------


def val_predictions_of(checkpoint, run_dir):
    """(predicted class, true label) over the val split of the run that wrote *checkpoint*."""
    from vistrain.data.pipeline import ImageTransform, build_loader
    from vistrain.data.prepare import load_source, prepare_data
    from vistrain.engine.loop import predict_logits
    from vistrain.checkpoint import saved_config
    from vistrain.models.factory import load_model

    model, ckpt, spec = load_model(checkpoint)
    cfg = saved_config(ckpt).data
    val = prepare_data(load_source(cfg.name, cfg), cfg).val
    logits, labels = predict_logits(model, build_loader(val, ImageTransform(spec), 512, shuffle=False, num_workers=0),
                                    device=torch.device("cpu"))
    return logits.argmax(1).numpy(), labels.numpy()


def test_distill_learns_what_the_teacher_says_not_the_labels(cli, tmp_path, teacher_ckpt):
    """A teacher whose outputs are moved one class on (it says 1 for a 0, 2 for a 1...): with alpha=1 only the
    teacher's term is left, and the student predicts the moved classes; with alpha=0 only the labels' term is,
    and it predicts the true ones."""
    ck = load_checkpoint(teacher_ckpt)
    moved = dict(ck["state_dict"])
    for key in ("classifier.weight", "classifier.bias"):
        moved[key] = torch.roll(moved[key], 1, dims=0)  # output j is the old output j-1
    shifted = tmp_path / "shifted-teacher.pt"
    atomic_torch_save({**ck, "state_dict": moved}, shifted)
    teacher_pred, truth = val_predictions_of(shifted, None)
    assert (teacher_pred == (truth + 1) % 10).mean() > 0.7
    top1 = {}
    for alpha in (1.0, 0.0):
        name = f"alpha{alpha:g}"
        code, out, err = cli("run", *TINY, "--epochs", "4", "--model", "mlp", "--set", "model.kwargs.hidden=128",
                             "--out", tmp_path, "--name", name, "--strategy", "distill",
                             "--set", f"strategy.params.teacher={shifted}", "--set", f"strategy.params.alpha={alpha}",
                             "--set", "strategy.params.temperature=2", "--set", "train.label_smoothing=0")
        assert code == 0, err
        assert f"distill: student mlp from the teacher (T=2, alpha={alpha:g})" in out
        pred, truth = val_predictions_of(tmp_path / name / "checkpoints" / "student-last.pt", None)
        top1[alpha] = ((pred == truth).mean(), (pred == (truth + 1) % 10).mean())
    assert top1[1.0][1] > 0.6 and top1[1.0][0] < 0.15, top1  # the teacher's word, against the labels
    assert top1[0.0][0] > 0.5 and top1[0.0][1] < 0.15, top1  # the labels alone


def test_distill_bad_inputs(cli, tmp_path, teacher_ckpt):
    other = lenet_checkpoint(tmp_path / "letters.pt", classes=list("abcdefghij"))
    mlp = ["model.name=mlp", f"strategy.params.teacher={teacher_ckpt}"]  # a checkpoint teacher: nothing trains first
    for params, message in [([f"strategy.params.teacher={other}"], "teacher .* and student class names differ"),
                            ([f"strategy.params.teacher={tmp_path / 'nope.pt'}"], "teacher checkpoint .*nope.pt.* not found"),
                            (["strategy.params.temprature=3"], "unknown parameter 'strategy.params.temprature'.*did you mean 'temperature'"),
                            (["strategy.params.alpha=2"], "parameter 'strategy.params.alpha'"),
                            (["strategy.params.temperature=0"], "parameter 'strategy.params.temperature': input should be greater than 0"),
                            (["strategy.params.loss=dkdd"], "unknown distill_loss 'dkdd'.*did you mean 'dkd'"),
                            ([*mlp, "strategy.params.feature=fitnet", "strategy.params.student_layer=fc9"],
                             r"the student \(MLP\) has no layer 'fc9'.*its layers"),
                            ([*mlp, "strategy.params.feature=fitnet", "strategy.params.teacher_layer=features.99"],
                             r"the teacher \(LeNet5\) has no layer 'features.99'.*did you mean"),
                            ([*mlp, "strategy.params.feature=at"], "attention transfer needs feature maps from both layers"),
                            (["strategy.params.feature=hint"], "parameter 'strategy.params.feature'"),
                            ([*mlp, "strategy.params.loss=dist", "strategy.params.loss_kwargs={delta: 1}"],
                             "distillation loss 'dist' does not take")]:
        sets = [x for p in params for x in ("--set", p)]
        code, out, err = cli("run", *TINY, "--out", tmp_path / "bad", "--strategy", "distill", *sets)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        import re

        assert re.search(message, err), err


# --- pseudo-label and noisy student -----------------------------------------------------------


def test_pseudo_label_bad_inputs(cli, tmp_path, teacher_ckpt):
    untrained = lenet_checkpoint(tmp_path / "untrained.pt")
    cases = [(["--labels-per-class", "20", "--set", "strategy.params.threshold=0.99", "--set",
               f"strategy.params.teacher={untrained}"], r"threshold 0\.99 accepted none of \d+ unlabelled .*lower"),
             (["--labels-per-class", "500"], r"--labels-per-class 500 is larger than class '\d', which has \d+"),
             ([], r"needs unlabelled images.*data.unlabelled=images:DIR.*--labels-per-class")]
    for args, message in cases:
        code, out, err = cli("run", *TINY, "--out", tmp_path / "bad", "--strategy", "pseudo-label", *args)
        import re

        assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(message, err), err


def test_pseudo_labels_are_the_teachers_confident_predictions(cli, tmp_path, teacher_ckpt, recorder):
    """The student trains on exactly the pool images the teacher predicts with confidence >= threshold, labelled
    with the teacher's class (not the true one), and the statistics say so."""
    from vistrain.data.pipeline import ImageTransform, build_loader
    from vistrain.data.prepare import load_source, prepare_data
    from vistrain.engine.loop import predict_logits
    from vistrain.models.factory import load_model
    from vistrain.strategies.labelling import targets_hash

    code, out, err = cli("run", *TINY, "--out", tmp_path, "--name", "pl", "--strategy", "pseudo-label",
                         "--labels-per-class", "20", "--set", f"strategy.params.teacher={teacher_ckpt}",
                         "--set", "strategy.params.threshold=0.5")
    assert code == 0, err
    # the same pool, labelled independently with the teacher
    cfg = load_checkpoint(tmp_path / "pl" / "checkpoints" / "student-best.pt")
    from vistrain.config import Config

    data_cfg = Config.model_validate(cfg["config"]).data
    pool = prepare_data(load_source("digits", data_cfg), data_cfg).unlabeled
    teacher, _, spec = load_model(teacher_ckpt)
    logits, truth = predict_logits(teacher, build_loader(pool, ImageTransform(spec), 512, shuffle=False, num_workers=0),
                                   device=torch.device("cpu"))
    probs = torch.softmax(logits, dim=1)
    conf, hard = probs.max(1)
    accepted = (conf >= 0.5).numpy()
    (stats,) = recorder.of("pseudo_label_stats")
    assert stats.acceptance_rate == pytest.approx(accepted.mean()) and 0.05 < accepted.mean() < 1
    assert stats.counts_before == np.bincount(hard.numpy()[accepted], minlength=10).tolist()
    assert stats.accuracy == pytest.approx((hard.numpy()[accepted] == truth.numpy()[accepted]).mean())
    assert stats.accuracy < 1.0  # some labels are wrong: the teacher's, not the truth, went to the student
    assert cfg["stage_state"]["labels_hash"] == targets_hash(hard.numpy()[accepted])
    assert f"pseudo labels round 1: accepted {100 * accepted.mean():.2f}%" in out


@pytest.fixture(scope="module")
def interrupted_noisy_student(tmp_path_factory):
    """A tiny noisy-student run stopped after epoch 1 of student2, then resumed; the events of both halves."""
    from vistrain.config import resolve_config
    from vistrain.engine.control import TrainControl
    from vistrain.hookspecs import hookimpl
    from vistrain.runner import execute

    plugins.reset()
    out = tmp_path_factory.mktemp("ns")
    cfg = resolve_config(None, {"output.dir": str(out), "output.name": "ns"}, [
        "data.name=digits", "data.labels_per_class=15", "train.epochs=2", "data.batch_size=64",
        "strategy.name=noisy-student", "strategy.params.threshold=0.1", "strategy.params.teacher_epochs=3",
        "strategy.params.students=[lenet5, lenet5_classic]", "output.system_interval_s=0.5"])
    control = TrainControl()

    class Stopper:
        def __init__(self):
            self.events = []

        @hookimpl
        def on_event(self, event):
            self.events.append(event)
            if event.kind == "epoch_end" and event.stage == "student2" and event.epoch == 1:
                control.request_stop()

    first, second = Stopper(), Stopper()
    plugins.register_plugin(first, "ns-first")
    try:
        result = execute(cfg, control=control)
    finally:
        plugins.unregister_plugin("ns-first")
    assert result.stopped_early
    last = result.run_dir / "checkpoints" / "last.pt"
    ck = load_checkpoint(last)
    plugins.register_plugin(second, "ns-second")
    try:
        resumed = execute(cfg, resume=ck, run_dir=result.run_dir)
    finally:
        plugins.unregister_plugin("ns-second")
    return result.run_dir, ck, first.events, second.events, resumed


def test_noisy_student_resumes_in_the_middle_of_round_2(interrupted_noisy_student):
    run_dir, ck, first, second, resumed = interrupted_noisy_student
    assert ck["stage"] == "student2" and ck["epoch"] == 1 and ck["stage_state"]["round"] == 2
    assert [e.stage for e in first if e.kind == "stage_started"] == ["teacher", "student1", "student2"]
    assert [e.stage for e in second if e.kind == "stage_started"] == ["student2"]
    epochs = [(e.stage, e.epoch) for e in second if e.kind == "epoch_end"]
    assert epochs == [("student2", 2)]
    logs = [e.message for e in second if e.kind == "log"]
    assert any("resumed from epoch 1" in m and "student2" in m for m in logs)
    assert not any("pseudo-labels differ" in m for m in logs)  # the same labels were rebuilt
    assert not resumed.stopped_early
    final = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert final["stage"] == "student2" and final["model"]["name"] == "lenet5_classic" and final["model"]["kwargs"] == {"drop_rate": 0.5}
    for name in ("teacher", "student1", "student2"):
        assert (run_dir / "checkpoints" / f"{name}-best.pt").exists()


def test_pseudo_label_statistics_of_a_real_run(interrupted_noisy_student):
    _, _, first, _, _ = interrupted_noisy_student
    stats = [e for e in first if isinstance(e, PseudoLabelStats)]
    assert [s.round for s in stats] == [1, 2]
    from vistrain.config import resolve_config
    from vistrain.data.prepare import load_source, prepare_data

    data_cfg = resolve_config(None, None, ["data.name=digits", "data.labels_per_class=15"]).data
    pool = sum(stats[0].confidence_hist)
    assert pool == len(prepare_data(load_source("digits", data_cfg), data_cfg).unlabeled) and len(stats[0].confidence_hist) == 20
    for s in stats:
        assert len(s.counts_before) == len(s.counts_after) == 10 and s.class_names == DIGITS
        assert 0 < s.acceptance_rate <= 1 and s.threshold == 0.1 and 0.1 <= s.mean_confidence <= 1
        assert sum(s.counts_before) == round(s.acceptance_rate * pool)
        assert s.accuracy is not None and 0 <= s.accuracy <= 1
        nonzero = [c for c in s.counts_before if c]
        assert len(set(c for c in s.counts_after if c)) == 1 and len([c for c in s.counts_after if c]) == len(nonzero)
    assert stats[0].flip_rate is None and 0 <= stats[1].flip_rate <= 1


@pytest.mark.asyncio
async def test_dashboard_pseudo_label_panel_fed_by_a_real_run(interrupted_noisy_student):
    from vistrain.tui.app import DashboardApp
    from vistrain.tui.widgets.pseudo import PseudoLabelPanel

    _, _, first, _, _ = interrupted_noisy_student
    events = [e for e in first if e.kind not in ("batch_end", "system_sample")]

    class Replay(DashboardApp):
        def on_ready(self) -> None:
            self.feed(events)

    app = Replay()
    async with app.run_test(size=(160, 60)) as pilot:
        await pilot.pause()
        panel = app.query_one(PseudoLabelPanel)
        assert panel.display and panel.stats.round == 2
        text = panel.render().plain
        stats = [e for e in events if isinstance(e, PseudoLabelStats)][-1]
        assert f"accepted {100 * stats.acceptance_rate:.1f}%" in text and "▲ 0.10" in text
        assert f"label acc {100 * stats.accuracy:.1f}%" in text


def test_digits_in_mnist_layout_for_transfer_from_mnist():
    from vistrain.config import DataConfig
    from vistrain.data.embedded import load_digits
    from vistrain.errors import DataError

    plain, framed = load_digits(None, DataConfig()), load_digits("mnist", DataConfig())
    assert plain.image_size == (8, 8) and framed.image_size == (28, 28)
    x = framed.train.images
    assert x.shape == (1797, 28, 28, 1) and x[:, :4].max() == 0 and x[:, 24:].max() == 0 and x[:, :, :4].max() == 0
    assert np.array_equal(framed.train.labels, plain.train.labels)
    with pytest.raises(DataError, match="digits:mnist"):
        load_digits("big", DataConfig())
