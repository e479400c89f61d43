"""Photo folders at scale: vistrain against torchvision's ImageFolder + DataLoader (PIL), in one run.

    python benchmarks/data_scale.py --root /tmp/scale                   # 2k, 20k, 200k at 256 px; 500 photos
    python benchmarks/data_scale.py --root /tmp/scale --sizes 2000 --photos 100 --steps 10   # a quick look

It first writes the folders it needs under --root (kept for the next invocation): synthetic JPEGs of
10 classes at 256x256 (2,000, 20,000 and 200,000 of them) and photo-like 4000x3000 JPEGs. Then, for
each folder and each tool, at the same worker count (--workers, default 2) and the same crop:

- the training command: ``vistrain run --headless --data imagefolder:DIR --model timm:resnet18 --set
  model.input_size=64 --epochs 1`` against a hand-written torchvision loop (ImageFolder, DataLoader,
  RandomResizedCrop(64), flip, timm's resnet18, AdamW), each in its own process, stopped after --steps
  steps: seconds from the process start to the first optimizer step, peak memory of the whole process
  tree (main process, forkserver and loader workers; RSS summed, and PSS, which counts a shared page once),
  and training images/s over the steps after the first (the model's cost, the same for both);
- the loader alone: images/s of each tool's training loader (random resized crop to 224, flip,
  normalised tensors; batches of 32) over --batches batches after one warm-up batch.

Every figure is printed with the ratio vistrain/torchvision; --json FILE saves them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLASSES = 10


# --- making the folders -------------------------------------------------------------------------------


def _photo(h: int, w: int, seed: int):
    """A smooth, photo-like image (gradients and soft discs) that compresses like a real photo."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        r = int(rng.integers(min(h, w) // 30, min(h, w) // 5))
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), r,
                   tuple(int(c) for c in rng.integers(0, 255, 3)), -1, cv2.LINE_AA)
    noise = rng.normal(0, 6, (h // 4, w // 4, 3)).astype(np.float32)
    img = np.clip(img.astype(np.float32) + cv2.resize(noise, (w, h)), 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (3, 3), 0)


def _write_range(args) -> None:
    import cv2

    folder, start, end, h, w, quality = args
    cv2.setNumThreads(1)
    for i in range(start, end):
        cls = folder / f"class{i % CLASSES:02d}"
        path = cls / f"{i:07d}.jpg"
        if not path.exists():
            cv2.imwrite(str(path), _photo(h, w, i), [cv2.IMWRITE_JPEG_QUALITY, quality])


def make_folder(root: Path, count: int, h: int, w: int, quality: int = 90) -> Path:
    """root/<count>-<h>x<w>/classNN/*.jpg, written once (a finished folder has a .complete marker)."""
    from concurrent.futures import ProcessPoolExecutor

    folder = root / f"{count}-{h}x{w}"
    if (folder / ".complete").exists():
        return folder
    for c in range(CLASSES):
        (folder / f"class{c:02d}").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    step = 500
    jobs = [(folder, a, min(count, a + step), h, w, quality) for a in range(0, count, step)]
    with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(_write_range, jobs))
    (folder / ".complete").write_text("")
    size = sum(p.stat().st_size for p in folder.rglob("*.jpg")) / 1e9
    print(f"wrote {count} JPEGs of {w}x{h} ({size:.2f} GB) in {time.perf_counter() - t0:.0f} s: {folder}", flush=True)
    return folder


# --- memory of a process tree ------------------------------------------------------------------------


class TreeMemory:
    """Samples the RSS and PSS of a process and all its descendants every *interval* seconds; keeps the peaks."""

    def __init__(self, pid: int, interval: float = 0.2):
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = self.peak_pss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except psutil.Error:
                return
            rss = pss = 0.0
            for p in procs:
                try:
                    info = p.memory_full_info()
                    rss += info.rss
                    pss += getattr(info, "pss", info.rss)
                except psutil.Error:
                    pass
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss / 1e9), max(self.peak_pss, pss / 1e9)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# --- the training command of each tool -------------------------------------------------------------


TORCHVISION_LOOP = r'''
import sys, time
t_start = float(sys.argv[4])
import torch, timm
from torchvision import datasets, transforms
torch.manual_seed(0)
tf = transforms.Compose([transforms.RandomResizedCrop(64), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                         transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
data = datasets.ImageFolder(sys.argv[1], tf)
workers = int(sys.argv[2])
loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True, num_workers=workers,
                                     persistent_workers=workers > 0)
model = timm.create_model("resnet18", num_classes=len(data.classes))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
steps, t_first = int(sys.argv[3]), None
seen = 0
for i, (x, y) in enumerate(loader):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    if i == 0:
        t_first = time.time()
        print(f"FIRST {t_first - t_start:.3f}", flush=True)
    else:
        seen += len(x)
    if i + 1 >= steps:
        break
print(f"TRAIN {seen / (time.time() - t_first):.2f}", flush=True)
'''


