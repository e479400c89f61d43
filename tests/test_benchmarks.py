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


def test_gpu_script_smoke_runs_on_whatever_device_is_here():
    out = _run("bash", "benchmarks/gpu.sh", "--smoke", timeout=300)
    summary = out.split("== summary", 1)[-1]
    assert "== summary" in out
    if __import__("torch").cuda.is_available():  # the GPU path itself: a CUDA row and the NVML comparison
        assert re.search(r"^cuda fp32 eager \(smoke\)\s+lenet5 ", summary, re.M), out
        assert "== NVML" in out and "nvml check: skipped" not in out
    else:
        assert "no CUDA device here: skipping the GPU throughput runs" in out
        assert re.search(r"^cpu fp32 eager \(smoke\)\s+lenet5 ", summary, re.M), out
        assert "nvml check: skipped" in out


def test_dashboard_benchmark_times_the_real_command_in_a_terminal(tmp_path):
    # one pair on the 8x8 digits: the dashboard really draws into the pseudo-terminal (many more bytes
    # than headless lines), q closes it after the run, both ratios are printed, and the pair is saved
    import json

    saved = tmp_path / "pairs.json"
    out = _run(sys.executable, "benchmarks/dashboard_overhead.py", "--data", "digits", "--epochs", "1",
               "--repeats", "1", "--save", str(saved), "--set", "output.dashboard_nice=3", timeout=300)
    pair = re.search(r"terminal bytes (\d+) vs (\d+)", out)
    assert pair and int(pair.group(2)) > 5 * int(pair.group(1)) > 0, out
    assert re.search(r"until done [\d.]+ \(90 % interval [\d.]+-[\d.]+\) \(target <= 1.03\); "
                     r"the run's own time [\d.]+", out), out
    saved_run = json.loads(saved.read_text())
    (only,) = saved_run["pairs"]
    # --set reached both commands: the dashboard process of the real command ran 3 steps nicer than this one
    assert "--set output.dashboard_nice=3" in saved_run["what"]
    assert only["dashboard"]["ui_nice"] == min(os.nice(0) + 3, 19) and only["headless"]["ui_nice"] is None
    # the dashboard process was found and had started up (Textual alone is tenths of a second of CPU)
    assert only["dashboard"]["ui_cpu"] > 0.1 and only["headless"]["ui_cpu"] is None
    assert re.search(r"dashboard process's own CPU until the run finished: median [\d.]+s", out)

    pooled = _run(sys.executable, "benchmarks/dashboard_overhead.py", "--load", str(saved), str(saved))
    ratio = only["dashboard"]["done"] / only["headless"]["done"]
    assert "2 saved file(s)" in pooled and ", 2 pairs" in pooled
    # two copies of one pair: the median and every resample are that pair's ratio
    assert f"until done {ratio:.3f} (90 % interval {ratio:.3f}-{ratio:.3f})" in pooled, pooled


def test_bootstrap_interval_of_a_median():
    import importlib.util

    spec = importlib.util.spec_from_file_location("dashboard_overhead", ROOT / "benchmarks" / "dashboard_overhead.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    values = [float(v) for v in range(1, 102)]  # median 51
    lo, hi = module.bootstrap_median(values)
    assert lo < 51 < hi and hi - lo < 30  # around the median, far narrower than the data
    assert module.bootstrap_median(values) == (lo, hi)  # seeded
    wide = module.bootstrap_median(values[::10])  # 11 of them: a wider interval
    assert wide[1] - wide[0] > hi - lo


def test_best_rule_benchmark_replays_each_rule_on_every_epochs_test_top1():
    out = _run(sys.executable, "benchmarks/best_rule.py", "--splits", "9", "--seeds", "0", "--set", "train.epochs=2",
               "--set", "data.name=digits")
    row = next(line for line in out.splitlines() if line.startswith("    9    0 |"))
    cells = [c.split() for c in row.split("|")[1:]]
    assert [c[1] for c in cells][2] == "2"  # last: the final epoch
    assert all(0 < float(c[2].rstrip("%")) <= 100 for c in cells)
    assert float(cells[3][2].rstrip("%")) >= max(float(c[2].rstrip("%")) for c in cells[:3])  # the test ceiling


def test_best_rule_benchmark_tables_what_each_rule_keeps(tmp_path):
    # a saved run with a noisy early val peak: max keeps epoch 2, 1se epoch 5, last epoch 6
    import json

    val = {1: 0.90, 2: 0.994, 3: 0.985, 4: 0.991, 5: 0.992, 6: 0.989}
    test = {1: 0.89, 2: 0.981, 3: 0.982, 4: 0.983, 5: 0.984, 6: 0.985}
    saved = tmp_path / "runs.json"
    saved.write_text(json.dumps([{"split": 7, "seed": 1, "val": val, "test": test, "val_count": 500}]))
    out = _run(sys.executable, "benchmarks/best_rule.py", "--load", str(saved))
    row = next(line for line in out.splitlines() if line.startswith("    7    1 |"))
    cells = [c.split() for c in row.split("|")[1:]]
    assert [(c[1], c[2]) for c in cells] == [("2", "98.10%"), ("5", "98.40%"), ("6", "98.50%"), ("6", "98.50%")]


def test_dashboard_event_cost_feeds_the_dashboard_process():
    out = _run(sys.executable, "benchmarks/dashboard_overhead.py", "--event-cost", "60", timeout=120)
    match = re.search(r"60 batch events 10 ms apart .* used ([\d.]+)s of CPU, ([\d.]+) ms per batch event", out)
    assert match, out
    assert abs(float(match.group(2)) - 1000 * float(match.group(1)) / 60) < 0.01
