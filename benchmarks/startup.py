"""``vistrain --help`` wall time with and without the example plugins of plugins/ installed.

The example plugins are pip-installed (``--no-deps --target``) into a temporary folder, which
is then put on ``PYTHONPATH`` for the "with" runs only, so Python's entry-point machinery finds
them exactly as after ``pip install``. The two variants alternate run by run (paired), so noise
from a busy machine hits both alike; the script prints each variant's median and minimum and the
median of the per-pair ratios. ``python -c pass`` is timed alongside as the floor: what starting
the interpreter (with the environment's ``.pth`` files) costs before vistrain does anything.
``--typer`` adds a third variant: the help as the Typer app
renders it (what ``vistrain --help`` cost before the root help stopped importing Typer).

    python benchmarks/startup.py [--runs 20] [--typer]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYPER_HELP = ("import typer.main; from vistrain.cli import build_app;"
              "typer.main.get_command(build_app()).main(['--help'], prog_name='vistrain', standalone_mode=False)")


def command() -> list[str]:
    """The ``vistrain`` console script next to this interpreter, else ``python -m vistrain``."""
    script = Path(sys.executable).parent / "vistrain"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vistrain"]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--typer", action="store_true", help="also time the Typer-rendered help")
    args = parser.parse_args()

    site = Path(tempfile.mkdtemp(prefix="vistrain-startup-"))
    try:
        packages = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", str(site), *map(str, packages)], check=True)
        base = {k: v for k, v in os.environ.items() if k not in ("VISTRAIN_PLUGINS", "PYTHONPATH")}
        without = {**base, "PYTHONPATH": str(ROOT)}
        with_plugins = {**base, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
        out = subprocess.run([*command(), "plugins", "list"], env=with_plugins, capture_output=True, text=True)
        names = [line.split()[0] for line in out.stdout.splitlines()[1:] if line.rstrip().endswith(" ok")]
        print(f"{len(packages)} example packages installed; plugins loaded: {', '.join(names)}")

        variants = {"python -c pass": ([sys.executable, "-c", "pass"], without),  # the interpreter's own floor
                    "without plugins": ([*command(), "--help"], without),
                    "with plugins": ([*command(), "--help"], with_plugins)}
        if args.typer:
            variants["Typer help, with plugins"] = ([sys.executable, "-c", TYPER_HELP], with_plugins)
        for cmd, env in variants.values():  # warm the file cache and byte-code
            timed(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, (cmd, env) in variants.items():
                times[name].append(timed(cmd, env))
        for name, values in times.items():
            print(f"{name:>26}: median {statistics.median(values):.3f} s, min {min(values):.3f} s ({args.runs} runs)")
        ratios = [w / o for w, o in zip(times["with plugins"], times["without plugins"])]
        print(f"with / without plugins, median of paired ratios: {statistics.median(ratios):.3f}")
    finally:
        shutil.rmtree(site, ignore_errors=True)


if __name__ == "__main__":
    main()
