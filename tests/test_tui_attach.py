"""``vistrain attach``: replay of a finished run, live following of a growing events.jsonl, errors."""

from __future__ import annotations

import json
import time

import pytest
from test_tui_dashboard import T0, consistency_run, recorded_events
from test_tui_live import tiny_config, wait_until

from vistrain.cli import main
from vistrain.errors import DataError
from vistrain.events import RunFinished
from vistrain.runner import execute
from vistrain.tui.app import DashboardApp
from vistrain.runfolder import check_events, existing, follow_events
from vistrain.tui.widgets.consistency import ClassBars, ConsistencyNumbers, ConsistencyPanel
from vistrain.tui.widgets.curves import CurvesPanel
from vistrain.tui.widgets.log import EventLog
from vistrain.tui.widgets.progress import ProgressPanel


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real two-epoch run folder, trained headless."""
    tmp = tmp_path_factory.mktemp("attach")
    return execute(tiny_config(tmp, **{"train.epochs": 2, "train.log_interval": 10})).run_dir


@pytest.mark.asyncio
async def test_attach_finished_run_shows_final_metrics(finished_run):
    final = [json.loads(line) for line in (finished_run / "events.jsonl").read_text().splitlines()]
    last_eval = [e for e in final if e["kind"] == "eval_end" and e["split"] == "val"][-1]
    app = DashboardApp(events_path=events_file_of(finished_run))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.run_over, timeout=20)
        curves = app.query_one(CurvesPanel)
        assert curves.series["val_acc"][0] == [1, 2]
        assert curves.series["val_acc"][1][-1] == pytest.approx(100 * last_eval["top1"])
        assert app.query_one(ProgressPanel).epoch == 2
        assert app.header.state == "finished" and "(attached, view only)" in app.header.render().plain
        test = [e for e in final if e["kind"] == "run_finished"][-1]["metrics"]["test_top1"]  # the held-out split
        assert any("run finished" in line and f"test top-1 {100 * test:.2f}%" in line
                   for line in app.query_one(EventLog).lines_written)
        # training keys are inert here: disabled, and pressing them changes nothing
        assert app.check_action("toggle_pause", ()) is None and app.control is None
        await pilot.press("p", "s")
        assert app.header.state == "finished"
        await pilot.press("question_mark")
        assert "cannot control the training" in str(app.screen.query("Static")[1].render())
        await pilot.press("escape", "q")
    assert app.return_code == 0


@pytest.mark.asyncio
async def test_attach_follows_a_growing_file(tmp_path):
    lines = [json.dumps(e.to_dict()) for e in recorded_events(epochs=3, finished=True)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines[:5]) + "\n")
    app = DashboardApp(events_path=path)
    async with app.run_test(size=(80, 24)) as pilot:
        progress = app.query_one(ProgressPanel)
        await wait_until(pilot, lambda: progress.global_step == 10, timeout=10)
        assert app.header.state == "following" and not app.run_over
        with open(path, "a") as fh:
            fh.write("\n".join(lines[5:-1]) + "\n" + lines[-1][:20])  # the last line is half written
            fh.flush()
            await wait_until(pilot, lambda: progress.global_step == 60, timeout=10)
            await pilot.pause(0.5)
            assert not app.run_over
            fh.write(lines[-1][20:] + "\n")
        await wait_until(pilot, lambda: app.run_over, timeout=10)
        assert app.header.state == "finished"


@pytest.mark.asyncio
async def test_attach_replays_a_consistency_stage_into_the_pseudo_label_panel(tmp_path):
    events = consistency_run() + [RunFinished(run_name="fixmatch-run", duration_s=200.0, time=T0 + 200)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
    app = DashboardApp(events_path=path)  # the default frame timer: the end of the run draws what is pending
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.run_over, timeout=20)
        await pilot.pause()
        panel = app.query_one(ConsistencyPanel)
        assert panel.display and panel.border_title == "pseudo labels · step 120"
        assert app.query_one("#bottom").has_class("-side")
        assert app.query_one(ConsistencyNumbers).render().plain.startswith("mask 90.0% · acc 96.0% (all 82.0%)")
        assert len(panel.series["mask"][0]) == 6
        assert app.query_one(ClassBars).render().plain.splitlines()[10].startswith("c9 ")


def events_file_of(run_dir):
    return check_events(existing(run_dir))


def test_follow_events_stops_at_run_end_and_skips_torn_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    events = recorded_events(epochs=1, finished=True)
    path.write_text("not json\n" + "".join(json.dumps(e.to_dict()) + "\n" for e in events))
    seen = []
    started = time.monotonic()
    assert follow_events(path, seen.append) is True
    assert time.monotonic() - started < 2 and len(seen) == len(events) and isinstance(seen[-1], RunFinished)


def test_attach_errors_are_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(DataError, match="does not exist"):
        events_file_of(tmp_path / "missing")
    assert main(["attach", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no events.jsonl in")


def test_attach_without_terminal_prints_plain_lines(finished_run, capsys):
    assert main(["attach", str(finished_run)]) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "finished in" in out and "\x1b[" not in out
