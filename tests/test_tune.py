"""``vistrain tune``: the space, the budget over several workers, a killed worker's trial, SIGTERM and exact
resume, pruning, the report and --best-config."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from vistrain.errors import ConfigError
from vistrain.tune.space import Space

VISTRAIN = shutil.which("vistrain")
BASE = ["--set", "data.name=digits", "--set", "train.epochs=2", "--set", "data.batch_size=128",
        "--set", "train.threads=1", "--set", "output.system_interval_s=5"]
SPACE = "optim.lr: {log_uniform: [1.0e-3, 3.0e-2]}\ntrain.label_smoothing: {uniform: [0.0, 0.2]}\n"
pytestmark = pytest.mark.timeout(600)


def _env() -> dict:
    return {**os.environ, "VISTRAIN_PLUGINS": "none", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def tune_cmd(tmp_path: Path, *extra: str, study: str = "s") -> list[str]:
    space = tmp_path / "space.yaml"
    if not space.exists():
        space.write_text(SPACE)
    return [VISTRAIN, "tune", "--space", str(space), "--out", str(tmp_path / "studies"), "--study", study,
            *BASE, *extra]


def trials_of(folder: Path) -> list:
    from vistrain.tune.summary import load_study

    return load_study(folder).trials


# --- the space ------------------------------------------------------------------------------------------------


def test_the_space_samples_within_its_distributions():
    space = Space.from_mapping({
        "optim.lr": {"log_uniform": [1e-4, 1e-1]}, "train.label_smoothing": {"uniform": [0.0, 0.2]},
        "data.batch_size": {"choice": [64, 128]}, "train.epochs": {"int": {"range": [2, 10], "step": 2}},
        "augment.spec": {"randaugment": {"n": [1, 3], "m": [3, 15], "base": "flip-h", "ops": "subset"}},
        "strategy.params.threshold": {"uniform": [0.5, 0.99]}})
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    pool = ["identity", "rotate", "solarize", "color"]
    for _ in range(30):
        values = space.sample(study.ask(), pool)
        assert 1e-4 <= values["optim.lr"] <= 1e-1 and 0 <= values["train.label_smoothing"] <= 0.2
        assert values["data.batch_size"] in (64, 128) and values["train.epochs"] in (2, 4, 6, 8, 10)
        policy = values["augment.spec"]
        assert policy["op"] == "rand" and 1 <= policy["n"] <= 3 and 3 <= policy["m"] <= 15
        assert len(policy.get("ops", pool)) >= 2 and set(policy.get("ops", pool)) <= set(pool)
        assert 0.5 <= values["strategy.params.threshold"] <= 0.99
    assert Space.from_mapping(space.to_mapping()).to_mapping() == space.to_mapping()


@pytest.mark.parametrize("entry, message", [
    ({"optim.lrr": {"uniform": [0, 1]}}, "unknown config key 'optim.lrr'. did you mean 'lr'"),
    ({"optim": {"uniform": [0, 1]}}, "'optim' is a section"),
    ({"optim.lr": {"uniform": [1, 0]}}, "low 1 > high 0"),
    ({"optim.lr": {"log_uniform": [0, 1]}}, "needs bounds above 0"),
    ({"optim.lr": {"uniform": ["1e-4", 1]}}, "bounds must be numbers"),
    ({"optim.lr": {"normal": [0, 1]}}, "unknown distribution 'normal'"),
    ({"optim.lr": {"randaugment": {"n": [1, 2]}}}, "randaugment is a distribution of augment.spec"),
    ({"augment.spec": {"randaugment": {"n": [1, 40]}}}, "n must lie in [0, 16]"),
    ({"data.batch_size": {"choice": []}}, "choice takes a non-empty list"),
])
def test_bad_spaces_are_one_clear_error(entry, message):
    with pytest.raises(ConfigError) as err:
        Space.from_mapping(entry)
    assert message in err.value.message


# --- a study end to end, the report --------------------------------------------------------------------------


def test_a_study_runs_its_trials_reports_and_gives_the_best_config(tmp_path):
    proc = subprocess.run(tune_cmd(tmp_path, "--trials", "3", "--sampler", "random", "--pruner", "none"),
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "studies" / "s"
    trials = trials_of(folder)
    assert [t.state for t in trials] == ["complete"] * 3
    for t in trials:  # every trial is an ordinary run folder, valued by its best val top-1
        ckpt = torch.load(Path(t.run_dir) / "checkpoints" / "best.pt", weights_only=True)
        assert t.value == pytest.approx(ckpt["best_metric"])
        saved = yaml.safe_load((Path(t.run_dir) / "config.yaml").read_text())
        assert saved["optim"]["lr"] == pytest.approx(t.params["optim.lr"])
    assert "study s: 3 complete, 0 pruned" in proc.stdout
    out = subprocess.run([VISTRAIN, "tune", "report", str(folder), "--best-config"], capture_output=True,
                         text=True, env=_env())
    assert out.returncode == 0, out.stderr
    best = max(trials, key=lambda t: t.value)
    config = yaml.safe_load(out.stdout)
    assert config["optim"]["lr"] == pytest.approx(best.params["optim.lr"]) and "output" not in config
    out = subprocess.run([VISTRAIN, "tune", "report", str(folder)], capture_output=True, text=True, env=_env())
    assert out.returncode == 0, out.stderr
    html = (folder / "report.html").read_text()
    for section in ("summary", "history", "importances", "trials", "best-configs"):
        assert f'id="{section}"' in html
    # the same command again: the study has its trials, nothing runs; another space is refused
    again = subprocess.run(tune_cmd(tmp_path, "--trials", "3", "--sampler", "random", "--pruner", "none"),
                           capture_output=True, text=True, env=_env(), timeout=120)
    assert again.returncode == 0 and "trial " not in again.stdout.split("study s:")[0].split("\n", 1)[1]
    (tmp_path / "space.yaml").write_text("optim.lr: {log_uniform: [1.0e-4, 1.0e-1]}\n")
    other = subprocess.run(tune_cmd(tmp_path, "--trials", "3", "--sampler", "random", "--pruner", "none"),
                           capture_output=True, text=True, env=_env(), timeout=120)
    assert other.returncode == 2 and "with a different space" in other.stderr


def test_the_pruner_stops_a_trial_after_the_epoch_it_judged(tmp_path, monkeypatch):
    """A pruner that prunes at the second epoch: the trial stops with that epoch's checkpoint, is PRUNED, and its
    steps are the epochs' val top-1; the test split is not evaluated for it."""
    from vistrain.engine.control import TrainControl
    from vistrain.config import resolve_config
    from vistrain.tune import study as st
    from vistrain.tune.worker import TuneSettings, Worker

    class AtSecondEpoch(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.last_step is not None and trial.last_step >= 2

    monkeypatch.setattr(st, "make_pruner", lambda name, epochs, prune_after=0: AtSecondEpoch())
    cfg = resolve_config(None, {"data.name": "digits", "train.epochs": 4, "train.threads": 1})
    settings = TuneSettings("p", tmp_path / "p", "", Space.from_mapping({"optim.lr": {"uniform": [0.005, 0.01]}}),
                            cfg.model_dump(mode="json"), trials=2, sampler="random", pruner="median")
    outcomes = Worker(settings, control=TrainControl(), log=lambda m: None).run()
    assert [o.state for o in outcomes] == ["pruned", "pruned"]
    for o in outcomes:
        assert len(o.steps) == 2
        ckpt = torch.load(o.run_dir / "checkpoints" / "last.pt", weights_only=True)
        assert ckpt["epoch"] == 2
        events = (o.run_dir / "events.jsonl").read_text()
        assert '"split": "test"' not in events
    assert [t.state for t in trials_of(tmp_path / "p")] == ["pruned", "pruned"]


# --- many workers, a killed worker, a stopped trial ---------------------------------------------------------


def test_two_processes_sharing_a_study_finish_exactly_its_trials(tmp_path):
    cmd = tune_cmd(tmp_path, "--trials", "5", "--sampler", "random", "--pruner", "none", "--heartbeat", "1",
                   "--grace", "60")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**_env(), "VISTRAIN_TUNE_WORKER": str(i + 1)}) for i in range(2)]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trials = trials_of(tmp_path / "studies" / "s")
    counted = [t for t in trials if t.state in ("complete", "pruned")]
    assert len(counted) == 5, [(t.number, t.state) for t in trials]
    assert all(t.over_budget for t in trials if t.state == "fail")  # only trials asked at the same moment
    assert all(re.search(r"trial \d+ \(", o) for o in outs), outs  # both workers ran trials
    assert len({t.run_dir for t in counted}) == 5


