"""Training time with the live dashboard vs headless, same run; prints the paired ratio (target ≤ 1.03).

    .venv/bin/python benchmarks/dashboard_overhead.py [--data mnist5k] [--epochs 10] [--repeats 7]
    .venv/bin/python benchmarks/dashboard_overhead.py --repeats 20 --save a.json  # keep the pairs
    .venv/bin/python benchmarks/dashboard_overhead.py --load a.json b.json  # pool saved invocations
    .venv/bin/python benchmarks/dashboard_overhead.py --set output.dashboard_nice=0  # any setting, both sides
    .venv/bin/python benchmarks/dashboard_overhead.py --event-cost 1000  # the dashboard's CPU per batch event
    .venv/bin/python benchmarks/dashboard_overhead.py --in-process  # execute() in this process
    .venv/bin/python benchmarks/dashboard_overhead.py --in-thread   # the old in-process dashboard

By default both sides are the real command as a user types it: ``vistrain run`` in a
pseudo-terminal of ``--size`` (160x48), so it opens the dashboard, against ``vistrain run
--headless`` with its output to a pipe (plain lines, nothing drawn: the cheapest way to run, as on
a cluster; ``--baseline terminal`` puts it in a terminal too, where it draws a progress bar). Same
flags, alternating, who goes first alternating too. This script reads and discards everything
written, as a terminal would display it.
Per side it records:

- **until done**: from starting the command until the run's ``run_finished`` line is in its
  ``events.jsonl`` (start-up, data loading, training, evaluation, checkpoints; what the user waits
  for). The dashboard then stays open until q is pressed; this script presses it.
- **run**: ``run_finished`` minus ``run_started`` in the same file, the run's own clock.
- **CPU**: user+system seconds of the command and every process it started (the dashboard too).

The median of the per-pair ratios is printed for both times, with a 90 % bootstrap interval and the
load average, and the dashboard process's own CPU until the run finished (from /proc). One pair varies
by about ±15 % on a shared 2-core machine, so one invocation of 20 pairs pins the median to a few
per cent at best: ``--save`` each invocation and ``--load`` them together to pool.

``--in-process`` times ``execute`` in this process instead (torch already imported, so the
dashboard process starts up during the run rather than during the command's start-up);
``--in-thread`` measures the previous design, the app in this process and training in its thread.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import io
import json
import os
import pty
import random
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

from vistrain.config import resolve_config
from vistrain.engine.control import TrainControl
from vistrain.listeners.console import ConsoleReporter
from vistrain.runner import execute


def make_config(args, out: str, name: str):
    """The in-process modes' training config: small model, embedded data, fixed seed. (num_workers=0, as
    these modes always measured, turns the device augmentation off: per-image augmentation.)"""
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


def command_args(args, out: str, name: str, dashboard: bool) -> list[str]:
    """``vistrain run`` as a user types it: the default recipe (its data loading and device augmentation
    included), with only the data, epochs, seed and run folder given."""
    cmd = [sys.executable, "-m", "vistrain", "run", "--data", args.data, "--epochs", str(args.epochs), "--seed", "0",
           "--out", out, "--name", name]
    if args.threads:
        cmd += ["--set", f"train.threads={args.threads}"]
    if args.augment:
        cmd += ["--augment", args.augment]
    for setting in args.set or ():
        cmd += ["--set", setting]
    return cmd + ([] if dashboard else ["--headless"])


def _finished(events: Path) -> tuple[float, float] | None:
    """(run_started, run_finished) times from a run's events.jsonl once it has its last event."""
    try:
        lines = events.read_text().splitlines()
    except OSError:
        return None
    times = {}
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line being written
        if event.get("kind") in ("run_started", "run_finished", "run_failed"):
            times[event["kind"]] = event["time"]
    if "run_failed" in times:
        raise RuntimeError(f"the benchmark run failed; see {events}")
    return (times["run_started"], times["run_finished"]) if "run_finished" in times else None


