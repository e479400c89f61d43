"""The study view (``vistrain attach STUDY_DIR``): a study folder written by hand, replayed and followed live."""

from __future__ import annotations

import json
import sys

import pytest
from test_tui_live import wait_until
from textual.widgets import Static

from vistrain.cli import main
from vistrain.events import EpochEnd, EvalEnd, RunFinished, RunStarted, StageStarted, TuneTrial
from vistrain.tui.study_app import StudyApp
from vistrain.tui.study_state import StudyTrials

PARAMS = [{"optim.lr": 0.003, "train.label_smoothing": 0.1}, {"optim.lr": 0.02, "train.label_smoothing": 0.05},
          {"optim.lr": 0.0011, "train.label_smoothing": 0.15}, {"optim.lr": 0.007, "train.label_smoothing": 0.0}]


def trial(study, number, state, *, budget=3, finished=0, value=None, steps=(), best=None, outcome=None):
    """A ``tune_trial`` event as a worker writes it; *best* is (number, value) of the study's best so far."""
    best_number, best_value = best or (None, None)
    return TuneTrial(study="demo", number=number, state=state, params=PARAMS[number], trials=budget, finished=finished,
                     run_dir=str(study / f"trial-{number:04d}"), value=value, steps=list(steps),
                     outcome=outcome if outcome is not None else {"running": ""}.get(state, state),
                     best_number=best_number, best_value=best_value, worker="host:1")


def run_events(name, val_top1, finished=True):
    """A trial's run: one stage, an epoch end and a val evaluation per value of *val_top1*."""
    events = [RunStarted(run_name=name, run_dir=name, strategy="supervised", model="lenet5", dataset="digits",
                         device="cpu"),
              StageStarted(stage="train", epochs=3, steps_per_epoch=10)]
    for epoch, top1 in enumerate(val_top1, start=1):
        events += epoch_events(epoch, top1)
    if finished:
        events.append(RunFinished(run_name=name, duration_s=1.0, metrics={"best_val_top1": max(val_top1)}))
    return events


def epoch_events(epoch, top1):
    return [EpochEnd(stage="train", epoch=epoch, epochs=3, train_loss=1.0 / epoch, train_top1=top1, lr=0.01,
                     duration_s=0.5, samples=100),
            EvalEnd(stage="train", epoch=epoch, split="val", loss=1.0 / epoch, top1=top1, top5=1.0, num_samples=50)]


def append(path, events):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write("".join(json.dumps(e.to_dict()) + "\n" for e in events))


def make_study(tmp_path, events):
    study = tmp_path / "demo"
    study.mkdir()
    (study / "study.yaml").write_text("study: demo\ntrials: 3\nsampler: tpe\npruner: median\n")
    append(study / "events.jsonl", events(study))
    return study


def finished_study(study):
    """Trial 0 completes (the best), trial 1 is pruned after one epoch, trial 2 fails at once: budget 2, done."""
    return [trial(study, 0, "running"),
            trial(study, 0, "complete", budget=2, finished=1, value=0.9, steps=[0.7, 0.9], best=(0, 0.9)),
            trial(study, 1, "running", budget=2, finished=1, best=(0, 0.9)),
            trial(study, 1, "pruned", budget=2, finished=2, value=0.4, steps=[0.4], best=(0, 0.9)),
            trial(study, 2, "fail", budget=2, finished=2, best=(0, 0.9), outcome="preempted")]


def cells(app, number):
    return [str(cell).strip() for cell in app.table.get_row(str(number))]


