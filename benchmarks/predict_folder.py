"""Predicting a folder of photos: ``vistrain predict DIR --out preds.csv`` against a hand-written torchvision loop.

    python benchmarks/predict_folder.py --root /tmp/scale                 # 2,000 photos of 500x375, 2 workers
    python benchmarks/predict_folder.py --root /tmp/scale --count 200 --repeats 1   # a quick look

Writes (once, under --root) a folder of photo-like JPEGs (benchmarks/data_scale.py's), and a checkpoint of
timm's resnet18 for 10 classes at 64 px, centre-cropped as vistrain's photo recipe evaluates (random weights:
the time does not depend on them). Then, each in its own process and timed from the process start to the
finished CSV of top-5 classes, alternating, --repeats times:

- ``vistrain predict CKPT DIR --out preds.csv --workers W`` (batches of 64);
- the same with ``--workers 0`` (every image decoded in the main process);
- the loop a user would write instead: torchvision ``datasets.ImageFolder`` (PIL), ``Resize(73)``,
  ``CenterCrop(64)``, ``ToTensor``, ``Normalize``, a ``DataLoader`` with W workers and batches of 64, the same
  weights, softmax, top-5, ``csv.writer``.

Prints images/s of each (median over the repeats) and the ratios vistrain/torchvision; the CSVs' top-1 classes
are compared, so a tool that predicted something else would show.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from data_scale import make_folder  # noqa: E402

TORCHVISION_LOOP = r'''
import csv, sys
import torch, timm
from torchvision import datasets, transforms
folder, ckpt_path, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
spec = ckpt["input"]
model = timm.create_model("resnet18", num_classes=10, in_chans=3)
model.load_state_dict(ckpt["state_dict"])
model.eval()
tf = transforms.Compose([transforms.Resize(int(spec["size"] / spec["crop_pct"])), transforms.CenterCrop(spec["size"]),
                         transforms.ToTensor(), transforms.Normalize(spec["mean"], spec["std"])])
data = datasets.ImageFolder(folder, tf)
loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=False, num_workers=workers)
classes = ckpt["classes"]
with open(out, "w", newline="") as fh, torch.no_grad():
    writer = csv.writer(fh)
    writer.writerow(["path"] + [f"{f}_{r}" for r in range(1, 6) for f in ("class", "prob")])
    done = 0
    for x, _ in loader:
        values, idx = torch.softmax(model(x), dim=1).topk(5, dim=1)
        for j, (vs, ks) in enumerate(zip(values.tolist(), idx.tolist())):
            row = [data.samples[done + j][0]]
            for v, k in zip(vs, ks):
                row += [classes[k], f"{v:.6f}"]
            writer.writerow(row)
        done += len(x)
'''


def make_checkpoint(path: Path) -> Path:
    """A vistrain checkpoint of timm's resnet18, 10 classes, 64 px, centre crop (written once)."""
    if path.exists():
        return path
    import torch

    from vistrain.checkpoint import make_checkpoint as make
    from vistrain.config import ModelConfig
    from vistrain.durable import atomic_torch_save
    from vistrain.models.factory import create_model

    torch.manual_seed(0)
    model, spec, input_spec = create_model(ModelConfig(name="timm:resnet18", input_size=64), 10, (375, 500), 3,
                                           geometry=("crop", 0.875))
    atomic_torch_save(make(model=model.eval(), model_spec=spec, input_spec=input_spec.to_dict(),
                           classes=[f"class{c:02d}" for c in range(10)], epoch=1, global_step=1), path)
    return path


def timed(cmd: list[str]) -> float:
    env = {**os.environ, "VISTRAIN_PLUGINS": "none"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return seconds


def top1(path: Path) -> dict[str, str]:
    with path.open() as fh:
        return {row["path"]: row["class_1"] for row in csv.DictReader(fh)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder for the photos and the checkpoint")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = make_folder(args.root, args.count, 375, 500)
    ckpt = make_checkpoint(args.root / "resnet18-64.pt")
    out = args.root / "predict-out"
    out.mkdir(exist_ok=True)
    vistrain = [sys.executable, "-m", "vistrain", "predict", str(ckpt), str(folder)]
    tools = {
        f"vistrain, {args.workers} workers": [*vistrain, "--workers", str(args.workers), "--out", str(out / "v.csv")],
        "vistrain, 0 workers": [*vistrain, "--workers", "0", "--out", str(out / "v0.csv")],
        f"torchvision, {args.workers} workers": [sys.executable, "-c", TORCHVISION_LOOP, str(folder), str(ckpt),
                                                 str(out / "t.csv"), str(args.workers)],
    }
    seconds: dict[str, list[float]] = {name: [] for name in tools}
    for r in range(args.repeats):
        for name, cmd in tools.items():
            seconds[name].append(timed(cmd))
            print(f"repeat {r + 1}: {name}: {seconds[name][-1]:.1f} s", flush=True)
    ours, theirs = top1(out / "v.csv"), top1(out / "t.csv")
    agree = sum(ours.get(p) == c for p, c in theirs.items()) / len(theirs)
    print(f"\n{args.count} JPEGs of 500x375 -> timm resnet18 at 64 px, top-5 to CSV; "
          f"{os.cpu_count()} cores; median of {args.repeats}, process start to finished CSV")
    rate = {name: args.count / statistics.median(s) for name, s in seconds.items()}
    base = rate[f"torchvision, {args.workers} workers"]
    for name, r in rate.items():
        print(f"  {name:<26} {r:7.0f} images/s   ratio to torchvision {r / base:.2f}")
    print(f"  top-1 class the same for {100 * agree:.1f} % of the images (PIL and OpenCV resize differ slightly)")


if __name__ == "__main__":
    main()