def run_torchvision(folder: Path, workers: int, steps: int) -> dict:
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-c", TORCHVISION_LOOP, str(folder), str(workers), str(steps), repr(t0)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = TreeMemory(proc.pid)
    out, _ = proc.communicate()
    memory.stop()
    values = dict(line.split(" ", 1) for line in out.splitlines() if line.startswith(("FIRST", "TRAIN")))
    if proc.returncode != 0 or "TRAIN" not in values:
        raise RuntimeError(f"the torchvision loop failed:\n{out[-3000:]}")
    return {"first_step_s": float(values["FIRST"]), "train_img_s": float(values["TRAIN"]),
            "peak_rss_gb": memory.peak_rss, "peak_pss_gb": memory.peak_pss}


def run_vistrain(folder: Path, workers: int, steps: int, out: Path) -> dict:
    """``vistrain run`` on the folder, SIGTERMed once it has reported *steps* steps (it saves and stops); with
    *steps* 0 the whole epoch, its evaluations and the test split."""
    name = f"scale-{folder.name}-{int(time.time() * 1000)}"
    cmd = [sys.executable, "-m", "vistrain", "run", "--headless", "--data", f"imagefolder:{folder}",
           "--model", "timm:resnet18", "--set", "model.input_size=64", "--epochs", "1", "--batch-size", "32",
           "--set", f"data.num_workers={workers}", "--set", f"data.worker_start={WORKER_START}",
           "--set", "train.log_interval=1", "--set", "data.val_fraction=0.02",
           "--set", "data.test_fraction=0.02", "--set", "checkpoint.every_minutes=1000",
           "--out", str(out), "--name", name, "--log-every", "100000"]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "VISTRAIN_PLUGINS": "none"})
    memory = TreeMemory(proc.pid)
    events = out / name / "events.jsonl"
    steps_seen: list[tuple[float, int]] = []
    offset, partial = 0, ""
    while proc.poll() is None:
        if events.exists():
            with open(events) as fh:
                fh.seek(offset)
                chunk = fh.read()
                offset = fh.tell()
            *lines, partial = (partial + chunk).split("\n")
            for line in lines:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("kind") == "batch_end":
                    steps_seen.append((e["time"], e["global_step"]))
            if steps and len(steps_seen) >= steps:
                proc.send_signal(signal.SIGTERM)
                break
        time.sleep(0.05)
    _out, err = proc.communicate()
    memory.stop()
    if not steps and proc.returncode != 0:
        raise RuntimeError(f"vistrain run failed (exit {proc.returncode}):\n{err[-3000:]}")
    if len(steps_seen) < 2:
        raise RuntimeError(f"vistrain run ended after {len(steps_seen)} steps:\n{err[-3000:]}")
    (t1, s1), (t2, s2) = steps_seen[0], steps_seen[-1]
    return {"first_step_s": t1 - t0, "train_img_s": (s2 - s1) * 32 / (t2 - t1), "wall_s": time.time() - t0,
            "peak_rss_gb": memory.peak_rss, "peak_pss_gb": memory.peak_pss}


# --- the loaders alone -------------------------------------------------------------------------------


WORKER_START = "auto"  # vistrain's data.worker_start (--worker-start)

LOADER_BENCH = r'''
import sys, time
tool, folder, workers, batches, worker_start = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
import torch
if tool == "torchvision":
    from torchvision import datasets, transforms
    tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(folder, tf), batch_size=32, shuffle=True,
                                         num_workers=workers, persistent_workers=workers > 0)
else:
    from vistrain.augment.pipeline import build_pipeline
    from vistrain.config import DataConfig
    from vistrain.data.pipeline import ImageTransform, InputSpec, build_loader
    from vistrain.data.prepare import load_source
    images = load_source(f"imagefolder:{folder}", DataConfig()).train
    spec = InputSpec(3, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), resize="crop")
    loader = build_loader(images, ImageTransform(spec, build_pipeline("resized-crop,flip-h")), 32, shuffle=True,
                          num_workers=workers, worker_start=worker_start)
def forever():
    epoch = 1
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1
it = forever()
next(it)  # workers started, first batch made
t0, n = time.perf_counter(), 0
for _ in range(batches):
    x, y = next(it)
    n += len(x)
print(f"LOADER {n / (time.perf_counter() - t0):.2f}", flush=True)
'''


