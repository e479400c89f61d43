"""Draw docs/dashboard.svg: the real dashboard, replaying a real finished run's events.jsonl.

    python docs/make_screenshot.py                      # trains a tiny run first (about 15 s on 2 cores)
    python docs/make_screenshot.py runs/NAME            # or replays a run folder you already have
    python docs/make_screenshot.py runs/NAME --size 140x40 --out docs/dashboard.svg

The tiny run is ``vistrain run --headless --data digits --epochs 12 --log-every 2 --name demo``, run in a
temporary folder: LeNet-5 on scikit-learn's digits, offline, with a progress line every 2 steps so that
the step-loss curve has points to draw. Its events are fed into ``DashboardApp`` (the same app that
``vistrain run`` and ``vistrain attach`` open) with ``App.run_test()``, as tests/test_tui_dashboard.py
does, and the screen is saved with ``App.save_screenshot()``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from vistrain.tui.app import DashboardApp
from vistrain.runfolder import RunFolder, read_events as read_event_file
from vistrain.tui.widgets.curves import CurvesPanel

HERE = Path(__file__).resolve().parent
TINY_RUN = ["run", "--headless", "--data", "digits", "--epochs", "12", "--log-every", "2", "--name", "demo"]


def read_events(run_dir: Path) -> list:
    """Every complete event of RUN_DIR/events.jsonl, in order."""
    path = RunFolder(run_dir).events
    events, _skipped = read_event_file(path)
    if not events:
        raise SystemExit(f"{path} holds no vistrain events")
    return events


def tiny_run(parent: Path) -> Path:
    """Train the tiny run into *parent*/runs (so the screen shows ``runs/demo``) and return its folder."""
    cmd = [sys.executable, "-m", "vistrain", *TINY_RUN]
    print("$ vistrain", " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True, cwd=parent)
    return parent / "runs" / "demo"


async def screenshot(events: list, size: tuple[int, int], out: Path) -> None:
    """Replay *events* into the dashboard at *size* and save the screen as SVG to *out*."""

    class Replay(DashboardApp):
        def on_ready(self) -> None:
            self.feed(events)
            self.query_one(CurvesPanel).flush()

    app = Replay()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.pause(0.2)
        app.save_screenshot(filename=out.name, path=str(out.parent))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a finished run folder (default: train a tiny one)")
    parser.add_argument("--out", type=Path, default=HERE / "dashboard.svg")
    parser.add_argument("--size", default="140x40", help="terminal COLUMNSxROWS (default 140x40)")
    args = parser.parse_args(argv)
    cols, rows = (int(n) for n in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="vistrain-shot-") as tmp:
        run_dir = args.run_dir if args.run_dir is not None else tiny_run(Path(tmp))
        events = read_events(run_dir)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        asyncio.run(screenshot(events, (cols, rows), args.out))
    print(f"wrote {args.out} ({len(events)} events of {run_dir.name}, {cols}x{rows})")


if __name__ == "__main__":
    main()
