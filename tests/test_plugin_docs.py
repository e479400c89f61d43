"""Every hook in hookspecs.py has a working example in docs/plugins.md, and each example works."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest

from vistrain import hookspecs, plugins

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
HOOKS = sorted(n for n, obj in vars(hookspecs).items() if hasattr(obj, f"{hookspecs.PROJECT}_spec"))
BLOCK = re.compile(r"```python\n# example: (\w+)\n(.*?)```", re.S)


def examples() -> dict[str, str]:
    """{hook: the source of its example block}."""
    return {hook: code for hook, code in BLOCK.findall(GUIDE.read_text())}


@pytest.fixture
def example_plugin(request):
    """The example for the hook of the test's parameter, executed as a module and registered as a plugin."""
    hook = request.param
    code = examples()[hook]
    module = types.ModuleType(f"docs_example_{hook}")
    exec(compile(code, f"docs/plugins.md ({hook} example)", "exec"), module.__dict__)  # noqa: S102 - our own docs
    assert hasattr(getattr(module, hook, None), f"{hookspecs.PROJECT}_impl"), f"the {hook} example defines no hookimpl"
    plugins.register_plugin(module, f"docs-{hook}")
    try:
        yield module
    finally:
        plugins.unregister_plugin(f"docs-{hook}")


def test_every_hook_has_an_example():
    missing = set(HOOKS) - set(examples())
    assert not missing, f"docs/plugins.md has no '# example: HOOK' block for {sorted(missing)}"


def _only(kind: str, hook: str):
    entries = [e for e in plugins.registry(kind) if e.plugin == f"docs-{hook}"]
    assert len(entries) == 1, f"the {hook} example should register one {kind}"
    return entries[0]


@pytest.mark.parametrize("example_plugin", ["register_models"], indirect=True)
def test_model_example(example_plugin):
    import torch

    model = _only("model", "register_models").load()(num_classes=10, in_chans=1, input_size=28)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("example_plugin", ["register_datasets"], indirect=True)
def test_dataset_example(example_plugin):
    from vistrain.config import DataConfig
    from vistrain.data.source import DataSource

    source = _only("dataset", "register_datasets").load()("12", DataConfig())
    assert isinstance(source, DataSource) and len(source.train) > 0
    assert source.train.image(0).shape == (12, 12, 1)


@pytest.mark.parametrize("example_plugin", ["register_augmentations"], indirect=True)
def test_augmentation_example_alone_and_in_randaugment(example_plugin):
    from vistrain.augment.randaugment import RandAugment, default_pool

    entry = _only("augmentation", "register_augmentations")
    img = np.full((16, 16, 3), 128, np.uint8)
    out = entry.load()(frac=0.5)(img, np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
    assert entry.name in default_pool()
    rand = RandAugment(n=1, m=30, ops=[entry.name])  # RandAugment builds pool ops as factory(m=M)
    assert not np.array_equal(rand(img, np.random.default_rng(0)), img)


@pytest.mark.parametrize("example_plugin", ["register_optimizers"], indirect=True)
def test_optimizer_example(example_plugin):
    import torch

    from vistrain.config import OptimConfig

    w = torch.nn.Parameter(torch.ones(3))
    opt = _only("optimizer", "register_optimizers").load()([w], OptimConfig(lr=0.1))
    (w ** 2).sum().backward()
    opt.step()
    assert (w.detach() < 1).all()


@pytest.mark.parametrize("example_plugin", ["register_schedulers"], indirect=True)
def test_scheduler_example(example_plugin):
    import torch

    from vistrain.config import SchedConfig

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = _only("scheduler", "register_schedulers").load()(opt, SchedConfig(), 10, 5)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


@pytest.mark.parametrize("example_plugin", ["register_distill_losses"], indirect=True)
def test_distill_loss_example(example_plugin, tmp_path):
    """The example's loss through the registry, then a distill run that trains with it (loss_kwargs passed)."""
    import torch

    from vistrain.runner import execute
    from vistrain.config import resolve_config
    from vistrain.strategies.distill_losses import logit_loss

    loss = logit_loss("mse-logits", {"scale": 0.5})
    zs, zt = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 2.0]])
    assert float(loss(zs, zt, torch.tensor([0]), 4.0)) == pytest.approx(0.5 * 2.0)
    assert _only("distill_loss", "register_distill_losses").name == "mse-logits"
    teacher = execute(resolve_config(None, {"output.dir": str(tmp_path), "output.name": "t"},
                                     ["data.name=digits", "train.epochs=1"])).run_dir
    seen = []
    entry = _only("distill_loss", "register_distill_losses")
    factory = entry.load()

    def spy(**kwargs):
        seen.append(kwargs)
        return factory(**kwargs)

    entry.factory = spy  # the run calls the factory: wrapped, to see the kwargs reach it
    result = execute(resolve_config(None, {"output.dir": str(tmp_path), "output.name": "s"},
                                    ["data.name=digits", "train.epochs=1", "model.name=mlp",
                                     "strategy.name=distill", f"strategy.params.teacher={teacher / 'checkpoints' / 'best.pt'}",
                                     "strategy.params.loss=mse-logits", "strategy.params.loss_kwargs={scale: 0.25}"]))
    assert seen == [{"scale": 0.25}] and result.metrics["best_val_top1"] > 0.2


@pytest.mark.parametrize("example_plugin", ["register_commands"], indirect=True)
def test_command_example(example_plugin, cli, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.yaml").write_text("{}")
    code, out, _ = cli("count-runs", "--folder", tmp_path)
    assert code == 0 and out.strip() == "1 runs"
    code, out, _ = cli("--help")
    assert "count-runs" in out and "Count the run folders" in out


@pytest.mark.parametrize("example_plugin", ["on_event"], indirect=True)
def test_listener_example(example_plugin, capsys):
    from vistrain.dispatch import EventDispatcher
    from vistrain.events import EvalEnd

    EventDispatcher(plugins.get_plugin_manager())(EvalEnd(stage="s", epoch=3, split="val", loss=0.1, top1=0.987,
                                                         top5=1.0, num_samples=10))
    assert "[my listener] val top-1 after epoch 3: 98.7%" in capsys.readouterr().out


@pytest.mark.parametrize("example_plugin", ["register_strategies"], indirect=True)
def test_strategy_example_runs(example_plugin, cli, tmp_path):
    import json

    code, _, err = cli("run", "--headless", "--strategy", "warmup-then-train", "--data", "digits", "--epochs", "1",
                       "--out", tmp_path, "--name", "w", "--set", "data.batch_size=128",
                       "--set", "strategy.params.warmup_epochs=1")
    assert code == 0, err
    events = [json.loads(line) for line in (tmp_path / "w" / "events.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in events if e["kind"] == "stage_started"] == ["warmup", "train"]
    assert (tmp_path / "w" / "checkpoints" / "warmup-best.pt").exists()