def proc_stat(pid: int | str) -> tuple[float, int, int]:
    """(CPU seconds so far, niceness, parent pid) of *pid* from /proc/PID/stat (utime + stime are fields 14
    and 15, nice 19, ppid 4); OSError when it is gone."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()  # from field 3 (the state) on: the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[16]), int(fields[1])


def dashboard_cpu(pid: int) -> tuple[float, int] | tuple[None, None]:
    """CPU seconds so far and niceness of the dashboard process that command *pid* started (None where
    /proc can't tell)."""
    try:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                cpu, nice, parent = proc_stat(entry.name)
                if parent != pid:
                    continue
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    if b"vistrain.tui.process" not in fh.read():
                        continue
                return cpu, nice
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        return None, None
    return None, None


def run_in_terminal(cmd: list[str], run_dir: Path, size: tuple[int, int], terminal: bool = True) -> dict[str, float]:
    """Run *cmd* on a new pseudo-terminal of *size* (else with its output to a pipe); seconds until its run
    finished, the run's own seconds, seconds until the command exited, and the CPU seconds of it and
    its children."""
    if terminal:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    else:
        master, slave = os.pipe()  # read end, write end: plain lines, as on a cluster or with > log
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(size[0]), LINES=str(size[1]))
    received = [0]

    def drain() -> None:  # what a terminal does: read everything written to it
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO once the last writer closed
                return
            if not chunk:
                return
            received[0] += len(chunk)

    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=slave if terminal else subprocess.DEVNULL, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    events = run_dir / "events.jsonl"
    while (span := _finished(events)) is None:
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode} before its run finished")
        time.sleep(0.02)
    done = time.perf_counter() - t0
    ui_cpu, ui_nice = dashboard_cpu(proc.pid) if terminal else (None, None)
    for _ in range(3):  # the dashboard waits for q once the run has finished; headless exits by itself
        if terminal and proc.poll() is None:
            os.write(master, b"q")
        try:
            proc.wait(10)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        os.killpg(proc.pid, 9)  # the whole session: the dashboard process too
        proc.wait()
        raise RuntimeError("the dashboard did not close on q")
    exited = time.perf_counter() - t0
    reader.join(5)
    os.close(master)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}")
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return {"done": done, "run": span[1] - span[0], "exited": exited, "cpu": cpu, "bytes": received[0],
            "ui_cpu": ui_cpu, "ui_nice": ui_nice}


