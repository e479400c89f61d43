"""Stop signals at random moments of real ``vistrain run`` commands: every run must exit 75 within seconds with a
loadable ``last.pt`` holding the last step it trained.

    python tests/signal_stress.py --runs 200 --nproc-runs 20

Each run is ``vistrain run --headless`` on the 8x8 digits (four epochs, a step checkpoint every 3 steps), forked
from this process so that torch is imported once. It gets SIGTERM or SIGUSR1 at a moment drawn uniformly over
its training (or, for four runs in ten, as soon as an epoch ends or a step that writes a step checkpoint
reports), and a quarter of the single-process runs are paused (for 0.1 to 0.6 s, as the dashboard's p key
does) at random moments too, so some signals land while paused. ``--nproc-runs`` runs go through
``vistrain run --nproc 2`` (the launcher gets the signal and passes it on to its two workers). For each run the
table says what the run was doing when the signal came (from its own events), its exit code and the seconds
from the signal to the exit. ``tests/test_signals.py`` runs a few of each; the figures for 200 are in
docs/cluster.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ARGS = ["run", "--headless", "--data", "digits", "--epochs", "4", "--batch-size", "32", "--augment", "none",
        "--log-every", "1", "--set", "train.log_interval=1", "--set", "train.threads=1",
        "--set", "checkpoint.every_steps=3", "--set", "checkpoint.keep=2", "--set", "output.system_interval_s=0.5"]
EXIT_LIMIT_S = 30.0  # a run that has not exited this long after the signal counts as hung


def events(run: Path) -> list[dict]:
    """The run's events so far (a line being written is skipped)."""
    path = run / "events.jsonl"
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


class EventTail:
    """The events appended to a file since the last read."""

    def __init__(self, path: Path):
        self.path, self.offset, self.partial = path, 0, ""

    def read(self) -> list[dict]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                fh.seek(self.offset)
                text = fh.read()
                self.offset = fh.tell()
        except FileNotFoundError:
            return []
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        return [json.loads(line) for line in lines if line]


def child(args: list[str], log: Path, pause_seed: int | None, pauses: Path | None = None) -> None:
    """In the forked process: run the command as ``vistrain`` would, then leave with its exit code."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 1
    try:
        if pause_seed is not None:
            import vistrain.engine.control as control_module

            class RandomlyPaused(control_module.TrainControl):
                """What the dashboard's p key does, at random moments."""

                def __init__(self):
                    super().__init__()
                    threading.Thread(target=self._press_p, daemon=True).start()

                def _press_p(self):
                    rng = random.Random(pause_seed)
                    with open(pauses, "a") as record:
                        while True:
                            time.sleep(rng.uniform(0.05, 0.4))
                            record.write(f"{time.time()!r}\n")
                            record.flush()
                            self.pause()
                            time.sleep(rng.uniform(0.1, 0.6))
                            self.resume()
                            record.write(f"{time.time()!r}\n")
                            record.flush()

            control_module.TrainControl = RandomlyPaused
        from vistrain.cli import main

        code = main(args)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def one_run(out: Path, name: str, rng: random.Random, nproc: int, train_s: float, pause: bool) -> dict:
    """Start a run, signal it at a random moment of its training, and check how it ended."""
    from vistrain.checkpoint import load_checkpoint

    args = ARGS + ["--out", str(out), "--name", name] + (["--nproc", str(nproc)] if nproc > 1 else [])
    run = out / name
    sig = rng.choice([signal.SIGTERM, signal.SIGUSR1])
    pid = os.fork()
    if pid == 0:
        child(args, out / f"{name}.log", rng.randrange(1 << 30) if pause else None, out / f"{name}.pauses")
    # most signals at a uniform moment of training; some as soon as an epoch ends (the val split is being
    # evaluated) or a step that writes a step checkpoint reports (the checkpoint is being written)
    target = rng.choices(["uniform", "epoch end", "step checkpoint"], weights=[6, 2, 2])[0]
    epoch_to_hit = rng.randrange(1, 4)
    where = rng.random()  # how far into the run the step checkpoint to hit lies
    step_to_hit = None
    follow, deadline, started = EventTail(run / "events.jsonl"), time.time() + 120, None
    while time.time() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            raise RuntimeError(f"{name} ended before the signal: {(out / f'{name}.log').read_text()[-2000:]}")
        new = follow.read()
        for e in new:
            if e["kind"] == "stage_started" and step_to_hit is None:  # a step that writes a step checkpoint
                step_to_hit = 3 * max(1, int(where * e["epochs"] * e["steps_per_epoch"] / 3) - 1)
        if started is None and any(e["kind"] == "batch_end" for e in new):
            started = time.time()
            if target == "uniform":
                time.sleep(rng.uniform(0.0, train_s))
                break
        if target == "epoch end" and any(e["kind"] == "epoch_end" and e["epoch"] == epoch_to_hit for e in new):
            break
        if target == "step checkpoint" and step_to_hit is not None and any(
                e["kind"] == "batch_end" and e["global_step"] >= step_to_hit for e in new):
            break
        time.sleep(0.002)
    t_signal = time.time()
    os.kill(pid, sig)
    code, hung = None, False
    while code is None:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
        elif time.time() - t_signal > EXIT_LIMIT_S:
            hung = True
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            code = -9
        else:
            time.sleep(0.01)
    exit_s = time.time() - t_signal
    evs = events(run)
    steps = [e["global_step"] for e in evs if e["kind"] == "batch_end"]
    finished = [e for e in evs if e["kind"] == "run_finished"]
    trained_out = bool(finished) and not finished[-1]["stopped_early"]
    moment = what_was_happening(t_signal, evs, pause_spans(out / f"{name}.pauses"))
    problem = ""
    try:
        last = load_checkpoint(run / "checkpoints" / "last.pt")
        if steps and last["global_step"] != steps[-1]:
            problem = f"last.pt holds step {last['global_step']}, training reached step {steps[-1]}"
    except Exception as exc:  # noqa: BLE001 - any failure to load is what this script looks for
        problem = f"last.pt does not load: {exc}"
    # a signal after the last step finds nothing to stop: one process exits 0; the launcher, whose workers are
    # ending, still answers a SIGTERM with 75 (a requeued job then finds the run complete)
    expected = {0, 75} if trained_out and nproc > 1 else {0} if trained_out else {75}
    if hung:
        problem = f"still running {EXIT_LIMIT_S:.0f} s after {sig.name}; killed"
    elif code not in expected:
        problem = problem or f"exit code {code}, expected {' or '.join(map(str, sorted(expected)))}"
    elif exit_s > 10:
        problem = problem or f"took {exit_s:.1f} s to exit"
    return {"name": name, "signal": sig.name, "nproc": nproc, "paused_mode": pause, "target": target,
            "moment": moment, "code": code,
            "exit_s": round(exit_s, 2), "problem": problem, "log": str(out / f"{name}.log")}


