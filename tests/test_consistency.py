"""FixMatch and FlexMatch: the loss against hand computations, FlexMatch's thresholds against the paper's formula,
the views, the statistics a run emits, and exact resume after SIGKILL and SIGTERM at random steps."""

from __future__ import annotations

import json
import math
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from test_resume import _metric_rows, assert_bitwise_equal, kill_job, run_until, start
from vistrain.data.pipeline import InputSpec
from vistrain.strategies.consistency import (ConsistencyLoss, FlexMatchState, TwoViews, learning_status, mapped,
                                             FixMatchParams, pool_index, smoothing_cap, strong_spec)


def _codes(index: list[int]) -> torch.Tensor:
    return -(torch.tensor(index) + 1)


# --- the loss ------------------------------------------------------------------------------------


def test_the_unlabelled_loss_is_zero_when_no_pseudo_label_passes_the_threshold():
    torch.manual_seed(0)
    n, classes = 4, 5
    weak = torch.zeros(n, classes)  # uniform: confidence 0.2 < tau
    strong = torch.randn(n, classes, requires_grad=True)
    labelled = torch.randn(3, classes, requires_grad=True)
    y = torch.tensor([0, 3, 1])
    loss = ConsistencyLoss(n, classes, threshold=0.95, lambda_u=1.0)
    logits = torch.cat([weak, strong, labelled])
    total = loss(logits, torch.cat([_codes([0, 1, 2, 3]), _codes([0, 1, 2, 3]), y]))
    assert torch.allclose(total, F.cross_entropy(labelled, y))
    total.backward()
    assert torch.count_nonzero(strong.grad) == 0


def test_the_loss_equals_a_hand_computation_on_a_tiny_batch():
    # two unlabelled images (3 classes), one labelled; tau 0.6, lambda 2, label smoothing 0.1
    weak = torch.tensor([[3.0, 0.0, 0.0], [0.2, 0.0, 0.1]])  # softmax max: 0.909 (class 0) and 0.367 (class 0)
    strong = torch.tensor([[0.5, 1.0, -1.0], [2.0, 0.0, 0.0]])
    labelled = torch.tensor([[0.0, 2.0, 1.0]])
    y = torch.tensor([2])
    loss = ConsistencyLoss(2, 3, threshold=0.6, lambda_u=2.0, label_smoothing=0.1)
    got = loss(torch.cat([weak, strong, labelled]), torch.cat([_codes([5, 9]), _codes([5, 9]), y]))

    def log_softmax(row):
        row = np.asarray(row, np.float64)
        return row - math.log(np.exp(row).sum())

    # labelled: smoothed CE = -(0.9 * log p_2 + 0.1/3 * sum log p)
    lp = log_softmax([0.0, 2.0, 1.0])
    supervised = -(0.9 * lp[2] + (0.1 / 3) * lp.sum())
    # unlabelled: only image 0 passes (0.909 >= 0.6), pseudo-label 0; the mean is over both images
    unsupervised = (-log_softmax([0.5, 1.0, -1.0])[0] + 0.0) / 2
    assert got.item() == pytest.approx(supervised + 2.0 * unsupervised, rel=1e-6)


