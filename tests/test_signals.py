"""Stop signals can land at any moment: they are served, never hang the run, and leave a checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Thousands of SIGTERM/SIGUSR1 at random moments while the main thread runs the loop's control calls
# (the ones made every step: wait_if_paused, stop_requested, take_save_request, and pausing itself).
# Each signal must stop the section it lands in; a handler that waits for a lock the interrupted code
# holds (Event.set() inside Event.wait()) hangs here for good, so the script runs in a child with a deadline.
HAMMER = textwrap.dedent("""
    import os, random, signal, sys, threading, time
    from vistrain.cli.run import _stop_on_signals
    from vistrain.engine.control import TrainControl

    SIGNALS = int(os.environ["SIGNALS"])
    rng = random.Random(int(os.environ["SEED"]))
    received, served = [], 0
    go = threading.Event()

    def sender():
        pid = os.getpid()
        for i in range(SIGNALS):
            go.wait()
            go.clear()
            time.sleep(rng.random() * 2e-4)
            os.kill(pid, signal.SIGTERM if i % 2 else signal.SIGUSR1)

    sys.setswitchinterval(1e-4)  # hand the GIL to the sender often: many signals per second
    threading.Thread(target=sender, daemon=True).start()
    paused = 0
    while served < SIGNALS:
        control = TrainControl()
        pause_at = rng.randrange(40) if rng.random() < 0.05 else -1  # a paused loop must wake for the stop too
        with _stop_on_signals(control, received):
            go.set()
            steps = 0
            while not control.stop_requested:
                if steps == pause_at:
                    control.pause()
                    paused += 1
                steps += 1
                control.wait_if_paused()
                control.take_save_request()
                if rng.random() < 0.5:
                    control.request_save()
        served += 1
    assert len(received) == SIGNALS, (len(received), SIGNALS)
    print("served", served, "paused", paused)
""")


def test_thousands_of_stop_signals_at_random_moments_never_hang():
    env = {**os.environ, "SIGNALS": "4000", "SEED": str(os.getpid())}
    try:
        proc = subprocess.run([sys.executable, "-c", HAMMER], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"a signal handler hung the loop: {exc.stdout!r} {exc.stderr!r}") from None
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "served 4000" in proc.stdout


def test_a_paused_loop_wakes_up_for_a_stop_within_a_poll():
    import threading
    import time

    from vistrain.engine.control import PAUSE_POLL_S, TrainControl

    control = TrainControl()
    control.pause()
    threading.Timer(0.1, control.request_stop).start()
    t0 = time.monotonic()
    control.wait_if_paused()
    waited = time.monotonic() - t0
    assert control.stop_requested and 0.09 < waited < 0.1 + 10 * PAUSE_POLL_S


def test_the_launcher_puts_back_every_signal_handler_and_variable_torchrun_changes(monkeypatch):
    """``--nproc`` runs torchrun in this process; it replaces SIGINT/SIGHUP/SIGQUIT handlers and sets
    environment variables, which a caller (a test, a search driving several runs) must get back."""
    from torch.distributed import run as trun

    from vistrain.engine import distributed as dist

    def fake_torchrun(args):  # what torchrun's agent does to the process it runs in
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(s, lambda *a: None)
        os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = "SIGTERM,SIGINT,SIGHUP,SIGQUIT"
        os.environ["OMP_NUM_THREADS"] = "1"

    monkeypatch.setattr(trun, "run", fake_torchrun)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("TORCHELASTIC_SIGNALS_TO_HANDLE", raising=False)
    sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)
    before = {s: signal.getsignal(s) for s in sigs}
    assert dist.launch(2, ["run"], 75) == 0
    assert {s: signal.getsignal(s) for s in sigs} == before
    assert os.environ["OMP_NUM_THREADS"] == "2" and "TORCHELASTIC_SIGNALS_TO_HANDLE" not in os.environ


def test_real_runs_signalled_at_random_moments_exit_75_with_their_last_step_saved(tmp_path):
    """A few runs of tests/signal_stress.py (200 for the figures in docs/cluster.md): headless runs, some
    paused, and one through the --nproc 2 launcher, each signalled at a random moment of its training."""
    env = {**os.environ, "VISTRAIN_PLUGINS": "none"}
    proc = subprocess.run([sys.executable, "tests/signal_stress.py", "--runs", "6", "--nproc-runs", "1",
                           "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "--nproc 1: 6 runs, 6 ended as they should" in proc.stdout
    assert "--nproc 2: 1 runs, 1 ended as they should" in proc.stdout
