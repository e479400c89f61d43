"""Run pytest on the same tests again and again, optionally beside a CPU hog, and stop at the first red run.

    python tests/repeat.py --times 20 --hog tests/test_distributed.py
    python tests/repeat.py --times 3 --fresh-clone          # the whole suite from fresh clones of HEAD

A flaky test passes alone and fails under load or after other tests; this is how to show that one no longer
does. ``--hog`` keeps every core busy with spinning processes (niceness 0, as another user's job would) for the
whole time. ``--fresh-clone`` runs each time in a new ``git clone`` of this repository's HEAD, so nothing an
earlier run left behind (caches, run folders) is seen.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _spin() -> None:
    while True:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--times", type=int, default=3)
    parser.add_argument("--hog", action="store_true", help="keep every core busy meanwhile")
    parser.add_argument("--fresh-clone", action="store_true", help="run each time in a new clone of HEAD")
    parser.add_argument("pytest_args", nargs="*", help="what to pass to pytest (default: the whole suite)")
    args = parser.parse_args(argv)
    hogs = []
    if args.hog:
        hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
        for hog in hogs:
            hog.start()
    try:
        for i in range(1, args.times + 1):
            where = ROOT
            if args.fresh_clone:
                where = Path(tempfile.mkdtemp(prefix="vistrain-clone-"))
                subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True)
            t0 = time.time()
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.pytest_args],
                                  cwd=where, capture_output=True, text=True)
            summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
            print(f"run {i}/{args.times}: exit {proc.returncode} in {time.time() - t0:.0f} s: {summary}", flush=True)
            if args.fresh_clone:
                shutil.rmtree(where, ignore_errors=True)
            if proc.returncode != 0:
                print(proc.stdout[-6000:] + proc.stderr[-3000:])
                return 1
        return 0
    finally:
        for hog in hogs:
            hog.terminate()


if __name__ == "__main__":
    sys.exit(main())
