"""Exact resume: runs killed at random steps and resumed end with the uninterrupted run's weights, bit for bit."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vistrain.checkpoint import find_resume_checkpoint

STEPS_PER_EPOCH = 20  # digits: 1259 training images in batches of 64
EPOCHS = 2
# deterministic CPU run; a step event and a step checkpoint every few steps
ARGS = ["run", "--headless", "--data", "digits", "--epochs", str(EPOCHS), "--batch-size", "64", "--deterministic",
        "--log-every", "1", "--set", "train.log_interval=1", "--set", "train.threads=1",
        "--set", "checkpoint.every_steps=5", "--set", "checkpoint.keep=2"]
STEP_LINE = re.compile(r"epoch (\d+)/\d+ step (\d+)/(\d+)")


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state_dict"]


def _metric_rows(run: Path) -> list[dict]:
    """metrics.csv without the wall-clock column."""
    import csv

    return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in csv.DictReader((run / "metrics.csv").open())]


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], note: str = "") -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs {note}: max abs diff {(a[key] - b[key]).abs().max()}"


def start(args: list[str], runner: list[str] | None = None) -> subprocess.Popen:
    """A headless run in a subprocess of its own session (a scheduler kills the job's whole process group), its
    output line by line."""
    cmd = (runner or [sys.executable, "-m", "vistrain"]) + [str(a) for a in args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)


def kill_job(proc: subprocess.Popen) -> None:
    """SIGKILL the run and every process it started (DDP workers too), as a scheduler ends a job."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def run_until(proc: subprocess.Popen, global_step: int, timeout: float = 180, stage: str = "") -> list[str]:
    """Read the run's lines until it reports *global_step* (of *stage*, if given) or ends; returns them."""
    lines, deadline = [], time.time() + timeout
    for line in proc.stdout:
        lines.append(line)
        m = STEP_LINE.search(line)
        if m and line.startswith(stage) and (int(m.group(1)) - 1) * int(m.group(3)) + int(m.group(2)) >= global_step:
            break
        if time.time() > deadline:
            break
    return lines


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same run without interruption (in-process, to spare a torch start-up)."""
    from vistrain.cli import main

    out = tmp_path_factory.mktemp("ref")
    assert main(ARGS + ["--out", str(out), "--name", "ref"]) == 0
    return out / "ref"


def test_sigkill_at_random_steps_then_resume_auto_is_bitwise_exact(uninterrupted, tmp_path, cli):
    rng = random.Random()
    total = EPOCHS * STEPS_PER_EPOCH
    kills = sorted(rng.sample(range(3, total - 2), 3))
    args = ARGS + ["--out", tmp_path, "--name", "job", "--resume", "auto"]
    for target in kills:  # the same command each time, as a requeued job would run it
        proc = start(args)
        run_until(proc, target)
        kill_job(proc)
        assert proc.returncode == -signal.SIGKILL
    ckpts = tmp_path / "job" / "checkpoints"
    # a torn write of the newest checkpoint: --resume auto skips it with a warning and takes the previous one
    newest = max((p for p in ckpts.glob("*.pt") if p.name != "best.pt"), key=lambda p: p.stat().st_mtime_ns)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    code, out, err = cli(*args)
    assert code == 0, err
    assert f"warning: skipped {newest}" in err and "corrupt" in err
    assert_bitwise_equal(_weights(uninterrupted), _weights(tmp_path / "job"), f"after SIGKILL at global steps {kills}")
    assert _metric_rows(tmp_path / "job") == _metric_rows(uninterrupted)  # one row per epoch, same numbers
    assert not [p.name for p in ckpts.iterdir() if ".tmp-" in p.name]  # no temporary file left behind
    assert len(list(ckpts.glob("step-*.pt"))) <= 2  # checkpoint.keep


def test_sigterm_prints_the_resume_line_exits_75_and_resumes_exactly(uninterrupted, tmp_path, cli):
    target = random.Random().randrange(2, EPOCHS * STEPS_PER_EPOCH - 2)
    proc = start(ARGS + ["--out", tmp_path, "--name", "job"])
    lines = run_until(proc, target)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    out = "".join(lines) + rest
    assert proc.returncode == 75, out
    run = tmp_path / "job"
    assert f"stopped by SIGTERM: checkpoint saved; resume with: vistrain run --headless --resume {run}" in out
    code, out, err = cli(*ARGS, "--resume", run)
    assert code == 0, err
    assert "resumed inside epoch" in out or "resumed from epoch" in out
    assert_bitwise_equal(_weights(uninterrupted), _weights(run), f"after SIGTERM at global step {target}")
    assert _metric_rows(run) == _metric_rows(uninterrupted)


@pytest.mark.parametrize("option", ["train.amp=bf16", "train.amp=fp16", "train.ema_decay=0.98", "data.sampler=balanced",
                                    "checkpoint.average_last=2"])
def test_precision_and_ema_runs_train_and_resume_bitwise_after_sigkill(option, tmp_path, cli):
    """bf16 autocast on the CPU; fp16 with its gradient scaler; an EMA of the weights; the balanced sampler; the
    average of the last epochs: a run that learns, killed at a random step and resumed, ends bitwise equal to an
    uninterrupted one, with the scaler's state (scale, growth tracker), the EMA (and the training weights beside
    it) and averaged.pt too."""
    args = ARGS + ["--set", option, "--out", tmp_path, "--name"]
    code, out, err = cli(*args, "ref")
    assert code == 0, err
    ref = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=True)
    assert ref["metrics"]["val_top1"] > 0.5  # it trains (ten classes: chance is 0.1)
    assert ("scaler" in ref) == (option == "train.amp=fp16")
    assert ("train_state_dict" in ref) == option.startswith("train.ema")
    target = random.Random().randrange(7, EPOCHS * STEPS_PER_EPOCH - 2)  # after the first step checkpoint (5)
    proc = start(args + ["job", "--resume", "auto"])
    run_until(proc, target)
    kill_job(proc)
    code, out, err = cli(*args, "job", "--resume", "auto")
    assert code == 0, err
    assert "resumed inside epoch" in out or "resumed from epoch" in out
    got = torch.load(tmp_path / "job" / "checkpoints" / "last.pt", weights_only=True)
    for key in ("state_dict", "train_state_dict"):
        if key in ref:
            assert_bitwise_equal(ref[key], got[key], f"{key}, {option}, SIGKILL at global step {target}")
    if "scaler" in ref:
        assert got["scaler"] == ref["scaler"], (got["scaler"], ref["scaler"])
    if option.startswith("checkpoint.average_last"):
        averaged = [torch.load(tmp_path / name / "checkpoints" / "averaged.pt", weights_only=True) for name in ("ref", "job")]
        assert_bitwise_equal(averaged[0]["state_dict"], averaged[1]["state_dict"], f"averaged.pt, SIGKILL at {target}")


def test_find_resume_checkpoint_skips_unloadable_files_newest_first(tmp_path):
    from vistrain.durable import atomic_torch_save

    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    for i, name in enumerate(["step-00000005.pt", "last.pt", "step-00000010.pt", "best.pt"]):
        atomic_torch_save({"format": "vistrain-checkpoint", "format_version": 1, "name": name}, folder / name)
        os.utime(folder / name, ns=(10**18 + i * 10**9,) * 2)
    (folder / "step-00000010.pt").write_bytes(b"PK\x03\x04 torn")
    (folder / ".last.pt.tmp-999999").write_bytes(b"stale")
    ckpt, path, skipped = find_resume_checkpoint(folder)
    assert path.name == "last.pt" and ckpt["name"] == "last.pt"  # best.pt is never a resume point
    assert [(p.name, "corrupt" in why) for p, why in skipped] == [("step-00000010.pt", True)]


def test_resume_config_precedence(tmp_path, cli):
    """Saved config, then --config, then typed flags (even when equal to the default), then --set."""
    import yaml

    from vistrain.config import Config, resolve_config

    saved = resolve_config(None, {"optim.name": "sgd", "train.epochs": 10, "optim.lr": 0.05}).model_dump(mode="json")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({"train": {"epochs": 3}, "optim": {"lr": 0.01}}))
    cfg = resolve_config(cfg_file, {"optim.name": "adamw"}, ["optim.lr=0.02"], base=saved)
    assert isinstance(cfg, Config)
    assert cfg.optim.name == "adamw"  # typed, though adamw is the default
    assert cfg.train.epochs == 3  # from --config, not thrown away
    assert cfg.optim.lr == 0.02  # --set wins
    assert cfg.sched.name == saved["sched"]["name"]


def test_resume_with_no_epochs_left_finishes_and_fewer_is_a_clear_error(tmp_path, cli):
    from vistrain.engine.resume import restore_training
    from vistrain.errors import ConfigError

    code, _, err = cli(*ARGS, "--epochs", "1", "--set", "checkpoint.every_steps=100", "--out", tmp_path, "--name", "r")
    assert code == 0, err
    run = tmp_path / "r"
    before = _weights(run)
    code, out, err = cli("run", "--headless", "--resume", run, "--epochs", "1")
    assert code == 0, err  # exactly as many epochs as trained: nothing left to do, no crash
    assert_bitwise_equal(before, _weights(run))
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    ckpt["epoch"] = 3
    with pytest.raises(ConfigError, match="already trained 3 epoch.*--epochs 2 is fewer"):
        restore_training(ckpt, model=torch.nn.Linear(2, 2), epochs=2)


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_scheduler_signals_request_a_stop_and_are_restored(sig):
    from vistrain.cli.run import _stop_on_signals
    from vistrain.engine.control import TrainControl

    before = signal.getsignal(sig)
    control, received = TrainControl(), []
    with _stop_on_signals(control, received):
        os.kill(os.getpid(), sig)
        deadline = time.time() + 5
        while not control.stop_requested and time.time() < deadline:
            time.sleep(0.01)
    assert control.stop_requested and received == [sig]
    assert signal.getsignal(sig) == before


def test_noisy_student_killed_in_the_teacher_and_the_student_resumes_bitwise(tmp_path, cli):
    """Multi-stage: a kill while the teacher trains and one while the student does; the finished
    teacher is loaded, not retrained, and the pseudo-label hash is kept in the student's checkpoints."""
    args = ["run", "--headless", "--data", "digits", "--labels-per-class", "20", "--strategy", "noisy-student",
            "--set", "strategy.params.iterations=1", "--set", "strategy.params.teacher_epochs=4",
            "--set", "strategy.params.student_epochs=1", "--set", "strategy.params.threshold=0.05",
            "--batch-size", "32", "--deterministic", "--log-every", "1", "--set", "train.log_interval=1",
            "--set", "train.threads=1", "--set", "checkpoint.every_steps=3", "--out", tmp_path, "--name"]
    assert cli(*args, "ref")[0] == 0
    rng = random.Random()
    # past each stage's first step checkpoint (step 3), so each kill resumes inside its stage
    for stage, target in (("teacher", rng.randrange(4, 26)), ("student1", rng.randrange(4, 40))):
        proc = start(args + ["job", "--resume", "auto"])
        lines = run_until(proc, target, stage=stage)
        kill_job(proc)
        assert any(line.startswith(stage) for line in lines), "".join(lines[-5:])
    code, out, err = cli(*args, "job", "--resume", "auto")
    assert code == 0, err
    assert "stage teacher finished before the interruption" in out
    assert "of stage student1" in out  # the last resume continued inside the student's training
    assert_bitwise_equal(_weights(tmp_path / "ref"), _weights(tmp_path / "job"), f"noisy-student, kills {target}")
    last = torch.load(tmp_path / "job" / "checkpoints" / "last.pt", weights_only=True)
    ref = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=True)
    assert last["stage"] == "student1" and last["stage_state"]["labels_hash"] == ref["stage_state"]["labels_hash"]
    assert _metric_rows(tmp_path / "job") == _metric_rows(tmp_path / "ref")
