"""The dashboard driving a real (tiny) training run: pause, save now, quit with a checkpoint, errors."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from vistrain.config import resolve_config
from vistrain.engine.control import TrainControl
from vistrain.errors import DataError
from vistrain.runner import execute
from vistrain.tui.app import DashboardApp
from vistrain.tui.screens import ConfirmQuitScreen
from vistrain.tui.widgets.log import EventLog
from vistrain.tui.widgets.progress import ProgressPanel


def tiny_config(tmp_path, **extra):
    """LeNet on sklearn digits, one step per batch event, no loader workers: fast on two cores. 400 epochs: a run
    the keys stop never ends before the test has pressed them (40 epochs took 8 s on an idle machine)."""
    flags = {"data.name": "digits", "train.epochs": 400, "output.dir": str(tmp_path), "output.name": "live",
             "data.num_workers": 0, "train.log_interval": 1, "data.batch_size": 32, "train.threads": 1,
             "output.system_interval_s": 0.5}
    flags.update(extra)
    return resolve_config(None, flags)


def live_app(cfg) -> DashboardApp:
    """The same app ``run_with_dashboard`` builds, for ``run_test``."""
    return DashboardApp(job=lambda bridge, control: execute(cfg, listeners=[bridge], control=control),
                        control=TrainControl())


def finish(app):
    """After the app closed: make sure training ended, then return its result or raise its error."""
    if not app.job_done.is_set():
        app.control.request_stop()
        app.job_done.wait()
    if app.error is not None:
        raise app.error
    assert app.return_code in (0, None), app.return_code
    return app.result


async def wait_until(pilot, predicate, timeout: float = 60.0) -> None:
    """Let the app process messages until *predicate* holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the dashboard"
        await pilot.pause(0.05)


def events_of(run_dir, kind):
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["kind"] == kind]


@pytest.mark.asyncio
async def test_keys_pause_save_and_quit_with_checkpoint(tmp_path):
    app = live_app(tiny_config(tmp_path))
    run_dir = tmp_path / "live"
    async with app.run_test(size=(100, 30)) as pilot:
        progress = app.query_one(ProgressPanel)
        await wait_until(pilot, lambda: progress.global_step >= 3)
        assert app.header.state == "running"

        await pilot.press("p")
        assert app.control.paused and app.header.state == "paused"
        await pilot.pause(0.5)  # the step in flight may still report
        held = progress.global_step
        await asyncio.sleep(1.0)
        await pilot.pause()
        assert progress.global_step == held, "the step counter moved while paused"

        await pilot.press("p")
        await wait_until(pilot, lambda: progress.global_step > held + 2)
        assert not app.control.paused

        await pilot.press("s")
        await wait_until(pilot, lambda: any("checkpoint saved (user)" in line
                                            for line in app.query_one(EventLog).lines_written))

        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuitScreen)
        await pilot.press("n")  # changed our mind: training goes on
        assert not app.quitting and not app.control.stop_requested
        step = progress.global_step
        await wait_until(pilot, lambda: progress.global_step > step)

        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmQuitScreen))
        await pilot.press("y")  # the answer's callback runs after the screen is gone, not inside press()
        await wait_until(pilot, lambda: app.quitting)
        assert app.control.stop_requested
        await wait_until(pilot, lambda: app.job_done.is_set())
        await pilot.pause(0.2)
    result = finish(app)
    assert result.stopped_early
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    saved = [e for e in events_of(run_dir, "checkpoint_saved") if not e["is_best"]]
    assert "user" in [e["reason"] for e in saved]
    # The stop lands mid-epoch (reason "stop") or right after an epoch's own save (reason "epoch"):
    # either way the last checkpoint holds the last step trained.
    assert saved[-1]["reason"] in ("stop", "epoch")
    assert saved[-1]["global_step"] == events_of(run_dir, "batch_end")[-1]["global_step"]
    assert events_of(run_dir, "run_finished")[0]["stopped_early"] is True


@pytest.mark.asyncio
async def test_run_error_closes_app_and_is_reraised(tmp_path):
    cfg = tiny_config(tmp_path, **{"data.name": f"imagefolder:{tmp_path / 'missing'}"})
    app = live_app(cfg)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.job_done.is_set())
        await pilot.pause(0.1)
    assert app.return_code == 2
    with pytest.raises(DataError):
        finish(app)


@pytest.mark.asyncio
async def test_finished_live_run_stays_open_until_q(tmp_path):
    app = live_app(tiny_config(tmp_path, **{"train.epochs": 1, "train.log_interval": 10}))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.run_over and app.result is not None)
        assert app.header.state == "finished" and app.is_running
        assert app.check_action("save_now", ()) is None
        await pilot.press("q")  # nothing to stop any more: no question asked
    result = finish(app)
    assert not result.stopped_early and result.metrics["best_val_top1"] > 0.3