def _wait_for(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _steps_logged(run_dir: Path) -> int:
    path = run_dir / "events.jsonl"
    return path.read_text().count('"batch_end"') if path.exists() else 0


def test_a_sigkilled_workers_trial_is_failed_once_and_resumed_by_the_next_worker(tmp_path):
    cmd = tune_cmd(tmp_path, "--trials", "3", "--sampler", "random", "--pruner", "none", "--heartbeat", "0.5",
                   "--grace", "3", "--set", "train.log_interval=1", "--set", "checkpoint.every_steps=3")
    victim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    first = tmp_path / "studies" / "s" / "trial-0000"
    target = random.Random().randrange(4, 15)
    _wait_for(lambda: _steps_logged(first) >= target, 120, f"step {target} of trial 0")
    victim.kill()
    victim.wait()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = trials_of(tmp_path / "studies" / "s")
    assert [(t.number, t.state, t.outcome) for t in trials][0] == (0, "fail", "killed")
    assert sum(t.state in ("complete", "pruned") for t in trials) == 3
    retries = [t for t in trials if t.run_dir == str(first) and t.number != 0]
    assert len(retries) == 1 and retries[0].state == "complete"  # failed once, retried once, in its own folder
    assert "resuming trial-0000" in proc.stdout
    assert "resumed" in (first / "events.jsonl").read_text()


def test_a_trial_stopped_by_sigterm_resumes_bitwise_when_the_study_continues(tmp_path):
    # 4 epochs of 10 steps, the signal before step 18: a trial that finished before the signal came (CI saw one
    # with 2 epochs) would leave nothing to resume
    det = ["--set", "train.deterministic=true", "--set", "train.log_interval=1", "--set", "checkpoint.every_steps=4",
           "--set", "train.epochs=4", "--trials", "1", "--sampler", "tpe", "--pruner", "none", "--seed", "3"]
    ref = subprocess.run(tune_cmd(tmp_path, *det, study="ref"), capture_output=True, text=True, env=_env(), timeout=300)
    assert ref.returncode == 0, ref.stderr
    cmd = tune_cmd(tmp_path, *det, study="job")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    run_dir = tmp_path / "studies" / "job" / "trial-0000"
    target = random.Random().randrange(3, 18)
    _wait_for(lambda: _steps_logged(run_dir) >= target, 120, f"step {target}")
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 75, out
    assert "will resume when the study continues" in out
    trials = trials_of(tmp_path / "studies" / "job")
    assert [(t.state, t.outcome) for t in trials] == [("fail", "preempted"), ("waiting", "waiting")]
    cont = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert cont.returncode == 0, cont.stdout + cont.stderr
    trials = trials_of(tmp_path / "studies" / "job")
    assert [t.state for t in trials] == ["fail", "complete"] and trials[1].params == trials[0].params
    got = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    want = torch.load(tmp_path / "studies" / "ref" / "trial-0000" / "checkpoints" / "last.pt", weights_only=True)
    assert got["global_step"] == want["global_step"]
    for key, value in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), f"{key} differs after SIGTERM at step {target}"
    assert trials[1].value == pytest.approx(trials_of(tmp_path / "studies" / "ref")[0].value)