@pytest.fixture(scope="module")
def transfer_source(tmp_path_factory):
    """A LeNet-5 trained one epoch on digits: the transfer source."""
    from vistrain.cli import main

    out = tmp_path_factory.mktemp("source")
    assert main(["run", "--headless", "--data", "digits", "--epochs", "1", "--out", str(out), "--name", "src"]) == 0
    return out / "src" / "checkpoints" / "best.pt"


# each strategy on 30 labels per class of the digits (10 steps an epoch at batch 32); its stages in order,
# with the steps each trains (kills land after a stage's first step checkpoint, step 3)
MULTI_STAGE = {
    "distill": (["--strategy", "distill", "--model", "mlp", "--set", "model.kwargs.hidden=64",
                 "--set", "strategy.params.teacher_model=lenet5", "--set", "strategy.params.teacher_epochs=2"],
                [("teacher", 20), ("student", 20)]),
    # DKD + a FitNets adapter (trained beside the student, restored from the checkpoint) + function matching (mixup)
    "distill-dkd-fitnet-mixup": (["--strategy", "distill", "--model", "mlp", "--set", "model.kwargs.hidden=64",
                                  "--set", "strategy.params.teacher_model=lenet5", "--set", "strategy.params.teacher_epochs=2",
                                  "--set", "strategy.params.loss=dkd", "--set", "strategy.params.feature=fitnet",
                                  "--set", "strategy.params.mix=mixup"],
                                 [("teacher", 20), ("student", 20)]),
    "transfer": (["--strategy", "transfer", "--set", "strategy.params.freeze_epochs=1"],  # probe, then fine-tune
                 [("head", 10), ("finetune", 20)]),
    # FixMatch (mu 2: 14 steps an epoch), then its self-training round's student (every image accepted: 40 an epoch)
    "fixmatch-selftrain": (["--strategy", "fixmatch", "--set", "strategy.params.mu=2", "--set", "strategy.params.threshold=0.5",
                            "--set", "strategy.params.selftrain=pseudo-label", "--set", "strategy.params.selftrain_threshold=0",
                            "--set", "strategy.params.selftrain_epochs=1"],
                           [("fixmatch", 28), ("student", 40)]),
    "pseudo-label": (["--strategy", "pseudo-label", "--set", "data.labels_per_class=20",
                      "--set", "strategy.params.teacher_epochs=3", "--set", "strategy.params.threshold=0.05"],
                     [("teacher", 21), ("student", 20)]),
}


