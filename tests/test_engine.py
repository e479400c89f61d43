"""The training loop, evaluation, schedulers, control flags, checkpoints and RNG state."""

from __future__ import annotations

import errno
import math
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from vistrain import plugins
from vistrain.config import OptimConfig, SchedConfig
from vistrain.data.pipeline import TensorBatchLoader
from vistrain.checkpoint import load_checkpoint, make_checkpoint
from vistrain.durable import atomic_torch_save
from vistrain.engine.control import StopRequested, TrainControl
from vistrain.engine.device import rng_state, select_device, set_rng_state
from vistrain.engine.loop import TrainState, evaluate, fit, topk_correct, update_best, train_one_epoch
from vistrain.errors import CheckpointError, ConfigError, NonFiniteLossError, OutputError

CPU = torch.device("cpu")


def blobs(n=256, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 1, 4, 4, generator=g) * 0.3 + y.view(-1, 1, 1, 1).float()
    return x, y


def tiny_model(classes=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, classes))


def test_topk_with_hard_and_soft_targets():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0]])
    hard = torch.tensor([1, 1])
    soft = torch.tensor([[0.2, 0.8, 0.0], [0.1, 0.9, 0.0]])
    assert [int(c) for c in topk_correct(logits, hard, (1, 2))] == [1, 2]
    assert [int(c) for c in topk_correct(logits, soft, (1, 2))] == [1, 2]


def test_fit_learns_and_calls_save_each_epoch():
    x, y = blobs()
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    saves = []
    state = fit(model, TensorBatchLoader(x, y, 32, True), TensorBatchLoader(x, y, 64, False), opt, device=CPU,
                epochs=4, save=lambda s, m, best, why: saves.append((s.epoch, best, why)))
    assert state.epoch == 4 and state.global_step == 4 * 8
    assert state.best_metric > 0.9
    assert [s[0] for s in saves] == [1, 2, 3, 4] and saves[0][1] is True


def _chosen(rule, vals, count=500):
    state = TrainState()
    for epoch, top1 in enumerate(vals, 1):
        update_best(state, epoch, top1, count, rule)
    return state.best_epoch, state


def test_best_checkpoint_rules():
    # a noisy early peak on 500 val images: max keeps it, 1se moves on to later epochs within one
    # standard error of it (sqrt(.994 * .006 / 500) = 0.35 points), last takes the final epoch
    vals = [0.90, 0.994, 0.985, 0.991, 0.992, 0.989]
    assert _chosen("max", vals)[0] == 2
    assert _chosen("1se", vals)[0] == 5
    assert _chosen("last", vals)[0] == 6
    chosen, state = _chosen("1se", vals)
    assert state.best_seen == 0.994 and state.best_metric == 0.992
    # a larger split tells 0.3 points apart: the peak stays
    assert _chosen("1se", vals, count=100_000)[0] == 2
    # a clearly worse end (an overfitting or diverging tail) never replaces the peak under 1se
    assert _chosen("1se", [0.5, 0.97, 0.60, 0.55])[0] == 2
    # ties go to the later epoch under max, as before
    assert _chosen("max", [0.9, 0.95, 0.95, 0.94])[0] == 3
    with pytest.raises(ValueError, match="unknown best-checkpoint rule"):
        update_best(TrainState(), 1, 0.5, 10, "best")


def test_fit_passes_the_rule_and_the_val_count():
    x, y = blobs()
    for rule, expect in (("last", [True] * 3), ("max", None)):
        model = tiny_model()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
        saves = []
        state = fit(model, TensorBatchLoader(x, y, 32, True), TensorBatchLoader(x, y, 64, False), opt, device=CPU,
                    epochs=3, best_rule=rule, save=lambda s, m, best, why: saves.append((m["val_top1"], best)))
        if expect:
            assert [b for _, b in saves] == expect and state.best_epoch == 3
        else:  # max: best exactly when a val top-1 reaches the highest so far
            running = -1.0
            for top1, best in saves:
                assert best == (top1 >= running)
                running = max(running, top1)
        assert state.best_seen == max(v for v, _ in saves)


def test_batch_events_carry_throughput_and_data_wait():
    x, y = blobs()
    events = []
    model = tiny_model()
    train_one_epoch(model, TensorBatchLoader(x, y, 16, True), torch.optim.SGD(model.parameters(), lr=0.1),
                    device=CPU, epoch=1, epochs=1, state=TrainState(), log_interval=4, emit=events.append)
    batches = [e for e in events if e.kind == "batch_end"]
    assert [b.step for b in batches] == [4, 8, 12, 16]
    assert all(b.samples_per_s > 0 and 0 <= b.data_wait_fraction <= 1 for b in batches)
    assert events[-1].kind == "epoch_end" and events[-1].samples == 256


