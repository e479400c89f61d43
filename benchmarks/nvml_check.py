"""Check that the dashboard's system panel reads real NVML values on this machine's GPUs.

Loads GPU 0 with matmuls in a thread, takes samples the way a run's system sampler does
(``sample_system`` with an ``NvmlReader``), and compares them with ``nvidia-smi``: the same GPU
names and memory totals, used memory within 5 %, utilisation above zero under load. Prints the
panel's own GPU lines for the sample. Exits 0 when every check holds, 1 when one fails, and 0 with
a "skipped" line when there is no CUDA device or no NVML.

    python benchmarks/nvml_check.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time


def nvidia_smi() -> list[dict]:
    """name, memory used/total (GB) and utilisation % per GPU as nvidia-smi reports them."""
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.used,memory.total,utilization.gpu",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.strip().splitlines():
        name, used, total, util = (part.strip() for part in line.split(","))
        rows.append({"name": name, "mem_used_gb": float(used) * 1024**2 / 1e9,
                     "mem_total_gb": float(total) * 1024**2 / 1e9, "util_percent": float(util)})
    return rows


def main() -> int:
    import torch

    from vistrain.engine.system import NvmlReader, sample_system

    if not torch.cuda.is_available():
        print("nvml check: skipped (no CUDA device)")
        return 0
    reader = NvmlReader()
    if not reader.available:
        print("nvml check: skipped (NVML not readable: install nvidia-ml-py)")
        return 0
    stop = threading.Event()

    def load() -> None:
        a = torch.randn(4096, 4096, device="cuda")
        while not stop.is_set():
            for _ in range(20):
                a = (a @ a).tanh_()
            torch.cuda.synchronize()

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    time.sleep(2.0)  # NVML utilisation is averaged over the last second or so
    sample = sample_system(nvml=reader)
    smi = nvidia_smi() if shutil.which("nvidia-smi") else []
    stop.set()
    worker.join()

    from vistrain.tui.widgets.system import SystemPanel

    failures = []
    for gpu in sample.gpus:
        print("panel: " + " | ".join(line.plain for line in SystemPanel._gpu_lines(gpu, 60)))
    if not sample.gpus:
        failures.append("the sample holds no GPUs")
    if smi:
        if len(smi) != len(sample.gpus):
            failures.append(f"{len(sample.gpus)} GPUs sampled, nvidia-smi lists {len(smi)}")
        for ours, ref in zip(sample.gpus, smi):
            if ours["name"] != ref["name"]:
                failures.append(f"GPU {ours['index']}: name {ours['name']!r} vs nvidia-smi {ref['name']!r}")
            if abs(ours["mem_total_gb"] - ref["mem_total_gb"]) > 0.01 * ref["mem_total_gb"]:
                failures.append(f"GPU {ours['index']}: memory total {ours['mem_total_gb']:.2f} vs {ref['mem_total_gb']:.2f} GB")
            if abs(ours["mem_used_gb"] - ref["mem_used_gb"]) > 0.05 * ref["mem_total_gb"]:
                failures.append(f"GPU {ours['index']}: memory used {ours['mem_used_gb']:.2f} vs {ref['mem_used_gb']:.2f} GB")
            print(f"nvidia-smi: {ref['name']} util {ref['util_percent']:.0f}% mem {ref['mem_used_gb']:.1f}/"
                  f"{ref['mem_total_gb']:.0f} GB")
    else:
        print("nvidia-smi not found: compared with nothing but the load")
    if sample.gpus and sample.gpus[0]["util_percent"] <= 0:
        failures.append("GPU 0 utilisation read as 0 % under a matmul load")
    for failure in failures:
        print(f"nvml check FAILED: {failure}")
    print("nvml check: ok" if not failures else "nvml check: failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
