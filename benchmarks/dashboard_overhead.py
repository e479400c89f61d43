"""Training time with the live dashboard vs headless, same run, same process; prints the ratio (target ≤ 1.05).

    .venv/bin/python benchmarks/dashboard_overhead.py [--data mnist5k] [--epochs 3] [--repeats 3]

The dashboard runs as it does under ``vistrain run`` (engine in a thread worker, events posted as
messages, panels redrawn) but on Textual's headless driver, so terminal writes are not counted.
Runs alternate headless/dashboard to spread machine noise; the medians are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import io
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
    return timing["s"], timing["ui_cpu"]


def main() -> None:
    """Alternate headless and dashboard runs, print each time and the median ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--size", default="160x48", help="dashboard terminal size WxH")
    parser.add_argument("--augment", default=None, help="augmentation spec (default: the default recipe's)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as out:
        run_headless(make_config(args, out, "warmup"))  # loads the data set and warms torch up
        headless, dashboard, ui_cpu = [], [], []
        for i in range(args.repeats):
            headless.append(run_headless(make_config(args, out, f"headless-{i}")))
            seconds, cpu = run_dashboard(make_config(args, out, f"dashboard-{i}"), size)
            dashboard.append(seconds)
            ui_cpu.append(cpu / seconds)
            print(f"repeat {i + 1}: headless {headless[-1]:.2f}s  dashboard {seconds:.2f}s  "
                  f"(UI thread busy {100 * ui_cpu[-1]:.1f}% of one core)", flush=True)
    ratio = statistics.median(dashboard) / statistics.median(headless)
    print(f"{args.data}, {args.epochs} epochs, {args.repeats} repeats, dashboard {size[0]}x{size[1]}: "
          f"median headless {statistics.median(headless):.2f}s, dashboard {statistics.median(dashboard):.2f}s")
    print(f"UI thread CPU during training: median {100 * statistics.median(ui_cpu):.1f}% of one core")
    print(f"ratio dashboard/headless: {ratio:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