def loader_rate(tool: str, folder: Path, workers: int, batches: int) -> float:
    out = subprocess.run([sys.executable, "-c", LOADER_BENCH, tool, str(folder), str(workers), str(batches), WORKER_START],
                         capture_output=True, text=True, env={**os.environ, "VISTRAIN_PLUGINS": "none"})
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("LOADER")]
    if out.returncode != 0 or not line:
        raise RuntimeError(f"{tool} loader failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return float(line[0].split()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="where the folders are written (and reused)")
    parser.add_argument("--sizes", default="2000,20000,200000", help="image counts of the 256-px folders")
    parser.add_argument("--photos", type=int, default=500, help="4000x3000 photos (0 for none)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-start", default="auto", choices=["auto", "fork", "forkserver", "spawn"],
                        help="vistrain's data.worker_start (torchvision's DataLoader keeps its default, fork)")
    parser.add_argument("--steps", type=int, default=30, help="training steps per command")
    parser.add_argument("--batches", type=int, default=40, help="loader-only batches of 32")
    parser.add_argument("--repeats", type=int, default=3, help="training command pairs per folder (medians shown)")
    parser.add_argument("--skip-train", action="store_true", help="the loaders alone")
    parser.add_argument("--full-epoch", action="store_true", help="only: one whole epoch of vistrain run on each folder")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    global WORKER_START
    WORKER_START = args.worker_start
    import torch

    counts = list(map(int, args.sizes.split(","))) if args.sizes else []
    folders = [(f"{n} JPEGs at 256x256", make_folder(args.root, n, 256, 256), n) for n in counts]
    if args.photos:
        folders.append((f"{args.photos} photos at 4000x3000", make_folder(args.root, args.photos, 3000, 4000), args.photos))
    if args.full_epoch:
        for label, folder, _n in folders:
            r = run_vistrain(folder, args.workers, 0, args.root / "runs")
            print(f"{label}: one whole epoch, with its val and test evaluations: {r['wall_s']:.0f} s, peak RSS of the "
                  f"tree {r['peak_rss_gb']:.2f} GB, peak PSS {r['peak_pss_gb']:.2f} GB, {r['train_img_s']:.1f} img/s",
                  flush=True)
        return 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    from vistrain.data.dataloader import worker_start_method

    print(f"torch {torch.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.workers} loader "
          f"workers (vistrain's started by {worker_start_method(args.worker_start)}), load average {load:.2f}",
          flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="vistrain-scale-") as tmp:
        for label, folder, count in folders:
            row = {"folder": label}
            # within the first epoch (about 96 % of the images train, in batches of 32): an epoch's end would add
            # the evaluation's workers to one side only
            steps = max(2, min(args.steps, int(count * 0.96) // 32 - 1))
            row["loader_vistrain"] = loader_rate("vistrain", folder, args.workers, args.batches)
            row["loader_torchvision"] = loader_rate("torchvision", folder, args.workers, args.batches)
            print(f"{label}: loader alone (crop 224) vistrain {row['loader_vistrain']:.1f} img/s, torchvision "
                  f"{row['loader_torchvision']:.1f} img/s: ratio {row['loader_vistrain'] / row['loader_torchvision']:.2f}",
                  flush=True)
            if not args.skip_train:
                pairs = []
                for r in range(args.repeats):  # alternating who goes first
                    v = run_vistrain(folder, args.workers, steps, Path(tmp)) if r % 2 == 0 else None
                    t = run_torchvision(folder, args.workers, steps)
                    v = v or run_vistrain(folder, args.workers, steps, Path(tmp))
                    pairs.append((v, t))
                row["pairs"] = pairs
                v, t = ({k: statistics.median(p[i][k] for p in pairs) for k in pairs[0][i]} for i in (0, 1))
                row["vistrain"], row["torchvision"] = v, t
                ratios = [a["train_img_s"] / b["train_img_s"] for a, b in pairs]
                ratio = statistics.median(ratios)
                print(f"{label}: training command (timm:resnet18 at 64 px, batch 32)\n"
                      f"  first step     vistrain {v['first_step_s']:6.1f} s    torchvision {t['first_step_s']:6.1f} s\n"
                      f"  peak RSS tree  vistrain {v['peak_rss_gb']:6.2f} GB   torchvision {t['peak_rss_gb']:6.2f} GB   "
                      f"ratio {v['peak_rss_gb'] / t['peak_rss_gb']:.2f}\n"
                      f"  peak PSS tree  vistrain {v['peak_pss_gb']:6.2f} GB   torchvision {t['peak_pss_gb']:6.2f} GB   "
                      f"ratio {v['peak_pss_gb'] / t['peak_pss_gb']:.2f}\n"
                      f"  training       vistrain {v['train_img_s']:6.1f} img/s torchvision {t['train_img_s']:6.1f} img/s "
                      f"ratio {ratio:.2f} (median of {len(pairs)} pair(s): {', '.join(f'{r:.2f}' for r in ratios)})",
                      flush=True)
            results.append(row)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