def bootstrap_median(values: list[float], level: float = 0.9, resamples: int = 4000) -> tuple[float, float]:
    """A percentile bootstrap interval for the median of *values* (fixed seed, so a rerun on the same
    pairs prints the same interval)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    tail = (1 - level) / 2
    return medians[int(tail * resamples)], medians[int((1 - tail) * resamples) - 1]


def measure_pairs(args, size: tuple[int, int]) -> list[dict]:
    """Alternate the real command headless and with the dashboard; print and return each pair."""
    pairs = []
    with tempfile.TemporaryDirectory() as out:
        run_in_terminal(command_args(args, out, "warmup", False), Path(out) / "warmup", size)  # file caches
        for i in range(args.repeats):
            order = [False, True] if i % 2 == 0 else [True, False]
            pair = {}
            for dashboard in order:
                name = f"{'dashboard' if dashboard else 'headless'}-{i}"
                pair[dashboard] = run_in_terminal(command_args(args, out, name, dashboard), Path(out) / name, size,
                                                  terminal=dashboard or args.baseline == "terminal")
            h, d = pair[False], pair[True]
            pairs.append({"headless": h, "dashboard": d, "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                          "load1": os.getloadavg()[0]})
            ui = f"; dashboard process CPU {d['ui_cpu']:.2f}s" if d.get("ui_cpu") is not None else ""
            print(f"repeat {i + 1}: until done headless {h['done']:.2f}s dashboard {d['done']:.2f}s ratio "
                  f"{d['done'] / h['done']:.3f}; run {h['run']:.2f}s vs {d['run']:.2f}s ratio {d['run'] / h['run']:.3f}; "
                  f"CPU {h['cpu']:.2f}s vs {d['cpu']:.2f}s{ui}; terminal bytes {h['bytes']} vs {d['bytes']}", flush=True)
    return pairs


def summarise(pairs: list[dict], what: str) -> None:
    """The medians of the per-pair ratios, each with a 90 % bootstrap interval."""
    def ratios(key: str) -> list[float]:
        return [p["dashboard"][key] / p["headless"][key] for p in pairs]

    def shown(key: str) -> str:
        lo, hi = bootstrap_median(ratios(key))
        return f"{statistics.median(ratios(key)):.3f} (90 % interval {lo:.3f}-{hi:.3f})"

    print(f"{what}, {len(pairs)} pairs")
    print(f"median headless: until done {statistics.median(p['headless']['done'] for p in pairs):.2f}s, run "
          f"{statistics.median(p['headless']['run'] for p in pairs):.2f}s, CPU "
          f"{statistics.median(p['headless']['cpu'] for p in pairs):.2f}s; extra CPU with the dashboard: median "
          f"{statistics.median(p['dashboard']['cpu'] - p['headless']['cpu'] for p in pairs):.2f}s")
    ui = [p["dashboard"]["ui_cpu"] for p in pairs if p["dashboard"].get("ui_cpu") is not None]
    if ui:
        print(f"the dashboard process's own CPU until the run finished: median {statistics.median(ui):.2f}s")
    print(f"median per-pair ratio dashboard/headless: until done {shown('done')} (target <= 1.03); "
          f"the run's own time {shown('run')}; until the command exited (after q) {statistics.median(ratios('exited')):.3f}")


def main_terminal(args, size: tuple[int, int]) -> None:
    """Measure (or --load) pairs of the real command, --save them, print the summary."""
    if args.load:
        pairs = []
        for path in args.load:
            with open(path) as fh:
                pairs += json.load(fh)["pairs"]
        summarise(pairs, f"{len(args.load)} saved file(s): {', '.join(args.load)}")
        return
    pairs = measure_pairs(args, size)
    load = os.getloadavg()
    where = "in the same terminal" if args.baseline == "terminal" else "with its output to a pipe"
    settings = "".join(f" --set {s}" for s in args.set or ())
    what = (f"{args.data}, {args.epochs} epochs{settings}: `vistrain run` in a {size[0]}x{size[1]} pseudo-terminal vs "
            f"`vistrain run --headless` {where}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.save:
        with open(args.save, "w") as fh:
            json.dump({"what": what, "pairs": pairs}, fh, indent=1)
    summarise(pairs, what)


def event_cost(count: int, gap_s: float, size: tuple[int, int]) -> None:
    """Feed *count* synthetic batch events (an epoch end every 28), *gap_s* apart, to a headless dashboard
    process with no periodic redraws, and print its CPU per event: what receiving events costs alone."""
    from vistrain.events import BatchEnd, EpochEnd

    events_r, events_w = os.pipe()
    control_r, control_w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "vistrain.tui.process", "--events-fd", str(events_r),
                             "--control-fd", str(control_w), "--headless", f"{size[0]}x{size[1]}",
                             "--refresh-s", "3600"], pass_fds=(events_r, control_w))
    os.close(events_r)
    os.close(control_w)

    with os.fdopen(events_w, "wb", buffering=0) as stream:
        time.sleep(2.0)  # started up
        before = proc_stat(proc.pid)[0]
        for i in range(count):
            lines = [BatchEnd(stage="s", epoch=1 + i // 28, epochs=1 + count // 28, step=1 + i % 28, steps_per_epoch=28,
                              global_step=i + 1, loss=1.0 / (i + 1), lr=0.1, samples_per_s=5000.0, data_wait_s=0.0,
                              step_time_s=gap_s)]
            if (i + 1) % 28 == 0:
                lines.append(EpochEnd(stage="s", epoch=1 + i // 28, epochs=1 + count // 28, train_loss=0.5,
                                      train_top1=0.9, lr=0.1, duration_s=28 * gap_s, samples=3584))
            stream.write(b"".join(json.dumps(e.to_dict()).encode() + b"\n" for e in lines))
            time.sleep(gap_s)
        time.sleep(0.5)
        spent = proc_stat(proc.pid)[0] - before
    os.close(control_r)
    proc.wait(30)
    print(f"{count} batch events {1000 * gap_s:.0f} ms apart (and an epoch end every 28), no periodic redraws: "
          f"the dashboard process used {spent:.2f}s of CPU, {1000 * spent / count:.2f} ms per batch event")


def main() -> None:
    """Alternate headless and dashboard runs, print each pair and the median of the per-pair ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--size", default="160x48", help="dashboard terminal size WxH")
    parser.add_argument("--augment", default=None, help="augmentation spec (default: the default recipe's)")
    parser.add_argument("--baseline", choices=("pipe", "terminal"), default="pipe",
                        help="headless side's output: plain lines to a pipe (nothing drawn), or the same terminal "
                             "(its progress bar)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="a setting for both sides' command, e.g. output.dashboard_nice=0 (repeatable)")
    parser.add_argument("--save", help="also write every pair's timings to this JSON file")
    parser.add_argument("--load", nargs="+", help="summarise pairs from --save files (pooled) instead of measuring")
    parser.add_argument("--event-cost", type=int, metavar="N",
                        help="instead: the dashboard process's CPU per batch event, over N synthetic events")
    parser.add_argument("--in-process", action="store_true", help="time execute() in this process instead")
    parser.add_argument("--in-thread", action="store_true", help="measure the in-process (thread) dashboard instead")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if args.event_cost:
        event_cost(args.event_cost, 0.01, size)
        return
    if not (args.in_process or args.in_thread):
        main_terminal(args, size)
        return
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
