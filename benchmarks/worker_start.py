"""Do loader workers start reliably? Forked workers against forkserver workers (``data.worker_start``), in one run.

    python benchmarks/worker_start.py --runs 12          # about 8 minutes on 2 cores
    python benchmarks/worker_start.py --runs 15 --forks 0 --busy 2   # part 2 on a loaded machine

Two parts:

1. **The interpreter.** ``os.fork()`` repeated while three threads keep making and deleting Python thread states
   from native threads (as torch's and gloo's threads do when they call back into Python): each child that does
   not exit within 2 s is counted as hung. On CPython before 3.12 a child can inherit the runtime's HEAD_LOCK
   held and wait on it forever in ``PyOS_AfterFork_Child`` (python/cpython#112275). Run with each interpreter
   given by ``--pythons`` (plain Python, nothing to install).
2. **Training runs.** The same 2-rank job (``--nproc 2``, WebDataset shards of the 8x8 digits, one loader
   worker, 25 short epochs, a progress line and a checkpoint every few steps: each rank starts its validation
   loader's worker 25 times), ``--runs`` times with
   ``data.worker_start=fork`` and as many with ``auto`` (forkserver before Python 3.12), alternating. A run that
   has not finished after ``--timeout`` seconds is counted as hung and its process tree killed. ``--busy N``
   keeps N processes spinning meanwhile: the hang needs another thread inside a short window at the fork, and
   a loaded machine (a test suite beside the run) stretches such windows.

Prints, for each, hung / total.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHURN = r'''
import ctypes, os, sys, threading, time
libc = ctypes.CDLL(None)
CB = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
cb = CB(lambda arg: None)  # called from a new native thread: makes a Python thread state, then deletes it
libc.pthread_create.argtypes = [ctypes.POINTER(ctypes.c_ulong), ctypes.c_void_p, CB, ctypes.c_void_p]
libc.pthread_join.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
stop = False
def churn():
    tid = ctypes.c_ulong()
    while not stop:
        libc.pthread_create(ctypes.byref(tid), None, cb, None)
        libc.pthread_join(tid.value, None)
for _ in range(3):
    threading.Thread(target=churn, daemon=True).start()
hung = 0
for i in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    deadline = time.time() + 2
    while time.time() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            break
        time.sleep(0.001)
    else:
        hung += 1
        os.kill(pid, 9)
        os.waitpid(pid, 0)
stop = True
print(hung)
'''


def interpreter(python: str, forks: int) -> int:
    out = subprocess.run([python, "-W", "ignore", "-c", CHURN, str(forks)], capture_output=True, text=True,
                         timeout=600, check=True)
    return int(out.stdout.split()[-1])


def make_shards(root: Path) -> str:
    import cv2

    from vistrain.cli import main
    from vistrain.config import DataConfig
    from vistrain.data.prepare import load_source

    src = load_source("digits", DataConfig())
    for i in range(len(src.train)):
        folder = root / "png" / src.classes[int(src.train.labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:04d}.png"), src.train.image(i)[..., 0])
    assert main(["datasets", "pack", f"imagefolder:{root / 'png'}", "--to", str(root / "shards"), "--size", "8",
                 "--shard-mb", "0.1"]) == 0
    count = len(list((root / "shards").glob("train-*.tar")))
    return f"webdataset:{root / 'shards'}/train-{{000000..{count - 1:06d}}}.tar"


def one_run(data: str, method: str, out: Path, timeout: float) -> tuple[bool, float]:
    """(hung, seconds) of one 2-rank run."""
    cmd = [sys.executable, "-m", "vistrain", "run", "--headless", "--epochs", "25", "--batch-size", "32",
           "--deterministic", "--nproc", "2", "--augment", "affine-deg10-shift2", "--data", data,
           "--set", "data.num_workers=1", "--set", f"data.worker_start={method}", "--set", "train.threads=1",
           "--set", "checkpoint.every_steps=5", "--set", "checkpoint.keep=2", "--log-every", "1",
           "--set", "train.log_interval=1", "--out", str(out), "--name", "r"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "VISTRAIN_PLUGINS": "none"})
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher, both ranks, their workers and forkservers
        subprocess.run(["pkill", "-9", "-f", str(out)], check=False)
        proc.wait()
        return True, time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"a {method} run failed with exit code {code}: {' '.join(cmd)}")
    return False, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=12, help="2-rank runs per start method (0: skip)")
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds after which a run counts as hung")
    parser.add_argument("--forks", type=int, default=2000, help="forks per interpreter in part 1 (0: skip)")
    parser.add_argument("--pythons", default=sys.executable, help="comma-separated interpreters for part 1")
    parser.add_argument("--busy", type=int, default=0,
                        help="processes spinning on the CPU during part 2 (a loaded machine, as under a test suite)")
    args = parser.parse_args(argv)

    from vistrain.data.dataloader import worker_start_method

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores; auto starts workers by "
          f"{worker_start_method('auto')} here", flush=True)
    if args.forks:
        for python in args.pythons.split(","):
            version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                                     text=True, check=True).stdout.strip()
            print(f"interpreter: Python {version}: {interpreter(python, args.forks)} of {args.forks} forks hung "
                  "beside threads making thread states", flush=True)
    if args.runs:
        with tempfile.TemporaryDirectory(prefix="vistrain-worker-start-") as tmp:
            data = make_shards(Path(tmp) / "digits")
            spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
            print(f"2-rank runs with {args.busy} busy process(es) beside them", flush=True)
            hung = {"fork": [], "auto": []}
            for i in range(args.runs):
                for method in (("fork", "auto") if i % 2 == 0 else ("auto", "fork")):
                    h, secs = one_run(data, method, Path(tmp) / "runs", args.timeout)
                    hung[method].append(h)
                    print(f"run {i + 1} {method}: {'HUNG' if h else 'finished'} after {secs:.0f} s", flush=True)
            for spinner in spinners:
                spinner.kill()
            for method, flags in hung.items():
                print(f"2-rank runs, data.worker_start={method}: {sum(flags)} of {len(flags)} hung", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
