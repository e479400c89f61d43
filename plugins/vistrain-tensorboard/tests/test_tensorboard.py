"""vistrain-tensorboard: events become TensorBoard scalars, live and through the export command."""

from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vistrain import plugins
from vistrain.events import BatchEnd, EpochEnd, EvalEnd, RunFinished, RunStarted

import vistrain_tensorboard.plugin as plugin_module


def read_scalars(log_dir):
    """{tag: [(step, value)]} from the event files in *log_dir*."""
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def run_events(run_dir):
    yield RunStarted(run_name="r", run_dir=str(run_dir), strategy="supervised", model="m", dataset="d", device="cpu")
    for epoch in (1, 2):
        yield BatchEnd(stage="supervised", epoch=epoch, step=1, steps_per_epoch=1, global_step=epoch, loss=1.0 / epoch,
                       lr=0.1, samples_per_s=10.0, data_wait_s=0.0, step_time_s=0.1)
        yield EpochEnd(stage="supervised", epoch=epoch, epochs=2, train_loss=1.0 / epoch, train_top1=0.5, lr=0.1,
                       duration_s=1.0, samples=8)
        yield EvalEnd(stage="supervised", epoch=epoch, split="val", loss=0.5 / epoch, top1=0.6 + 0.1 * epoch,
                      top5=1.0, num_samples=4)
    yield RunFinished(run_name="r", duration_s=2.0)


def test_listener_writes_scalars_into_the_run_folder(tmp_path):
    for event in run_events(tmp_path):
        plugin_module.on_event(event)
    scalars = read_scalars(tmp_path / "tensorboard")
    assert scalars["supervised/loss"] == [(1, 1.0), (2, 0.5)]
    assert [v for _, v in scalars["supervised/val_top1"]] == pytest.approx([0.7, 0.8])
    assert {"supervised/lr", "supervised/epoch_train_loss", "supervised/val_top5"} <= set(scalars)


def test_export_command_replays_a_finished_run(tmp_path, monkeypatch, capsys):
    from vistrain.cli import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e.to_dict()) + "\n" for e in run_events(run_dir)))
    monkeypatch.setenv("VISTRAIN_PLUGINS", "none")
    plugins.reset()
    plugins.register_plugin(plugin_module, "tensorboard-test")
    try:
        assert main(["tensorboard-export", str(run_dir), "--out", str(tmp_path / "tb")]) == 0
        assert "wrote scalars of 8 events" in capsys.readouterr().out
        assert main(["tensorboard-export", str(tmp_path)]) == 2
        assert "no events.jsonl" in capsys.readouterr().err
    finally:
        plugins.unregister_plugin("tensorboard-test")
        plugins.reset()
    assert read_scalars(tmp_path / "tb")["supervised/val_loss"] == [(1, 0.5), (2, 0.25)]