@pytest.mark.asyncio
async def test_a_finished_study_shows_its_trials_the_best_line_and_the_best_trials_curves(tmp_path):
    study = make_study(tmp_path, finished_study)
    append(study / "trial-0000" / "events.jsonl", run_events("trial-0000", [0.7, 0.9]))
    append(study / "trial-0001" / "events.jsonl", run_events("trial-0001", [0.4]))
    app = StudyApp(study, refresh_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.curves.series["val_acc"][1] == [pytest.approx(70.0), pytest.approx(90.0)],
                         timeout=10)
        assert app.table.row_count == 3
        assert cells(app, 0) == ["▶★", "0", "✓ complete", "90.00%", "2", "0.003", "0.1"]
        assert cells(app, 1) == ["", "1", "✂ pruned", "40.00%", "1", "0.02", "0.05"]
        assert cells(app, 2)[1:5] == ["2", "✗ preempted", "-", "0"]
        assert app.study.best_line() == "best trial 0: val top-1 90.00% · 2/2 done · 1 pruned · 1 failed"
        assert app.header.state == "finished" and app.study.best_line() in app.header.render().plain
        # trial 1 started last, but a finished study shows its best trial
        assert app.followed.number == 0 and app.curves.border_title.startswith("best trial 0 (complete)")
        await pilot.press("p", "s", "question_mark")  # no training keys in a study; the help says so
        assert [type(screen).__name__ for screen in app.screen_stack[1:]] == ["HelpScreen"]
        assert "there is no pause (p) or save (s)" in app.screen.query_one("#help-box").query(Static)[1].render().plain
        await pilot.press("escape", "q")
    assert app.return_code == 0


@pytest.mark.asyncio
async def test_a_live_study_follows_the_running_trial_and_takes_appended_events(tmp_path):
    def events(study):
        return [trial(study, 0, "running"),
                trial(study, 0, "complete", finished=1, value=0.8, steps=[0.6, 0.8], best=(0, 0.8)),
                trial(study, 1, "running", finished=1, best=(0, 0.8))]

    study = make_study(tmp_path, events)
    append(study / "trial-0000" / "events.jsonl", run_events("trial-0000", [0.6, 0.8]))
    running = study / "trial-0001" / "events.jsonl"
    append(running, run_events("trial-0001", [0.5, 0.7], finished=False))
    app = StudyApp(study, refresh_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: len(app.curves.series["val_acc"][0]) == 2, timeout=10)
        assert app.followed.number == 1 and app.curves.border_title.startswith("trial 1 (running)")
        assert app.curves.series["val_acc"][1] == [pytest.approx(50.0), pytest.approx(70.0)]
        assert cells(app, 1)[:5] == ["▶", "1", "▶ running", "70.00%", "2"]  # its epochs so far, from its run
        assert app.header.state == "following" and app.study.best_line().startswith("best trial 0: val top-1 80.00%")

        append(running, epoch_events(3, 0.85))  # the running trial's file grows
        await wait_until(pilot, lambda: len(app.curves.series["val_acc"][0]) == 3, timeout=10)
        assert cells(app, 1)[3:5] == ["85.00%", "3"]

        append(study / "events.jsonl", [trial(study, 1, "complete", finished=2, value=0.85, steps=[0.5, 0.7, 0.85],
                                              best=(1, 0.85)),
                                        trial(study, 2, "running", finished=2, best=(1, 0.85))])
        await wait_until(pilot, lambda: app.table.row_count == 3, timeout=10)
        assert cells(app, 1)[:5] == ["★", "1", "✓ complete", "85.00%", "3"]
        assert cells(app, 2)[:3] == ["▶", "2", "▶ running"]
        assert app.study.best_line().startswith("best trial 1: val top-1 85.00% · 2/3 done · 1 running")
        # trial 2's run folder has no events yet: its curves start empty, then follow the file once written
        assert app.followed.number == 2 and app.curves.series["val_acc"] == ([], [])
        append(study / "trial-0002" / "events.jsonl", run_events("trial-0002", [0.3], finished=False))
        await wait_until(pilot, lambda: app.curves.series["val_acc"][1] == [pytest.approx(30.0)], timeout=10)
        await pilot.press("q")
    assert app.return_code == 0