@pytest.mark.parametrize("strategy", sorted(MULTI_STAGE))
def test_multi_stage_strategies_killed_in_each_stage_resume_bitwise(strategy, tmp_path, cli, request):
    """SIGKILL at a random step of each stage, the same command with --resume auto each time: the finished
    stages are loaded, the interrupted one continues inside its epoch, and the run ends as an uninterrupted one."""
    extra, stages = MULTI_STAGE[strategy]
    if strategy == "transfer":
        extra = extra + ["--set", f"strategy.params.source={request.getfixturevalue('transfer_source')}"]
    args = ["run", "--headless", "--data", "digits", "--labels-per-class", "30", "--epochs", "2",
            "--batch-size", "32", "--deterministic", "--log-every", "1", "--set", "train.log_interval=1",
            "--set", "train.threads=1", "--set", "checkpoint.every_steps=3", *extra, "--out", tmp_path, "--name"]
    assert cli(*args, "ref")[0] == 0
    rng = random.Random()
    kills = [(stage, rng.randrange(4, steps - 1)) for stage, steps in stages]
    for stage, target in kills:
        proc = start(args + ["job", "--resume", "auto"])
        lines = run_until(proc, target, stage=stage)
        kill_job(proc)
        assert any(line.startswith(stage) for line in lines), "".join(lines[-5:])
    code, out, err = cli(*args, "job", "--resume", "auto")
    assert code == 0, err
    assert f"stage {stages[0][0]} finished before the interruption" in out
    assert f"of stage {stages[-1][0]}" in out  # the last resume continued inside the last stage
    note = f"{strategy}, kills {kills}"
    for name in [f"{stage}-last.pt" for stage, _ in stages] + ["last.pt", "best.pt"]:
        ref = torch.load(tmp_path / "ref" / "checkpoints" / name, weights_only=True)["state_dict"]
        got = torch.load(tmp_path / "job" / "checkpoints" / name, weights_only=True)["state_dict"]
        assert_bitwise_equal(ref, got, f"in {name}, {note}")
    assert _metric_rows(tmp_path / "job") == _metric_rows(tmp_path / "ref"), note