def test_nan_loss_stops_training():
    x, y = blobs()
    x[5] = float("nan")
    model = tiny_model()
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        train_one_epoch(model, TensorBatchLoader(x, y, 16, False), torch.optim.SGD(model.parameters(), lr=0.1),
                        device=CPU, epoch=1, epochs=1, state=TrainState(), log_interval=2)


def test_stop_request_saves_and_raises():
    x, y = blobs()
    control = TrainControl()
    control.request_stop()
    reasons = []
    with pytest.raises(StopRequested):
        fit(tiny_model(), TensorBatchLoader(x, y, 16, True), None, torch.optim.SGD(tiny_model().parameters(), lr=0.1),
            device=CPU, epochs=2, control=control, save=lambda s, m, b, why: reasons.append(why))
    assert reasons == ["stop"]


def test_save_request_is_served_mid_epoch():
    x, y = blobs()
    control = TrainControl()
    control.request_save()
    reasons = []
    model = tiny_model()
    fit(model, TensorBatchLoader(x, y, 16, True), None, torch.optim.SGD(model.parameters(), lr=0.1), device=CPU,
        epochs=1, control=control, save=lambda s, m, b, why: reasons.append(why))
    assert reasons == ["user", "epoch"]


def test_evaluate_with_class_map():
    x, y = blobs(n=60)
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    fit(model, TensorBatchLoader(x, y, 8, True), None, opt, device=CPU, epochs=10)
    plain = evaluate(model, TensorBatchLoader(x, y, 32, False), device=CPU)
    # the "dataset" names its classes in reverse order; the map restores the model's order
    reversed_y = 2 - y
    mapped = evaluate(model, TensorBatchLoader(x, reversed_y, 32, False), device=CPU,
                      class_map=torch.tensor([2, 1, 0]))
    assert mapped["top1"] == pytest.approx(plain["top1"]) and plain["top1"] > 0.9


@pytest.mark.parametrize("name", ["onecycle", "cosine", "step", "constant"])
def test_the_engine_steps_the_scheduler_once_per_batch(name):
    """fit() steps the scheduler after every optimizer step: the learning rate each batch reports is the
    schedule's own value after that many steps (a per-epoch step would hold it flat within an epoch)."""
    from vistrain.events import BatchEnd

    def schedule(model):
        opt = plugins.registry("optimizer").entry("adamw").load()(model.parameters(), OptimConfig(lr=0.01))
        return opt, plugins.registry("scheduler").entry(name).load()(opt, SchedConfig(step_epochs=1), 15, 5)

    x, y = blobs(n=80)
    model = tiny_model()
    opt, sched = schedule(model)
    seen = []
    fit(model, TensorBatchLoader(x, y, 16, True), None, opt, device=CPU, epochs=3, scheduler=sched, log_interval=1,
        emit=lambda e: seen.append(e.lr) if isinstance(e, BatchEnd) else None)
    ref_opt, ref_sched = schedule(tiny_model())
    expected = []
    for _ in range(15):
        ref_opt.step()
        ref_sched.step()
        expected.append(ref_opt.param_groups[0]["lr"])
    assert seen == pytest.approx(expected, rel=1e-12)
    assert len(set(expected)) == 1 if name == "constant" else len(set(expected)) > 2


@pytest.mark.parametrize("name", ["onecycle", "cosine", "step", "constant"])
@pytest.mark.parametrize("total", [1, 2, 3, 5])
def test_schedulers_survive_very_short_runs(name, total):
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = plugins.registry("scheduler").entry(name).load()(opt, SchedConfig(), total, total)
    for _ in range(total):
        opt.step()
        sched.step()
    assert math.isfinite(opt.param_groups[0]["lr"])


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimizers_take_param_groups(name):
    model = tiny_model()
    groups = [{"params": model[1].parameters(), "lr": 0.001}, {"params": model[3].parameters()}]
    opt = plugins.registry("optimizer").entry(name).load()(groups, OptimConfig(lr=0.1))
    assert [g["lr"] for g in opt.param_groups] == [0.001, 0.1]


