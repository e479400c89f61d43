"""The example plugins in plugins/, installed with pip and found by Python's real entry-point machinery."""

from __future__ import annotations

import json
import sys

import pytest

from plugin_env import EXAMPLES, env_with, pip_install_target, vistrain

EXAMPLE_PLUGINS = {  # entry-point name: package folder
    "example": "vistrain-example",
    "cifar-resnet": "vistrain-cifar-resnet",
    "stroke": "vistrain-stroke",
    "tensorboard": "vistrain-tensorboard",
    "mean-teacher": "vistrain-mean-teacher",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder with every example plugin pip-installed into it."""
    target = tmp_path_factory.mktemp("site")
    pip_install_target(target, *(EXAMPLES / folder for folder in EXAMPLE_PLUGINS.values()))
    assert sorted(p.name.split("-")[0] for p in target.glob("*.dist-info")) == sorted(
        folder.replace("-", "_") for folder in EXAMPLE_PLUGINS.values())
    return target


def test_plugins_list_and_doctor_see_every_installed_example(site):
    out = vistrain(site, "plugins", "list")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    for name, folder in EXAMPLE_PLUGINS.items():
        assert f"{folder} 0.1.0" in rows[name] and rows[name].rstrip().endswith("ok"), out.stdout
    assert "model: resnet110, resnet20" in rows["cifar-resnet"] and "optimizer: lion" in rows["cifar-resnet"]
    assert "scheduler: resnet-steps" in rows["cifar-resnet"]
    assert "augmentation: stroke" in rows["stroke"]
    assert "command: tensorboard-export" in rows["tensorboard"] and "on_event" in rows["tensorboard"]
    doctor = vistrain(site, "plugins", "doctor")
    assert doctor.returncode == 0 and f"no problems found in {len(EXAMPLE_PLUGINS)} plugin(s)" in doctor.stdout
    pool = vistrain(site, "augment", "list", "stroke")
    assert "stroke" in pool.stdout and "plugin:stroke  yes" in pool.stdout


def test_help_lists_plugin_commands_without_importing_torch(site):
    import subprocess

    code = ("import sys; from vistrain.cli import main; main(['--help']);"
            "print('IMPORTED', 'torch' in sys.modules, 'tensorboard' in sys.modules, 'typer' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env_with(site), capture_output=True, text=True, check=True)
    assert "tensorboard-export" in out.stdout and "example-summary" in out.stdout
    assert "[plugin tensorboard]" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "IMPORTED False False False"


def test_one_run_uses_the_model_augmentation_optimizer_scheduler_and_listeners(site, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = vistrain(site, "run", "--headless", "--model", "resnet20", "--data", "stripes:8", "--epochs", "1",
                   "--augment", "rand-n2-m9", "--optimizer", "lion", "--lr", "2e-3", "--scheduler", "resnet-steps",
                   "--labels-per-class", "20",  # 60 training images: 4 steps of 16
                   "--out", tmp_path, "--name", "all", "--set", "data.batch_size=16",
                   "--set", "output.system_interval_s=0.2")
    assert out.returncode == 0, out.stderr
    assert "listener plugin" not in out.stderr
    run = tmp_path / "all"
    started = json.loads((run / "events.jsonl").read_text().splitlines()[0])
    cfg = started["config"]
    assert (cfg["model"]["name"], cfg["optim"]["name"], cfg["sched"]["name"]) == ("resnet20", "lion", "resnet-steps")
    assert (run / "example-best.txt").read_text().startswith("epoch ")
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    assert {"supervised/loss", "supervised/val_top1", "supervised/epoch_train_loss"} <= set(scalars)
    assert [s.step for s in acc.Scalars("supervised/val_top1")] == [1]
    lrs = [s.value for s in acc.Scalars("supervised/lr")]
    assert lrs[-1] == pytest.approx(2e-5)  # resnet-steps divided Lion's lr by 10 twice

    summary = vistrain(site, "example-summary", run)
    assert summary.returncode == 0 and summary.stdout.startswith("best epoch")
    export = vistrain(site, "tensorboard-export", run, "--out", tmp_path / "tb")
    assert export.returncode == 0 and "wrote scalars of" in export.stdout
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_strategy_run_with_the_example_model_and_dataset(site, tmp_path):
    out = vistrain(site, "run", "--headless", "--strategy", "mean-teacher", "--model", "example-cnn",
                   "--data", "stripes:12", "--labels-per-class", "10", "--epochs", "2", "--out", tmp_path,
                   "--name", "mt", "--set", "data.batch_size=32", "--set", "optim.lr=0.01")
    assert out.returncode == 0, out.stderr
    assert "stage 1/1: mean teacher: example-cnn student" in out.stdout and "EMA teacher (final)" in out.stdout
    events = [json.loads(line) for line in (tmp_path / "mt" / "events.jsonl").read_text().splitlines()]
    finished = next(e for e in events if e["kind"] == "run_finished")
    assert finished["metrics"]["best_val_top1"] > 0.5 and "teacher_val_top1" in finished["metrics"]
    assert (tmp_path / "mt" / "tensorboard").is_dir() and (tmp_path / "mt" / "example-best.txt").exists()


@pytest.mark.parametrize("allowed, loaded", [("none", set()), ("stroke", {"stroke"}),
                                             ("stroke,cifar-resnet", {"stroke", "cifar-resnet"})])
def test_env_var_selects_installed_plugins(site, allowed, loaded):
    out = vistrain(site, "plugins", "list", plugins=allowed)
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    for name in EXAMPLE_PLUGINS:
        assert rows[name].rstrip().endswith("ok") == (name in loaded), rows[name]
        assert ("disabled: not listed in VISTRAIN_PLUGINS" in rows[name]) == (name not in loaded)
    if not loaded:  # a disabled plugin's names are unknown to a run
        run = vistrain(site, "run", "--headless", "--model", "resnet20", plugins=allowed)
        assert run.returncode == 2 and "unknown model 'resnet20'" in run.stderr