@pytest.mark.asyncio
async def test_the_study_view_waits_for_a_study_whose_first_trial_has_not_started(tmp_path):
    study = make_study(tmp_path, lambda study: [])
    (study / "events.jsonl").unlink()
    app = StudyApp(study, refresh_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert app.table.row_count == 0 and "waiting for the first trial" in app.header.render().plain
        append(study / "events.jsonl", [trial(study, 0, "running")])
        await wait_until(pilot, lambda: app.table.row_count == 1, timeout=10)
        await pilot.press("q")


def test_a_retry_marks_the_trial_whose_worker_died_and_run_folders_are_found_in_the_study(tmp_path):
    study = StudyTrials(tmp_path / "demo")
    dead = trial(study.folder, 0, "running")
    dead.run_dir = "runs/demo/trial-0000"  # relative to where vistrain tune was started
    retry = trial(study.folder, 3, "running")
    retry.run_dir = str(study.folder / "trial-0000")  # a retry continues the dead trial's folder
    study.apply(dead)
    assert study.run_dir(study.trials[0]) == study.folder / "trial-0000"
    assert study.to_follow().number == 0
    study.apply(trial(study.folder, 1, "running"))
    study.apply(retry)
    assert study.trials[0].label == "killed" and study.trials[1].state == "running"
    assert study.to_follow().number == 3  # the newest running trial
    assert study.counts() == {"running": 2, "complete": 0, "pruned": 0, "fail": 1}


@pytest.mark.asyncio
async def test_trials_reported_out_of_order_are_sorted_by_number(tmp_path):
    def events(study):
        return [trial(study, 1, "running"), trial(study, 0, "running")]  # two workers, the later asker first

    app = StudyApp(make_study(tmp_path, events), refresh_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.table.row_count == 2, timeout=10)
        assert [str(app.table.get_row_at(i)[1]) for i in range(2)] == ["0", "1"]
        await pilot.press("q")


@pytest.mark.asyncio
async def test_the_table_scrolls_to_the_followed_trial_of_a_long_study(tmp_path):
    def events(study):
        ended = [trial(study, n % 4, "complete", budget=40, finished=n + 1, value=0.5, best=(0, 0.5)) for n in range(30)]
        for number, event in enumerate(ended):
            event.number = number
        running = trial(study, 2, "running", budget=40, finished=30)
        running.number = 30
        return ended + [running]

    app = StudyApp(make_study(tmp_path, events), refresh_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.table.row_count == 31, timeout=10)
        await pilot.pause(0.2)
        assert app.followed.number == 30
        assert app.table.scroll_y >= 31 - app.table.scrollable_content_region.height > 0
        await pilot.press("q")


def test_attach_on_a_study_folder_opens_the_study_view_or_prints_lines(tmp_path, capsys, monkeypatch):
    study = make_study(tmp_path, finished_study)
    assert main(["attach", str(study)]) == 0  # not a terminal: a line per trial event, then the best line
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "trial 0 running: optim.lr=0.003 train.label_smoothing=0.1"
    assert "trial 1 pruned after 1 epoch(s) val top-1 40.00%: optim.lr=0.02 train.label_smoothing=0.05" in out
    assert out[-1].startswith("best trial 0: val top-1 90.00% · 2/2 done")

    opened = []
    monkeypatch.setattr(StudyApp, "run", lambda self: opened.append(self.study.folder))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["attach", str(study)]) == 0
    assert opened == [study]


@pytest.mark.asyncio
async def test_the_retry_of_a_preempted_trial_continues_its_curves_past_the_first_runs_end(tmp_path):
    def events(study):
        retry = trial(study, 1, "running")
        retry.run_dir = str(study / "trial-0000")
        return [trial(study, 0, "running"), trial(study, 0, "fail", outcome="preempted", steps=[0.5]), retry]

    study = make_study(tmp_path, events)
    first = run_events("trial-0000", [0.5])
    first[-1].stopped_early = True  # a stop signal: checkpoint saved, the run ends, a retry resumes it
    append(study / "trial-0000" / "events.jsonl", first + run_events("trial-0000", [0.5, 0.6], finished=False)[1:])
    app = StudyApp(study, refresh_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.curves.series["val_acc"][0]) == 2, timeout=10)
        assert app.followed.number == 1 and app.curves.series["val_acc"][1][-1] == pytest.approx(60.0)
        assert cells(app, 0)[2] == "✗ preempted"
        await pilot.press("q")