def test_the_statistics_count_masked_images_and_their_accuracy_against_the_true_labels():
    events = []
    truth = torch.tensor([0, 1, 2, -1])  # image 3's label is unknown
    loss = ConsistencyLoss(3, 3, threshold=0.9, lambda_u=1.0, truth=truth, emit=events.append, class_names=list("abc"))
    weak = torch.tensor([[9.0, 0, 0], [9.0, 0, 0], [0, 0, 0.1]])  # images 0, 1 confident class 0; image 3 not
    logits = torch.cat([weak, torch.zeros(3, 3), torch.zeros(1, 3)])
    loss(logits, torch.cat([_codes([0, 1, 3]), _codes([0, 1, 3]), torch.tensor([0])]))
    from vistrain.events import BatchEnd

    loss.observe(BatchEnd(stage="fixmatch", epoch=1, epochs=1, step=1, steps_per_epoch=1, global_step=7, loss=0.0,
                          lr=0.1, samples_per_s=0.0, data_wait_s=0.0, step_time_s=1.0))
    (stats,) = events
    assert stats.global_step == 7 and stats.images == 3
    assert stats.mask_rate == pytest.approx(2 / 3)
    assert stats.accuracy == pytest.approx(0.5)  # of the two accepted (true labels 0 and 1), one is right
    assert stats.accuracy_all == pytest.approx(0.5)  # image 3 has no true label: left out
    assert stats.class_accepted == [2, 0, 0] and stats.class_thresholds == [0.9, 0.9, 0.9]
    loss.observe(BatchEnd(stage="fixmatch", epoch=1, epochs=1, step=2, steps_per_epoch=2, global_step=8, loss=0.0,
                          lr=0.1, samples_per_s=0.0, data_wait_s=0.0, step_time_s=1.0))
    assert events[-1].images == 0  # the interval's sums were reset


def test_the_smoothing_cap_is_the_largest_target_probability_of_a_smoothed_label():
    target = torch.full((10,), 0.1 / 10)
    target[3] += 0.9  # what cross_entropy(label_smoothing=0.1) aims at for class 3 of 10
    assert smoothing_cap(0.1, 10) == pytest.approx(float(target.max())) == pytest.approx(0.91)
    assert smoothing_cap(0.0, 10) == 1.0


def test_the_strong_view_is_the_papers_randaugment_and_cutout_after_the_weak_ops():
    from types import SimpleNamespace

    from vistrain.augment.pipeline import build_pipeline

    ctx = SimpleNamespace(config=SimpleNamespace(augment=SimpleNamespace(spec="affine"),
                                                 strategy=SimpleNamespace(name="fixmatch")))
    spec = strong_spec(ctx, FixMatchParams())
    assert spec == "affine,rand-n2-m30-mstd101,cutout-frac0.5-fmin0"  # magnitudes from [0, 30], side from [0, 0.5]
    steps = build_pipeline(spec).steps
    assert steps[1].op.mstd > 100 and (steps[2].op.fmin, steps[2].op.frac) == (0.0, 0.5)
    fixed = FixMatchParams(randaugment_m=10, randaugment_sample=False, cutout=0.25, cutout_min=0.25)
    assert strong_spec(ctx, fixed) == "affine,rand-n2-m10,cutout-frac0.25"
    assert strong_spec(ctx, FixMatchParams(randaugment_n=0, cutout=0)) == "affine"
    assert strong_spec(ctx, FixMatchParams(strong_augment="rand-n1-m5")) == "rand-n1-m5"


def test_pool_indices_round_trip_through_negative_targets():
    assert pool_index(_codes([0, 7, 41])).tolist() == [0, 7, 41]


# --- FlexMatch -----------------------------------------------------------------------------------


def test_flexmatch_thresholds_follow_the_papers_formula():
    # sigma = (3, 1, 0); 6 of the 10 images never passed tau
    selected = torch.tensor([0, 0, 0, 1, -1, -1, -1, -1, -1, -1])
    warm = learning_status(selected, 3, warmup=True)
    assert torch.allclose(warm, torch.tensor([3 / 6, 1 / 6, 0.0], dtype=torch.float64))  # normalised by max(max sigma, unused) = 6
    cold = learning_status(selected, 3, warmup=False)
    assert torch.allclose(cold, torch.tensor([1.0, 1 / 3, 0.0], dtype=torch.float64))  # by max sigma = 3
    beta = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert torch.allclose(mapped(beta, "convex"), beta / (2 - beta))
    assert torch.allclose(mapped(beta, "linear"), beta)
    assert torch.allclose(mapped(beta, "concave"), torch.log2(beta + 1))
    state = FlexMatchState(10, 3, threshold=0.95, warmup=True, mapping="convex")
    state.selected.copy_(selected)
    assert torch.allclose(state.thresholds(), 0.95 * torch.tensor([0.5 / 1.5, (1 / 6) / (2 - 1 / 6), 0.0], dtype=torch.float64))
    # nothing selected yet: every threshold is 0 (the paper's start: all pseudo-labels count)
    assert torch.count_nonzero(FlexMatchState(4, 3, threshold=0.95, warmup=True, mapping="convex").thresholds()) == 0


