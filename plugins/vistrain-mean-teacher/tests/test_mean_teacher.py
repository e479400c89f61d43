"""vistrain-mean-teacher: EMA, ramp-up, the loss's labelled mask, and a short run through the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vistrain import plugins

import vistrain_mean_teacher.plugin as plugin_module
from vistrain_mean_teacher.strategy import MeanTeacherLoss, MeanTeacherParams, ema_update, sigmoid_rampup


def test_ema_moves_the_teacher_towards_the_student():
    student, teacher = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        student.weight.fill_(1.0)
        teacher.weight.fill_(0.0)
    ema_update(teacher, student, 0.9)
    assert torch.allclose(teacher.weight, torch.full((2, 2), 0.1))


def test_sigmoid_rampup():
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(5, 10) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(10, 10) == 1.0 == sigmoid_rampup(99, 10) == sigmoid_rampup(3, 0)


def test_loss_uses_labels_only_where_given_and_consistency_everywhere():
    torch.manual_seed(0)
    student = torch.nn.Linear(4, 3)
    teacher = torch.nn.Linear(4, 3)
    loss = MeanTeacherLoss(student, teacher, MeanTeacherParams(consistency=0.0, noise=0.0), rampup_steps=0)
    images = torch.randn(4, 4)
    loss(student(images), torch.zeros(4, 3), images)
    assert torch.equal(teacher.weight, student.weight)  # the first call starts the teacher as the student
    logits = student(images)
    targets = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 0], [0, 0, 0]])  # two unlabelled rows
    ce_labelled = torch.nn.functional.cross_entropy(logits[:2], torch.tensor([0, 1]))
    assert loss(logits, targets, images).item() == pytest.approx(ce_labelled.item(), rel=1e-5)
    fresh = torch.nn.Linear(4, 3)  # a new teacher: the first call copies the student into it
    loss = MeanTeacherLoss(student, fresh, MeanTeacherParams(consistency=5.0, noise=0.0), rampup_steps=0)
    assert loss(logits, targets, images).item() == pytest.approx(ce_labelled.item(), rel=1e-5)  # same net: 0
    assert loss.last_weight == 5.0


def test_short_run_reports_student_and_teacher(tmp_path, monkeypatch, capsys):
    from vistrain.cli import main

    monkeypatch.setenv("VISTRAIN_PLUGINS", "none")
    plugins.reset()
    plugins.register_plugin(plugin_module, "mean-teacher-test")
    try:
        code = main(["run", "--headless", "--data", "digits", "--strategy", "mean-teacher", "--labels-per-class", "5",
                     "--epochs", "1", "--out", str(tmp_path), "--name", "mt", "--set", "data.batch_size=64",
                     "--set", "strategy.params.rampup_epochs=0.5"])
        out = capsys.readouterr()
        assert code == 0, out.err
        bad = main(["run", "--headless", "--strategy", "mean-teacher", "--set", "strategy.params.ema=0.9"])
        assert bad == 2 and "did you mean 'ema_decay'" in capsys.readouterr().err
    finally:
        plugins.unregister_plugin("mean-teacher-test")
        plugins.reset()
    assert "EMA teacher (final)" in out.out
    events = [json.loads(line) for line in (tmp_path / "mt" / "events.jsonl").read_text().splitlines()]
    finished = next(e for e in events if e["kind"] == "run_finished")
    assert 0.0 <= finished["metrics"]["teacher_val_top1"] <= 1.0
    assert any(e["kind"] == "eval_end" and e["split"] == "val-teacher" for e in events)
