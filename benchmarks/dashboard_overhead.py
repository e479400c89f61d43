"""Training time with the live dashboard vs headless, same run; prints the paired ratio (target ≤ 1.03).

    .venv/bin/python benchmarks/dashboard_overhead.py [--data mnist5k] [--epochs 10] [--repeats 3]
    .venv/bin/python benchmarks/dashboard_overhead.py --in-thread   # the old in-process dashboard

The dashboard runs as ``vistrain run`` runs it: training in this process's main thread, exactly
as headless, and the app in a child process fed by the event pipe (``vistrain.tui.process``), but
on Textual's headless driver at 160×48, so terminal writes are not counted (the panels are still
composed and rendered). Both sides time the run itself (``execute``: data loading, training,
evaluation, checkpoints); the time until the dashboard process has closed as well (in a terminal
it stays open until the user presses q) is printed beside it. Runs alternate headless/dashboard, who goes first alternating too; the
median of the per-pair ratios is printed with the load average. ``--in-thread`` measures the
previous design instead: the app in this process, training in its worker thread.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import tempfile
import threading
import time

from vistrain.config import resolve_config
from vistrain.engine.control import TrainControl
from vistrain.reporters.console import ConsoleReporter
from vistrain.runner import execute


def make_config(args, out: str, name: str):
    """The benchmark's training config: small model, embedded data, fixed seed."""
    flags = {"data.name": args.data, "train.epochs": args.epochs, "output.dir": out, "output.name": name,
             "augment.spec": getattr(args, "augment", None),
             "data.num_workers": 0, "train.seed": 0, "train.threads": args.threads}
    return resolve_config(None, flags)


def run_headless(cfg) -> float:
    """Seconds for one run with the plain console reporter (into a buffer), in a plain thread.

    The thread matters: torch's CPU thread pool behaves differently on the main thread (measured
    3x slower on a loaded 2-core box), and the dashboard trains in a worker thread too.
    """
    timing = {}

    def target():
        t0 = time.perf_counter()
        execute(cfg, listeners=[ConsoleReporter(stream=io.StringIO(), plain=True)])
        timing["s"] = time.perf_counter() - t0

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return timing["s"]


def run_headless_main(cfg) -> float:
    """Seconds for one run with the plain console reporter, in the main thread (as `vistrain run --headless`)."""
    t0 = time.perf_counter()
    execute(cfg, listeners=[ConsoleReporter(stream=io.StringIO(), plain=True)])
    return time.perf_counter() - t0


def run_dashboard_process(cfg, size: tuple[int, int]) -> tuple[float, float, float]:
    """Seconds of the run itself under the separate-process dashboard (``execute``, as the headless
    side is timed), seconds until the dashboard process had closed too, and its CPU seconds."""
    import resource

    import vistrain.runner
    from vistrain.tui.launch import run_with_dashboard

    real_execute, timing = vistrain.runner.execute, {}

    def timed_execute(*a, **k):
        t = time.perf_counter()
        try:
            return real_execute(*a, **k)
        finally:
            timing["run"] = time.perf_counter() - t

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    vistrain.runner.execute = timed_execute  # run_with_dashboard imports it at call time
    t0 = time.perf_counter()
    try:
        run_with_dashboard(cfg, headless_size=f"{size[0]}x{size[1]}")
    finally:
        vistrain.runner.execute = real_execute
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return timing["run"], seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def run_dashboard(cfg, size: tuple[int, int]) -> tuple[float, float]:
    """Seconds for one run under the live dashboard (headless driver), and the UI thread's CPU seconds."""
    from vistrain.tui.app import DashboardApp

    timing = {}

    def job(bridge, control):
        t0 = time.perf_counter()
        try:
            return execute(cfg, listeners=[bridge], control=control)
        finally:
            timing["s"] = time.perf_counter() - t0

    async def drive():
        app = DashboardApp(job=job, control=TrainControl())
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            ui0 = time.thread_time()
            while not app.job_done.is_set():
                await asyncio.sleep(0.25)  # no Pilot polling: it would add UI work a user's terminal never sees
            timing["ui_cpu"] = time.thread_time() - ui0
            await pilot.pause()
            assert app.error is None, app.error

    asyncio.run(drive())
    return timing["s"], timing["s"], timing["ui_cpu"]


def main() -> None:
    """Alternate headless and dashboard runs, print each pair and the median of the per-pair ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--size", default="160x48", help="dashboard terminal size WxH")
    parser.add_argument("--augment", default=None, help="augmentation spec (default: the default recipe's)")
    parser.add_argument("--in-thread", action="store_true", help="measure the in-process (thread) dashboard instead")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    headless_fn = run_headless if args.in_thread else run_headless_main
    dashboard_fn = run_dashboard if args.in_thread else run_dashboard_process
    what = "UI thread" if args.in_thread else "dashboard process"
    with tempfile.TemporaryDirectory() as out:
        headless_fn(make_config(args, out, "warmup"))  # loads the data set and warms torch up
        headless, dashboard, closed, ui_cpu = [], [], [], []
        for i in range(args.repeats):
            first_headless = i % 2 == 0
            if first_headless:
                headless.append(headless_fn(make_config(args, out, f"headless-{i}")))
            seconds, until_closed, cpu = dashboard_fn(make_config(args, out, f"dashboard-{i}"), size)
            if not first_headless:
                headless.append(headless_fn(make_config(args, out, f"headless-{i}")))
            dashboard.append(seconds)
            closed.append(until_closed)
            ui_cpu.append(cpu / until_closed)
            print(f"repeat {i + 1}: headless {headless[-1]:.2f}s  dashboard {seconds:.2f}s  ratio "
                  f"{seconds / headless[-1]:.3f}  (until the dashboard closed {until_closed:.2f}s, ratio "
                  f"{until_closed / headless[-1]:.3f}; {what} busy {100 * ui_cpu[-1]:.1f}% of one core)", flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    paired = statistics.median(d / h for d, h in zip(dashboard, headless))
    print(f"{args.data}, {args.epochs} epochs, {args.repeats} pairs, dashboard {size[0]}x{size[1]} "
          f"({'in-process thread' if args.in_thread else 'separate process'}): median headless "
          f"{statistics.median(headless):.2f}s, dashboard {statistics.median(dashboard):.2f}s; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{what} CPU during training: median {100 * statistics.median(ui_cpu):.1f}% of one core")
    print(f"median per-pair ratio dashboard/headless: {paired:.3f} (target <= 1.03); "
          f"ratio of medians {statistics.median(dashboard) / statistics.median(headless):.3f}; until the "
          f"dashboard had closed as well: {statistics.median(c / h for c, h in zip(closed, headless)):.3f}")


if __name__ == "__main__":
    main()