def test_flexmatch_records_the_latest_pseudo_label_of_the_images_above_tau():
    state = FlexMatchState(5, 3, threshold=0.9, warmup=False, mapping="convex")
    state.update(torch.tensor([0, 2, 4]), torch.tensor([1, 2, 0]), torch.tensor([True, False, True]))
    assert state.selected.tolist() == [1, -1, -1, -1, 0]
    state.update(torch.tensor([0, 2]), torch.tensor([2, 2]), torch.tensor([True, True]))
    assert state.selected.tolist() == [2, -1, 2, -1, 0]
    # the loss's mask uses the class thresholds: class 2 has the most (2) -> tau * M(1); class 1 none -> 0
    loss = ConsistencyLoss(2, 3, threshold=0.9, lambda_u=1.0, flex=state)
    assert torch.allclose(loss.class_thresholds(torch.device("cpu")),
                          torch.tensor([0.9 * (0.5 / 1.5), 0.0, 0.9], dtype=torch.float64))


# --- the views -----------------------------------------------------------------------------------


def test_the_views_keep_the_layout_and_a_pipeline_without_tensor_form_goes_per_image():
    from vistrain.augment.pipeline import build_pipeline

    spec = InputSpec(1, 8, (0.5,), (0.25,))
    images = (torch.rand(3 + 2, 1, 8, 8) - 0.5) / 0.25
    targets = torch.cat([_codes([4, 1, 0]), torch.tensor([3, 5])])
    views = TwoViews(3, None, build_pipeline("flip-h-p1"), spec, torch.device("cpu"))
    x, y = views(images, targets)
    assert x.shape == (8, 1, 8, 8) and y.tolist() == [-5, -2, -1, -5, -2, -1, 3, 5]
    assert torch.equal(x[:3], images[:3]) and torch.equal(x[6:], images[3:])  # no weak ops: the images as given
    raw = (images[:3] * 0.25 + 0.5) * 255
    assert torch.allclose(x[3:6] * 0.25 * 255 + 0.5 * 255, raw.flip(-1), atol=1e-3)  # the tensor flip

    class PerImageOnly:  # a plugin op without a tensor form
        def on_tensors(self):
            return None

        def __call__(self, img, rng):
            return 255 - img

    views = TwoViews(3, PerImageOnly(), None, spec, torch.device("cpu"))
    x, _ = views(images, targets)
    assert torch.allclose(x[:3] * 0.25 * 255 + 0.5 * 255, 255 - raw.round(), atol=1e-3)


# --- runs ----------------------------------------------------------------------------------------

# digits: 30 labels per class (300 images, batch 16) and 959 unlabelled (mu 7: 112 per step, 8 steps an epoch)
RUN = ["run", "--headless", "--data", "digits", "--labels-per-class", "30", "--epochs", "2", "--batch-size", "16",
       "--deterministic", "--log-every", "1", "--set", "train.log_interval=2", "--set", "train.threads=1",
       "--set", "checkpoint.every_steps=3"]


def _events(run: Path, kind: str) -> list[dict]:
    return [e for e in map(json.loads, (run / "events.jsonl").read_text().splitlines()) if e["kind"] == kind]