def what_was_happening(t_signal: float, evs: list[dict], pauses: list[tuple[float, float]]) -> str:
    """A name for the moment of the signal, from the run's events and the pauses it had."""
    if any(e["kind"] == "run_finished" and not e["stopped_early"] for e in evs):
        return "after the last step"
    if any(start <= t_signal < end for start, end in pauses):
        return "paused"
    if any(e["kind"] == "checkpoint_saved" and e["reason"] != "stop" and 0 <= e["time"] - t_signal < 0.05 for e in evs):
        return "writing a checkpoint"
    before = [e for e in evs if e["time"] <= t_signal]
    if before and before[-1]["kind"] == "epoch_end":
        return "evaluating"
    return "training a step"


def pause_spans(path: Path) -> list[tuple[float, float]]:
    """(start, end) of each pause the child recorded."""
    if not path.exists():
        return []
    times = [float(t) for t in path.read_text().split()]
    return [(times[i], times[i + 1] if i + 1 < len(times) else float("inf")) for i in range(0, len(times), 2)]


def reference_training_s(out: Path) -> float:
    """How long the training part of one run lasts here (first step event to the last), from the second of
    two forked runs: the first one also warms up what later runs find ready."""
    for name in ("warm-up", "reference"):
        pid = os.fork()
        if pid == 0:
            child(ARGS + ["--out", str(out), "--name", name], out / f"{name}.log", None)
        os.waitpid(pid, 0)
    steps = [e["time"] for e in events(out / "reference") if e["kind"] == "batch_end"]
    return max(0.5, steps[-1] - steps[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="single-process runs")
    parser.add_argument("--nproc-runs", type=int, default=0, help="runs through vistrain run --nproc 2")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    args = parser.parse_args(argv)
    os.environ.setdefault("VISTRAIN_PLUGINS", "none")
    import torch  # noqa: F401 - imported once here, before the forks

    import vistrain.cli  # noqa: F401

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    out = args.out or Path(tempfile.mkdtemp(prefix="vistrain-signals-"))
    out.mkdir(parents=True, exist_ok=True)
    train_s = reference_training_s(out)
    print(f"seed {seed}; one run trains for {train_s:.1f} s here; runs in {out}", flush=True)
    results = []
    plan = [(1, f"r{i:03d}") for i in range(args.runs)] + [(2, f"ddp{i:03d}") for i in range(args.nproc_runs)]
    for nproc, name in plan:
        r = one_run(out, name, rng, nproc, train_s * (1.6 if nproc > 1 else 1.0),
                    pause=nproc == 1 and rng.random() < 0.25)
        results.append(r)
        print(f"{r['name']:7s} {r['signal']:8s} {'paused-mode' if r['paused_mode'] else '':11s} {r['target']:15s} "
              f"{r['moment']:26s} exit {r['code']:3d} after {r['exit_s']:5.2f} s  {r['problem']}", flush=True)
    bad = [r for r in results if r["problem"]]
    for nproc in sorted({r["nproc"] for r in results}):
        mine = [r for r in results if r["nproc"] == nproc]
        times = sorted(r["exit_s"] for r in mine)
        print(f"--nproc {nproc}: {len(mine)} runs, {sum(not r['problem'] for r in mine)} ended as they should; "
              f"seconds from the signal to the exit: median {times[len(times) // 2]:.2f}, max {times[-1]:.2f}; "
              f"moments: {dict(Counter(r['moment'] for r in mine))}")
    if bad:
        print(f"FAILED: {len(bad)} run(s): " + "; ".join(f"{r['name']}: {r['problem']} ({r['log']})" for r in bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
