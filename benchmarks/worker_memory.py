"""Memory of loader workers over images held in memory: vistrain against torch's DataLoader, in one run.

    python benchmarks/worker_memory.py                          # 20,000 RGB images of 64x64 (246 MB), 3 workers
    python benchmarks/worker_memory.py --images 5000 --workers 2 --methods forkserver   # a quick look

A dataset held in memory (torchvision's CIFAR and MNIST sets, the built-in digits and shapes, a plugin's
arrays) reaches DataLoader workers in one of two ways: a forked worker shares the parent's pages; a worker
started by ``forkserver`` or ``spawn`` (what ``data.worker_start=auto`` picks on Python before 3.12, and the
default on macOS and Windows) receives the dataset by pickle. torch's own DataLoader over a ``TensorDataset``
sends its tensors through shared memory then; this script shows what vistrain's loader costs beside it. Each
(tool, start method) runs in its own process: the loader over --images random uint8 images of --size px, with
a flip as the augmentation (so that it takes the per-image worker path), --workers workers, --batches batches
of 64. Printed: peak PSS of the whole process tree (main process, forkserver and workers; a shared page counted
once) and peak RSS summed over the tree, with the ratio vistrain/torch, each the median of --repeat runs.

torch's loader here returns the stored uint8 images as they are; vistrain's converts, flips and normalises each
image in the worker (as training does), so its workers hold some private memory of their own (buffers, the
allocator's arenas) even when forked: read each tool's change from fork to forkserver/spawn, not only the ratio.
Under forkserver vistrain's workers also share the server's preloaded torch and OpenCV, which torch's own loader
(no preload) imports anew in every worker.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r'''
import sys, time, warnings
import numpy as np, torch
warnings.filterwarnings("ignore", message="This DataLoader will create")  # more workers than cores: asked for
tool, method, n, size, workers, batches = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
labels = np.arange(n) % 10
if tool == "vistrain":
    from vistrain.data.dataloader import dataloader
    from vistrain.data.pipeline import ImageTransform, InputSpec
    from vistrain.data.source import ArrayImageSet
    from vistrain.augment.pipeline import build_pipeline
    spec = InputSpec(3, size, (0.5,) * 3, (0.25,) * 3)
    loader = dataloader(ArrayImageSet(images, labels), ImageTransform(spec, build_pipeline("flip-h")), 64, shuffle=True,
                        seed=0, workers=workers, drop_last=True, pin_memory=False, rank=0, world_size=1, pad=True,
                        worker_start=method)
else:
    data = torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=True, multiprocessing_context=method)
del images
t0, seen = time.perf_counter(), 0
while seen < batches:
    for batch in loader:
        seen += 1
        if seen >= batches:
            break
print(f"{seen} batches in {time.perf_counter() - t0:.1f}s", flush=True)
time.sleep(1.0)  # a last memory sample with every worker alive
'''


def measure(tool: str, method: str, args) -> tuple[float, float, str]:
    sys.path.insert(0, str(HERE))
    from data_scale import TreeMemory

    proc = subprocess.Popen([sys.executable, "-c", CHILD, tool, method, str(args.images), str(args.size),
                             str(args.workers), str(args.batches)], stdout=subprocess.PIPE, text=True)
    memory = TreeMemory(proc.pid, interval=0.1)
    out, _ = proc.communicate()
    memory.stop()
    if proc.returncode:
        raise SystemExit(f"{tool}/{method} failed (exit {proc.returncode})")
    return memory.peak_pss, memory.peak_rss, out.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--methods", default="fork,forkserver,spawn")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median peak is printed")
    args = parser.parse_args(argv)
    mb = args.images * args.size * args.size * 3 / 1e6
    print(f"Python {sys.version.split()[0]}; {args.images:,} images of {args.size}x{args.size}x3 ({mb:.0f} MB), "
          f"{args.workers} workers, {args.batches} batches of 64", flush=True)
    for method in args.methods.split(","):
        row = {}
        for tool in ("vistrain", "torch"):
            t0 = time.perf_counter()
            runs = [measure(tool, method, args) for _ in range(args.repeat)]
            pss, rss = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            row[tool] = pss
            print(f"  {method:10s} {tool:8s} peak PSS tree {pss:5.2f} GB   peak RSS tree {rss:5.2f} GB   "
                  f"(median of {args.repeat}; PSS of each {', '.join(f'{r[0]:.2f}' for r in runs)}; {runs[-1][2]}; "
                  f"{time.perf_counter() - t0:.0f}s in all)", flush=True)
        print(f"  {method:10s} PSS ratio vistrain/torch {row['vistrain'] / row['torch']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