@pytest.mark.parametrize("strategy", ["fixmatch", "flexmatch"])
def test_a_run_emits_statistics_every_logging_interval(strategy, tmp_path, cli):
    code, out, err = cli(*RUN, "--strategy", strategy, "--set", "strategy.params.threshold=0.2", "--out", tmp_path,
                         "--name", "r")
    assert code == 0, err
    stats = _events(tmp_path / "r", "consistency_stats")
    batches = _events(tmp_path / "r", "batch_end")
    assert [s["global_step"] for s in stats] == [b["global_step"] for b in batches]  # one after each progress line
    assert sum(s["images"] for s in stats) == 16 * 112
    assert all(0 <= s["mask_rate"] <= 1 and s["accuracy_all"] is not None for s in stats)
    assert any(s["mask_rate"] > 0 for s in stats)
    thresholds = [s["class_thresholds"] for s in stats]
    if strategy == "fixmatch":
        assert all(t == [0.2] * 10 for t in thresholds)
    else:  # below tau while classes are still being learnt
        assert all(max(t) <= 0.2 for t in thresholds) and any(min(t) < 0.2 for t in thresholds)
    epoch = [e for e in _events(tmp_path / "r", "epoch_end")]
    assert all(0 <= e["train_top1"] <= 1 for e in epoch)
    # the run's label smoothing (0.1 by default) would cap the labelled target at 0.91: not applied, and said
    assert any("train.label_smoothing 0.1 is not applied" in e["message"] for e in _events(tmp_path / "r", "log"))
    ck = torch.load(tmp_path / "r" / "checkpoints" / "best.pt", weights_only=True)
    assert ck["stage"] == strategy
    assert ("flexmatch" in (ck.get("extra_modules") or {})) == (strategy == "flexmatch")


@pytest.mark.parametrize("strategy, loaders", [("fixmatch", "device"), ("flexmatch", "device"),
                                               ("fixmatch", "per-image")])
def test_killed_at_random_steps_then_resume_auto_is_bitwise_exact(strategy, loaders, tmp_path, cli):
    """SIGKILL, then SIGTERM, at random steps; the same command with --resume auto ends as an uninterrupted run,
    FlexMatch's per-image state and the EMA included; with the loaders on the device and per image."""
    args = [*RUN, "--strategy", strategy, "--set", "strategy.params.threshold=0.5",
            "--set", f"data.device_augment={str(loaders == 'device').lower()}", "--out", tmp_path, "--name"]
    assert cli(*args, "ref")[0] == 0
    rng = random.Random()
    kills = [(signal.SIGKILL, rng.randrange(4, 9)), (signal.SIGTERM, rng.randrange(10, 15))]
    for sig, target in kills:
        proc = start(args + ["job", "--resume", "auto"])
        run_until(proc, target, stage=strategy)
        if sig == signal.SIGKILL:
            kill_job(proc)
        else:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=120)
            assert proc.returncode == 75, f"SIGTERM exit {proc.returncode}"
            last = torch.load(tmp_path / "job" / "checkpoints" / "last.pt", weights_only=True)
            if last["epoch_step"]:  # inside an epoch: both sides' positions are saved, so nothing is replayed
                assert {"main", "extra"} <= set(last["loader_state"]), last["loader_state"]
    code, out, err = cli(*args, "job", "--resume", "auto")
    assert code == 0, err
    assert f"of stage {strategy}" in out
    note = f"{strategy}, kills {kills}"
    for name in ("last.pt", "best.pt"):
        ref = torch.load(tmp_path / "ref" / "checkpoints" / name, weights_only=True)
        got = torch.load(tmp_path / "job" / "checkpoints" / name, weights_only=True)
        assert_bitwise_equal(ref["state_dict"], got["state_dict"], f"in {name}, {note}")
        if strategy == "flexmatch":
            assert torch.equal(ref["extra_modules"]["flexmatch"]["selected"], got["extra_modules"]["flexmatch"]["selected"])
    assert _metric_rows(tmp_path / "job") == _metric_rows(tmp_path / "ref"), note


def test_two_ranks_sum_their_statistics_and_save_flexmatchs_record(tmp_path, cli):
    """``--nproc 2``: each rank takes its own mu x B unlabelled images a step, the statistics are summed over both,
    and FlexMatch's per-image record (gathered from both ranks every step) is saved."""
    code, out, err = cli(*RUN, "--strategy", "flexmatch", "--nproc", "2", "--set", "strategy.params.threshold=0.2",
                         "--out", tmp_path, "--name", "ddp")
    assert code == 0, err + out
    stats = _events(tmp_path / "ddp", "consistency_stats")
    steps = _events(tmp_path / "ddp", "stage_started")[0]["steps_per_epoch"]
    assert sum(s["images"] for s in stats) == 2 * steps * 2 * 112  # epochs x steps x ranks x mu*B
    selected = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=True)["extra_modules"]["flexmatch"]["selected"]
    above = sum(sum(s["class_accepted"]) for s in stats)
    assert (selected >= 0).sum() > 0 and above > 0


