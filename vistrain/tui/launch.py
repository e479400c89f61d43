"""Front-end entry points: ``vistrain run`` with the dashboard, and ``vistrain attach`` (a run or a tune study)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from vistrain import runfolder


def run_with_dashboard(cfg, *, control=None, resume: dict | None = None, run_dir: Path | None = None,
                       headless_size: str | None = None) -> Any:
    """Train *cfg* here, in the main thread as headless, with the dashboard drawn by a child process.

    The child (``python -m vistrain.tui.process``) gets the events on one pipe and sends the keys
    back on another, so drawing never competes with training for this process's GIL. Returns the
    RunResult and re-raises run errors after the child has restored the terminal. *control* (a
    :class:`~vistrain.engine.control.TrainControl`) also takes the caller's requests, such as a
    signal's stop; *headless_size*
    (``"WxH"``) draws off-screen and closes at the end of the run (benchmarks, tests).
    """
    import subprocess

    from vistrain.engine.control import TrainControl
    from vistrain.engine.control_channel import serve_control
    from vistrain.listeners.pipe import EventPipeWriter
    from vistrain.runner import execute

    events_r, events_w = os.pipe()
    control_r, control_w = os.pipe()
    cmd = [sys.executable, "-m", "vistrain.tui.process", "--events-fd", str(events_r), "--control-fd", str(control_w),
           "--refresh-s", repr(float(cfg.output.dashboard_refresh_s)),
           "--nice", str(int(cfg.output.dashboard_nice))]
    child = subprocess.Popen(cmd + (["--headless", headless_size] if headless_size else []),
                             pass_fds=(events_r, control_w))
    os.close(events_r)
    os.close(control_w)
    control = control or TrainControl()
    serve_control(control_r, control)
    try:
        result = execute(cfg, listeners=[EventPipeWriter(events_w)], control=control, resume=resume, run_dir=run_dir)
    except BaseException:
        _wait_for(child)
        raise
    _wait_for(child)
    if child.returncode not in (0, 2):  # 2: the run failed, which execute() has raised above
        raise RuntimeError(f"the dashboard process exited with code {child.returncode}; training finished, "
                           "see the run folder")
    return result


def _wait_for(child) -> None:
    """Wait for the dashboard to close (the user presses q after the run); Ctrl+C here waits too."""
    while True:
        try:
            child.wait()
            return
        except KeyboardInterrupt:
            continue


def attach_dashboard(run_dir: str | Path) -> None:
    """Watch *run_dir*'s events.jsonl: the dashboard in a terminal, plain lines otherwise. A ``vistrain tune``
    study folder (it has ``study.yaml``) opens the study view."""
    from vistrain.tune.summary import STUDY_FILE

    if (Path(run_dir).expanduser() / STUDY_FILE).is_file():
        attach_study(Path(run_dir).expanduser())
        return
    path = runfolder.check_events(runfolder.existing(run_dir, hint="pass a run folder, e.g. vistrain attach runs/NAME"))
    if not sys.stdout.isatty():
        from vistrain.listeners.console import ConsoleReporter

        reporter = ConsoleReporter(plain=True)
        runfolder.follow_events(path, reporter.on_event)
        reporter.close()
        return
    from vistrain.tui.app import DashboardApp

    DashboardApp(events_path=path).run()


def attach_study(folder: Path) -> None:
    """Watch a study folder: the study view in a terminal; otherwise a line per trial event, until the budget is
    done, and the best trial."""
    run_folder = runfolder.RunFolder(folder)
    if run_folder.events.is_file():  # not yet there before the first trial starts: the view waits for it
        runfolder.check_events(run_folder)
    if sys.stdout.isatty():
        from vistrain.tui.study_app import StudyApp

        StudyApp(folder).run()
        return
    import threading

    from vistrain.events import TuneTrial
    from vistrain.tui.study_state import StudyTrials, follow_when_written

    study, done = StudyTrials(folder), threading.Event()

    def on_event(event) -> None:
        if isinstance(event, TuneTrial):
            study.apply(event)
            print(study.trial_line(study.trials[event.number]), flush=True)
            # set and cleared as events come: a finished study continued later reads on past its first end
            if study.done and not study.counts()["running"]:
                done.set()
            else:
                done.clear()

    follow_when_written(run_folder.events, on_event, done)
    print(study.best_line())