def test_workers_option_runs_several_processes_on_one_machine(tmp_path):
    proc = subprocess.run(tune_cmd(tmp_path, "--trials", "4", "--workers", "2", "--sampler", "random", "--pruner",
                                   "none"), capture_output=True, text=True, env=_env(), timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = trials_of(tmp_path / "studies" / "s")
    assert sum(t.state == "complete" for t in trials) == 4
    workers = {yaml.safe_load((Path(t.run_dir) / "config.yaml").read_text())["train"]["threads"] for t in trials
               if t.state == "complete"}
    assert workers == {max(1, len(os.sched_getaffinity(0)) // 2)}
    assert "study s: 4 complete" in proc.stdout


def test_journal_storage_is_shared_too(tmp_path):
    journal = tmp_path / "shared" / "study.log"
    proc = subprocess.run(tune_cmd(tmp_path, "--trials", "2", "--sampler", "random", "--pruner", "none",
                                   "--storage", f"journal:{journal}"), capture_output=True, text=True, env=_env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert journal.exists() and not (tmp_path / "studies" / "s" / "study.db").exists()
    assert sum(t.state == "complete" for t in trials_of(tmp_path / "studies" / "s")) == 2


def test_reap_stale_fails_a_dead_trial_once_and_enqueues_one_retry():
    from vistrain.tune import study as st

    study = optuna.create_study(direction="maximize")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study._storage.set_trial_user_attr(trial._trial_id, st.HEARTBEAT, 100.0)
    assert st.reap_stale(study, grace=50, now=140.0) == []  # 40 s old: alive
    assert st.reap_stale(study, grace=50, now=200.0) == [0]
    assert st.reap_stale(study, grace=50, now=200.0) == []  # already failed: not again
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "WAITING"]
    retry = study.ask()
    assert retry.suggest_float("x", 0, 1) == trial.params["x"] and st.origin_of(retry) == 0


@pytest.mark.parametrize("sampler, pruner", [("cmaes", "hyperband"), ("tpe", "median")])
def test_every_sampler_and_pruner_runs_a_study(sampler, pruner, tmp_path):
    from vistrain.config import resolve_config
    from vistrain.engine.control import TrainControl
    from vistrain.tune.worker import TuneSettings, Worker

    cfg = resolve_config(None, {"data.name": "digits", "train.epochs": 2, "train.threads": 1})
    space = Space.from_mapping({"optim.lr": {"log_uniform": [1e-3, 3e-2]}, "optim.weight_decay": {"uniform": [0, 0.1]},
                                "data.batch_size": {"choice": [128, 256]}})
    settings = TuneSettings("x", tmp_path / "x", "", space, cfg.model_dump(mode="json"), trials=3, sampler=sampler,
                            pruner=pruner)
    worker = Worker(settings, control=TrainControl(), log=lambda m: None)
    outcomes = worker.run()
    assert len(outcomes) == 3 and all(o.state in ("complete", "pruned") for o in outcomes)
    study = worker.study()
    expected = {"cmaes": optuna.samplers.CmaEsSampler, "tpe": optuna.samplers.TPESampler}[sampler]
    assert isinstance(study.sampler, expected)
    assert isinstance(study.pruner, {"hyperband": optuna.pruners.HyperbandPruner,
                                     "median": optuna.pruners.MedianPruner}[pruner])


def test_prune_after_keeps_slow_starters_until_that_epoch():
    """Five trials at 0.9 in every epoch; a sixth at 0.1: the median pruner stops it at its first epoch by
    default, not before --prune-after's epoch with it. (Hyperband takes it as its minimum resource.)"""
    name = "median"
    from vistrain.tune.study import make_pruner

    def pruned_at(prune_after: int) -> int | None:
        study = optuna.create_study(direction="maximize", pruner=make_pruner(name, 9, prune_after),
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(5):
            t = study.ask()
            for step in range(1, 10):
                t.report(0.9, step)
            study.tell(t, 0.9)
        slow = study.ask()
        for step in range(1, 10):
            slow.report(0.1, step)
            if slow.should_prune():
                return step
        return None

    assert pruned_at(0) is not None and pruned_at(0) < 3
    assert pruned_at(3) is not None and pruned_at(3) >= 3