@pytest.fixture(scope="module")
def digits_on_disk(tmp_path_factory):
    """The 8x8 digits as a PNG folder, and the same folder packed as WebDataset shards (JPEG, lossy)."""
    import cv2

    from vistrain.cli import main
    from vistrain.config import DataConfig
    from vistrain.data.prepare import load_source

    root = tmp_path_factory.mktemp("digits-files")
    src = load_source("digits", DataConfig())
    for i in range(len(src.train)):
        folder = root / "png" / src.classes[int(src.train.labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:04d}.png"), src.train.image(i)[..., 0])
    assert main(["datasets", "pack", f"imagefolder:{root / 'png'}", "--to", str(root / "shards"), "--size", "8",
                 "--shard-mb", "0.1"]) == 0
    count = len(list((root / "shards").glob("train-*.tar")))
    return {"imagefolder": f"imagefolder:{root / 'png'}",
            "webdataset": f"webdataset:{root / 'shards'}/train-{{000000..{count - 1:06d}}}.tar"}


@pytest.mark.parametrize("data", ["digits", "imagefolder", "webdataset"])
def test_a_two_rank_run_killed_at_random_steps_resumes_bitwise(data, tmp_path, cli, request):
    """``--nproc 2``: the job (launcher and both workers) is SIGKILLed twice at random steps; the same command
    with --resume auto ends with the weights of an uninterrupted 2-rank run, every rank's RNG and loader
    position restored from the checkpoint. In memory (digits), from a folder of files and from WebDataset
    shards read through loader workers: shards resume exactly as a folder does."""
    spec = "digits" if data == "digits" else request.getfixturevalue("digits_on_disk")[data]
    files = [] if data == "digits" else ["--set", "data.num_workers=1"]
    args = ARGS + ["--nproc", "2", "--batch-size", "32", "--augment", "affine-deg10-shift2", "--data", spec, *files,
                   "--out", tmp_path, "--name"]
    assert cli(*args, "ref")[0] == 0
    rng = random.Random()
    # the 40 steps take well under a second: keep a margin. The second kill comes after step 26's line, which is
    # printed only once step 25's checkpoint is written, so the last resume starts inside epoch 2 (a kill at step
    # 24 or 25 left only the epoch-1 checkpoint of step 20, and CI saw 'resumed from epoch 1' instead)
    kills = [rng.randrange(4, 18), rng.randrange(26, 34)]
    for target in kills:
        proc = start(args + ["job", "--resume", "auto"])
        run_until(proc, target)
        kill_job(proc)
    proc = start(args + ["job", "--resume", "auto"])  # the workers print to the launcher's own stdout
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "resumed inside epoch" in out, out
    assert_bitwise_equal(_weights(tmp_path / "ref"), _weights(tmp_path / "job"), f"2 ranks, {data}, kills at {kills}")
    assert _metric_rows(tmp_path / "job") == _metric_rows(tmp_path / "ref")


def test_metrics_rows_past_the_checkpoint_are_dropped_on_resume(tmp_path):
    import csv

    from vistrain.listeners.csv import COLUMNS, trim_after_checkpoint

    path = tmp_path / "metrics.csv"

    def write(rows):
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows({"stage": s, "epoch": e} for s, e in rows)

    def read():
        return [(r["stage"], int(r["epoch"])) for r in csv.DictReader(path.open())]

    write([("a", 1), ("a", 2), ("b", 1), ("b", 2)])
    assert trim_after_checkpoint(path, "b", 1) == 1 and read() == [("a", 1), ("a", 2), ("b", 1)]
    assert trim_after_checkpoint(path, "b", 0) == 1 and read() == [("a", 1), ("a", 2)]
    assert trim_after_checkpoint(path, "a", 2) == 0 and read() == [("a", 1), ("a", 2)]


def test_a_resume_with_other_steps_per_epoch_continues_the_schedule_at_the_epoch():
    """E.g. a DDP checkpoint (2 ranks, 5 steps/epoch) resumed in one process (10 steps/epoch)."""
    from vistrain.engine.resume import restore_training
    from vistrain.errors import ConfigError

    def training(total):
        model = torch.nn.Linear(2, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total)

    model, opt, sched = training(25)
    for _ in range(5):
        opt.step()
        sched.step()
    ckpt = {"epoch": 1, "global_step": 5, "epoch_step": 0, "steps_per_epoch": 5, "stage_epochs": 5,
            "state_dict": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    model2, opt2, sched2 = training(50)
    state = restore_training(ckpt, model=model2, optimizer=opt2, scheduler=sched2, epochs=5, steps_per_epoch=10)
    assert state.global_step == 10 and sched2.last_epoch == 10
    for _ in range(40):  # the rest of the run steps to the schedule's end, not past it
        opt2.step()
        sched2.step()
    with pytest.raises(ConfigError, match="inside an epoch of 5 steps"):
        restore_training({**ckpt, "epoch_step": 2}, model=model2, epochs=5, steps_per_epoch=10)


def test_step_checkpoints_every_n_steps_or_m_minutes():
    from vistrain.engine.loop import StepCheckpoints

    now = [0.0]
    every = StepCheckpoints(every_steps=4, every_minutes=1.0, clock=lambda: now[0])
    due = []
    for step in range(1, 11):
        now[0] += 10.0 if step != 6 else 50.0  # step 6 crosses the minute since the save at step 4
        if every.due(step):
            due.append(step)
    assert due == [4, 6, 8]
    assert not StepCheckpoints().due(100)


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path):
    from vistrain.durable import clean_stale_temps

    dead = tmp_path / ".last.pt.tmp-999999999"
    alive = tmp_path / f".last.pt.tmp-{os.getppid()}"  # a writer that still runs keeps its file
    for p in (dead, alive):
        p.write_bytes(b"partial")
    assert clean_stale_temps(tmp_path) == [dead]
    assert alive.exists() and not dead.exists()


def test_the_highest_val_so_far_survives_a_resume():
    # the 1se rule measures from the highest val top-1 so far, which can be above best.pt's own
    from vistrain.checkpoint import make_checkpoint
    from vistrain.engine.loop import TrainState
    from vistrain.engine.resume import restore_training

    model = torch.nn.Linear(2, 2)
    state = TrainState(epoch=3, global_step=3, best_metric=0.95, best_epoch=3, best_seen=0.97, steps_per_epoch=1)
    ckpt = make_checkpoint(model=model, model_spec={}, input_spec={}, classes=[], epoch=3, global_step=3, state=state,
                           stage_epochs=5)
    back = restore_training(ckpt, model=torch.nn.Linear(2, 2), epochs=5, steps_per_epoch=1)
    assert (back.best_metric, back.best_epoch, back.best_seen) == (0.95, 3, 0.97)