def test_rng_state_round_trip():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def _ckpt(model):
    return make_checkpoint(model=model, model_spec={"name": "x", "num_classes": 3, "in_chans": 1, "input_size": 4, "kwargs": {}},
                           input_spec={"channels": 1, "size": 4, "mean": [0.5], "std": [0.5]},
                           classes=["a", "b", "c"], epoch=1, global_step=10,
                           optimizer=torch.optim.AdamW(model.parameters()), rng=rng_state())


def test_checkpoint_loads_with_weights_only(tmp_path):
    model = tiny_model()
    path = tmp_path / "c.pt"
    atomic_torch_save(_ckpt(model), path)
    loaded = load_checkpoint(path)
    assert loaded["classes"] == ["a", "b", "c"] and loaded["global_step"] == 10
    assert torch.equal(loaded["state_dict"]["1.weight"], model[1].weight)
    assert not list(tmp_path.glob(".*tmp*"))


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save(_ckpt(tiny_model()), path)
    before = path.read_bytes()

    def full_disk(obj, fh):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OutputError, match="disk full.*previous checkpoint is intact"):
        atomic_torch_save({"format": "x"}, path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*tmp*"))


def test_one_write_under_several_names_serialises_once(tmp_path, monkeypatch):
    calls = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, fh: (calls.append(1), real_save(obj, fh)))
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    atomic_torch_save(_ckpt(tiny_model()), last, best)
    assert len(calls) == 1
    assert last.read_bytes() == best.read_bytes() and load_checkpoint(best)["global_step"] == 10
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("fallback", ["no O_TMPFILE", "no /proc link"])
def test_several_names_without_an_unnamed_file(tmp_path, monkeypatch, fallback):
    """Where O_TMPFILE is missing (macOS, NFS) or /proc cannot link it, the same names still land whole."""
    if fallback == "no O_TMPFILE":
        monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    else:
        real_link = os.link

        def no_proc(src, dst, *a, **k):
            if str(src).startswith("/proc/"):
                raise OSError(errno.EXDEV, "no /proc link here")
            return real_link(src, dst, *a, **k)

        monkeypatch.setattr(os, "link", no_proc)
    last, best, plain = tmp_path / "teacher-last.pt", tmp_path / "teacher-best.pt", tmp_path / "best.pt"
    for step in (1, 2):  # the second write replaces the first under every name
        atomic_torch_save({**_ckpt(tiny_model()), "global_step": step}, last, best, plain)
        assert {load_checkpoint(p)["global_step"] for p in (last, best, plain)} == {step}
    assert not list(tmp_path.glob(".*tmp*"))


def test_background_commit_lands_in_order_and_reports_after_the_files_exist(tmp_path):
    from vistrain.durable import DurableWriter

    committer, seen = DurableWriter(), []
    path = tmp_path / "last.pt"
    for step in (1, 2, 3):
        ck = {**_ckpt(tiny_model()), "global_step": step}
        committer.save(ck, [path], background=True,
                       then=lambda step=step: seen.append((step, load_checkpoint(path)["global_step"])))
    committer.close()
    # each callback ran once its own file was in place, in order
    assert seen == [(1, 1), (2, 2), (3, 3)]


def test_a_background_commit_that_fails_raises_at_the_next_save_and_keeps_the_old_file(tmp_path):
    from vistrain.durable import DurableWriter

    committer = DurableWriter()
    good, blocked = tmp_path / "last.pt", tmp_path / "best.pt"
    atomic_torch_save(_ckpt(tiny_model()), good)
    before = good.read_bytes()
    blocked.mkdir()
    (blocked / "keep").write_text("x")  # a non-empty folder cannot be replaced by a file
    committer.save({"format": "x"}, [blocked, good], background=True)
    with pytest.raises(OutputError, match="cannot write checkpoint"):
        committer.save({"format": "y"}, [good])
    committer.close()
    assert good.read_bytes() == before  # the write failed before reaching it
    assert (blocked / "keep").read_text() == "x"
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("content, message", [
    (b"garbage", "corrupt"),
    (None, "not found"),
])
def test_bad_checkpoint_files(tmp_path, content, message):
    path = tmp_path / "c.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unsafe_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "vistrain-checkpoint", "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="not a safe torch checkpoint"):
        load_checkpoint(path)


def test_foreign_torch_file_is_not_a_vistrain_checkpoint(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a vistrain checkpoint"):
        load_checkpoint(path)


def test_auto_device_prefers_cuda_then_mps_then_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu")


def test_device_selection():
    assert select_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            select_device("cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        select_device("tpu9")
