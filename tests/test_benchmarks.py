"""The performance benchmarks run end to end in their smoke modes (figures themselves are not asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str, timeout: int = 240) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VISTRAIN_PLUGINS": "none"}
    proc = subprocess.run(list(cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_throughput_quick_prints_a_paired_row_per_model():
    out = _run(sys.executable, "benchmarks/throughput.py", "--quick")
    assert re.search(r"matmul [\d.]+ GFLOP/s; load average [\d.]+", out)
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("lenet5 ", "mlp "))}
    assert set(rows) == {"lenet5", "mlp"}
    for line in rows.values():
        train_ours, train_raw, ratio = (float(v) for v in line.split("|")[1].split()[:3])
        assert train_ours > 0 and train_raw > 0 and abs(ratio - train_ours / train_raw) < 0.5 * ratio
    assert "training ratio" in out


def test_gpu_script_runs_on_the_cpu_and_says_what_it_skipped():
    if __import__("torch").cuda.is_available():
        return  # on a GPU machine the script does the real (longer) run; see benchmarks/gpu.sh
    out = _run("bash", "benchmarks/gpu.sh", timeout=300)
    assert "no CUDA device here: skipping the GPU throughput runs" in out
    assert "== summary" in out and "cpu fp32 eager (smoke)" in out and "nvml check: skipped" in out