def test_selftrain_runs_the_two_command_recipe_in_one_run(tmp_path, cli):
    """``strategy.params.selftrain=pseudo-label``: the fixmatch stage is the plain strategy's, bit for bit; its best
    (EMA) model labels the pool exactly as a separate ``pseudo-label`` run with that checkpoint as its teacher does;
    the student trains about as many optimizer steps as the fixmatch stage, and its best.pt is the run's."""
    # mu 1: 59 fixmatch steps an epoch (118 in all); the student's epoch is about 76 steps, so it takes 2
    fixmatch = ["--strategy", "fixmatch", "--set", "strategy.params.threshold=0.2", "--set", "strategy.params.mu=1"]
    selftrain = ["--set", "strategy.params.selftrain=pseudo-label", "--set", "strategy.params.selftrain_threshold=0.3"]
    assert cli(*RUN, *fixmatch, "--out", tmp_path, "--name", "plain")[0] == 0
    code, out, err = cli(*RUN, *fixmatch, *selftrain, "--out", tmp_path, "--name", "one")
    assert code == 0, err
    ckpts = tmp_path / "one" / "checkpoints"
    plain = torch.load(tmp_path / "plain" / "checkpoints" / "best.pt", weights_only=True)
    first = torch.load(ckpts / "fixmatch-best.pt", weights_only=True)
    assert first["stage"] == "fixmatch"
    assert_bitwise_equal(plain["state_dict"], first["state_dict"], "the fixmatch stage with and without selftrain")
    assert torch.load(ckpts / "best.pt", weights_only=True)["stage"] == "student"
    stages = _events(tmp_path / "one", "stage_started")
    assert [s["stage"] for s in stages] == ["fixmatch", "student"]
    fixmatch_steps = stages[0]["epochs"] * stages[0]["steps_per_epoch"]
    student_steps = stages[1]["epochs"] * stages[1]["steps_per_epoch"]
    assert stages[1]["epochs"] > 1 and abs(student_steps - fixmatch_steps) <= stages[1]["steps_per_epoch"] / 2, \
        (fixmatch_steps, student_steps)
    # the recipe of docs/strategies.md: a pseudo-label run whose teacher is the fixmatch model
    code, _, err = cli(*RUN, "--strategy", "pseudo-label", "--set", f"strategy.params.teacher={ckpts / 'fixmatch-best.pt'}",
                       "--set", "strategy.params.threshold=0.3", "--set", f"strategy.params.student_epochs={stages[1]['epochs']}",
                       "--out", tmp_path, "--name", "two")
    assert code == 0, err
    rounds = [[{k: v for k, v in e.items() if k != "time"} for e in _events(tmp_path / name, "pseudo_label_stats")]
              for name in ("one", "two")]
    assert len(rounds[0]) == 1 and rounds[0] == rounds[1]
    assert 0 < rounds[0][0]["acceptance_rate"] < 1  # the threshold filtered: the comparison is not vacuous
    assert _events(tmp_path / "two", "stage_started")[0]["steps_per_epoch"] == stages[1]["steps_per_epoch"]


def test_a_selftrain_threshold_that_accepts_nothing_names_its_own_setting(tmp_path, cli):
    code, out, err = cli(*RUN, "--strategy", "fixmatch", "--epochs", "1", "--set", "strategy.params.selftrain=pseudo-label",
                         "--set", "strategy.params.selftrain_threshold=1.0", "--out", tmp_path, "--name", "r")
    assert code == 2, out + err
    line = err.strip().splitlines()[-1]
    assert "accepted none of 959 unlabelled images" in line and "lower strategy.params.selftrain_threshold" in line
    assert "Traceback" not in err
    assert (tmp_path / "r" / "checkpoints" / "fixmatch-best.pt").exists()  # the finished stage is kept
