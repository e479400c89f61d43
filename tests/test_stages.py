"""The stage toolkit: targets datasets, losses that see the batch, smoothing, param groups, resume, typed params."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vistrain.config import resolve_config
from vistrain.data.pipeline import ImageTransform, InputSpec, MixedBatchLoader, TensorBatchLoader, build_loader
from vistrain.data.source import ArrayImageSet, ConcatImageSet, TargetImageSet
from vistrain.errors import ConfigError
from vistrain.strategies.distill import DistillationLoss, TeacherView, distillation_loss, retarget
from vistrain.strategies.stages import _with_smoothing, build_optimizer, smooth_targets

FAST = ["--headless", "--data", "digits", "--epochs", "1", "--set", "data.batch_size=128",
        "--set", "output.system_interval_s=0.2"]


def test_distillation_loss_matches_a_hand_computation():
    zs = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    zt = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 4.0]])
    y = torch.tensor([1, 2])
    T, alpha = 3.0, 0.7
    total = 0.0
    for i in range(2):
        ps = [np.exp(v / T) for v in zs[i].tolist()]
        pt = [np.exp(v / T) for v in zt[i].tolist()]
        ps = [p / sum(ps) for p in ps]
        pt = [p / sum(pt) for p in pt]
        kl = sum(t * np.log(t / s) for t, s in zip(pt, ps))
        q = [np.exp(v) for v in zs[i].tolist()]
        ce = -np.log(q[int(y[i])] / sum(q))
        total += alpha * T * T * kl + (1 - alpha) * ce
    assert float(distillation_loss(zs, zt, y, T, alpha)) == pytest.approx(total / 2, rel=1e-5)


def test_teacher_sees_its_own_transform_without_gradients():
    student_spec = InputSpec(1, 28, (0.1307,), (0.3081,))
    teacher_spec = InputSpec(3, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    seen = {}

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3 * 32 * 32, 4)

        def forward(self, x):
            seen["shape"], seen["training"], seen["grad"] = tuple(x.shape), self.training, torch.is_grad_enabled()
            seen["x"] = x
            return self.lin(x.flatten(1))

    pixels = torch.rand(2, 1, 28, 28)
    images = (pixels - 0.1307) / 0.3081
    teacher = TeacherView(Probe().train(), teacher_spec, student_spec)
    loss = DistillationLoss(teacher, temperature=2.0, alpha=0.5)
    out = torch.randn(2, 4, requires_grad=True)
    loss(out, torch.tensor([0, 1]), images).backward()
    assert seen["shape"] == (2, 3, 32, 32) and not seen["training"] and not seen["grad"]
    # same pixels, the teacher's normalisation: undo it and compare with the resized grayscale image
    back = seen["x"] * torch.tensor(teacher_spec.std).view(1, 3, 1, 1) + torch.tensor(teacher_spec.mean).view(1, 3, 1, 1)
    ref = F.interpolate(pixels, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(back[:, 0:1], ref, atol=1e-5) and torch.allclose(back[:, 2:3], ref, atol=1e-5)
    assert retarget(images, student_spec, student_spec) is images


def test_label_smoothing_is_the_same_for_the_default_and_a_custom_loss():
    logits = torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 3, 1])
    builtin = F.cross_entropy(logits, y, label_smoothing=0.1)
    wrapped = _with_smoothing(lambda z, t: F.cross_entropy(z, t), 4, 0.1)
    assert float(wrapped(logits, y)) == pytest.approx(float(builtin), rel=1e-6)
    seen = {}

    def custom(z, t, images):
        seen["t"] = t
        return z.sum() * 0

    custom.sees_images = True
    wrapped = _with_smoothing(custom, 4, 0.1)
    assert getattr(wrapped, "sees_images", False)
    wrapped(logits, y, torch.zeros(5, 1, 2, 2))
    assert torch.allclose(seen["t"], smooth_targets(y, 4, 0.1)) and float(seen["t"][0, 0]) == pytest.approx(0.925)


def test_soft_and_hard_target_sets_reach_the_loaders():
    images = np.arange(6 * 4 * 4, dtype=np.uint8).reshape(6, 4, 4, 1)
    base = ArrayImageSet(images, np.array([-1] * 6))
    hard = TargetImageSet(base, np.array([0, 1, 2, 0, 1, 2]))
    soft_rows = np.eye(3, dtype=np.float32)[[2, 2, 1, 0, 0, 1]] * 0.8 + 0.2 / 3
    soft = TargetImageSet(base, soft_rows)
    assert not hard.soft and soft.soft and list(soft.labels) == [2, 2, 1, 0, 0, 1]
    spec = InputSpec(1, 4, (0.5,), (0.5,))
    _, y = next(iter(build_loader(hard, ImageTransform(spec), 6, shuffle=False)))
    assert y.dtype == torch.long and y.tolist() == [0, 1, 2, 0, 1, 2]
    _, y = next(iter(build_loader(soft, ImageTransform(spec), 6, shuffle=False)))
    assert y.dtype == torch.float32 and torch.allclose(y, torch.from_numpy(soft_rows))
    labelled = ArrayImageSet(images[:2], np.array([1, 0]))
    both = ConcatImageSet(labelled, soft, num_classes=3)
    t = both.targets()
    assert t.shape == (8, 3) and t[0].tolist() == [0, 1, 0] and np.allclose(t[2:], soft_rows)
    assert both.as_array().shape == (8, 4, 4, 1) and np.array_equal(both.image(3), images[1])


def test_mixed_batches_keep_the_ratio_and_cycle_the_small_set():
    main = TensorBatchLoader(torch.zeros(12, 1), torch.eye(3)[torch.arange(12) % 3], 6, shuffle=False)
    extra = TensorBatchLoader(torch.ones(4, 1), torch.tensor([0, 1, 2, 0]), 2, shuffle=False)
    batches = list(MixedBatchLoader(main, extra, 3))
    assert len(batches) == 2
    x, y = batches[0]
    assert x.shape == (8, 1) and y.shape == (8, 3) and float(x[6:].sum()) == 2 and y[6].tolist() == [1, 0, 0]


def test_mixed_batches_resume_mid_epoch_from_both_sides_positions():
    """In-memory loaders on both sides: the state holds each side's position, and a resumed epoch continues with
    the batches an unbroken one yields (the small side cycled, in its second pass here); a side that cannot say
    where it is leaves the state empty, so the training loop replays the epoch instead."""
    def mixed():
        main = TensorBatchLoader(torch.arange(40.0).view(40, 1), torch.arange(40) % 3, 4, shuffle=True, seed=1)
        extra = TensorBatchLoader(100 + torch.arange(7.0).view(7, 1), torch.arange(7) % 3, 2, shuffle=True, seed=2)
        return MixedBatchLoader(main, extra, 3)

    whole = mixed()
    whole.set_epoch(3)
    want = [x for x, _ in whole]
    assert len(want) == 10 and len(whole.extra) == 4
    first = mixed()
    first.set_epoch(3)
    batches = iter(first)
    for _ in range(6):
        next(batches)
    state = first.state_dict()
    assert state["position"] == 6 and state["main"] == {"epoch": 3, "position": 6}
    assert state["extra"] == {"epoch": 3001, "position": 2}  # its second pass, two batches in
    resumed = mixed()
    resumed.set_epoch(3)
    resumed.load_state_dict(state)
    assert [x.tolist() for x, _ in resumed] == [x.tolist() for x in want[6:]]

    class NoState:  # a loader without state_dict
        def __init__(self, inner):
            self.inner, self.dataset = inner, inner.dataset

        def __iter__(self):
            return iter(self.inner)

        def __len__(self):
            return len(self.inner)

    plain = MixedBatchLoader(mixed().main, NoState(mixed().extra), 3)
    next(iter(plain))
    assert plain.state_dict() == {}


def test_param_groups_get_their_own_learning_rates():
    from vistrain.strategies.base import RunContext

    cfg = resolve_config(None, None, ["optim.lr=0.01"])
    ctx = RunContext(config=cfg, device=torch.device("cpu"), data=None, run_dir=None, emit=lambda e: None)
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    opt = build_optimizer(ctx, [{"params": a.parameters(), "lr_mult": 0.1}, {"params": b.parameters()}])
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.001, 0.01])


def test_unknown_or_mistyped_strategy_parameter_is_one_line_exit_2(cli, tmp_path):
    code, out, err = cli("run", *FAST, "--out", tmp_path, "--set", "strategy.params.epochz=3")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "strategy.params.epochz" in err
    assert not list(tmp_path.iterdir())  # failed before any run folder was made


def test_supervised_writes_the_stage_into_checkpoints(cli, tmp_path):
    from vistrain.checkpoint import load_checkpoint

    code, _, err = cli("run", *FAST, "--out", tmp_path, "--name", "r")
    assert code == 0, err
    ck = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")
    assert ck["stage"] == "supervised" and ck["stage_epochs"] == 1


def test_params_model_rejects_bad_types():
    from vistrain.strategies.params import StrategyParams, parse_params

    class P(StrategyParams):
        threshold: float = 0.3

    from vistrain import plugins

    class Plugin:
        from vistrain.hookspecs import hookimpl

        @hookimpl
        def register_strategies(self, register):
            register("typed-test", lambda ctx: {}, params=P)

    plugins.register_plugin(Plugin(), "typed-test-plugin")
    try:
        assert parse_params("typed-test", {"threshold": 0.5}).threshold == 0.5
        with pytest.raises(ConfigError, match="threshold"):
            parse_params("typed-test", {"threshold": "high"})
        with pytest.raises(ConfigError, match="did you mean 'threshold'"):
            parse_params("typed-test", {"treshold": 0.5})
    finally:
        plugins.unregister_plugin("typed-test-plugin")


def test_layers_below_the_runner_do_not_import_upwards():
    import re
    from pathlib import Path

    root = Path(__file__).parent.parent / "vistrain"
    upward = re.compile(r"^\s*(from|import) vistrain\.(runner|policy_search|cli|tui)\b", re.M)
    for layer in ("augment", "engine", "data", "strategies"):
        for path in (root / layer).glob("*.py"):
            assert not upward.search(path.read_text()), f"{path} imports a layer above it"


@pytest.mark.parametrize("name", ["supervised", "transfer", "distill", "pseudo-label", "noisy-student", "fixmatch",
                                  "flexmatch"])
def test_every_strategy_has_a_valid_example_config(name):
    from pathlib import Path

    from vistrain.strategies.params import parse_params

    cfg = resolve_config(Path(__file__).parent.parent / "examples" / f"{name}.yaml")
    assert cfg.strategy.name == name
    parse_params(name, cfg.strategy.params)  # raises on an unknown or mistyped parameter


def test_a_model_default_input_far_above_the_data_size_is_warned_about():
    from types import SimpleNamespace

    from vistrain.config import ModelConfig
    from vistrain.strategies.stages import build_stage_model

    said = []
    from vistrain.config import Config

    ctx = SimpleNamespace(data=SimpleNamespace(source=SimpleNamespace(image_size=(8, 8), channels=1),
                                               classes=[str(i) for i in range(10)]), config=Config(),
                          log=lambda message, level="info": said.append((level, message)))
    with torch.device("meta"):  # shapes only: no VGG allocation
        _, _, spec = build_stage_model(ctx, ModelConfig(name="vgg11"))
        assert spec.size == 224 and len(said) == 1
        level, message = said[0]
        assert level == "warning" and "upscaled 28x" in message and "--set model.input_size=28" in message
        build_stage_model(ctx, ModelConfig(name="vgg11", input_size=32))  # chosen by the user: no warning
        build_stage_model(ctx, ModelConfig(name="lenet5"))  # 8 -> 28 px is LeNet's own input
    assert len(said) == 1


def test_a_stage_ends_its_loaders_prefetch_threads(tmp_path, monkeypatch):
    """Device loaders prefetch in a thread; the stage closes them when it ends (the loaders are kept alive here,
    so their threads could only end by being closed)."""
    import threading

    from vistrain import plugins
    from vistrain.data.device_loader import DeviceAugmentLoader
    from vistrain.hookspecs import hookimpl
    from vistrain.runner import execute

    def augment_threads() -> int:
        return sum(t.name.startswith("vistrain-augment") for t in threading.enumerate())

    made, during = [], []
    init = DeviceAugmentLoader.__init__

    def keep(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(DeviceAugmentLoader, "__init__", keep)
    before = augment_threads()

    class Watch:
        @hookimpl
        def on_event(self, event):
            if event.kind == "epoch_end":
                during.append(augment_threads())

    cfg = resolve_config(None, {"output.dir": str(tmp_path), "output.name": "r"}, [
        "data.name=digits", "train.epochs=2", "data.batch_size=64", "data.device_augment=true",
        "augment.spec=affine"])
    plugins.register_plugin(Watch(), "thread-watch")
    try:
        execute(cfg)
    finally:
        plugins.unregister_plugin("thread-watch")
    assert made and during and max(during) > before  # the thread existed while the stage ran
    assert augment_threads() == before and all(loader._pool is None for loader in made)
