"""k-NN on mnist5k: batched on-device distances vs one query at a time; prints accuracy and the speed ratio.

Run: python benchmarks/knn_batching.py [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    """Time both ways over the val split and check they predict the same."""
    from vistrain.config import DataConfig
    from vistrain.data.pipeline import ImageTransform, InputSpec, build_loader
    from vistrain.data.prepare import load_source, prepare_data
    from vistrain.models.knn import KNNClassifier

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    dev = torch.device(args.device)
    cfg = DataConfig()
    data = prepare_data(load_source("mnist5k", cfg), cfg)
    tf = ImageTransform(InputSpec(1, 28, (0.5,), (0.5,)))
    model = KNNClassifier(10, k=args.k).to(dev)
    model.fit(build_loader(data.train, tf, 1024, shuffle=False, num_workers=0), dev)
    x, y = next(iter(build_loader(data.val, tf, len(data.val), shuffle=False, num_workers=0)))
    x, y = x.to(dev), y.to(dev)

    t0 = time.perf_counter()
    batched = model(x).argmax(1)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_batched = time.perf_counter() - t0

    t0 = time.perf_counter()
    bank, labels = model.bank, model.bank_labels
    single = []
    n_loop = min(200, len(x))  # the loop is slow; time a slice and scale per query
    for q in x[:n_loop].flatten(1):  # the textbook loop: one query, all distances, top-k
        nearest = (bank - q).pow(2).sum(1).topk(args.k, largest=False).indices
        single.append(torch.bincount(labels[nearest], minlength=10).argmax())
    single = torch.stack(single)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_single = (time.perf_counter() - t0) * len(x) / n_loop

    acc = (batched == y).float().mean().item()
    agree = (batched[:n_loop] == single).float().mean().item()
    print(f"k={args.k} on {len(bank)} references, {len(y)} queries, {dev}: top-1 {100 * acc:.2f}%")
    print(f"batched {t_batched * 1000:.1f} ms, per-query loop {t_single * 1000:.1f} ms (scaled from {n_loop}), "
          f"ratio {t_single / t_batched:.1f}x; predictions agree on {100 * agree:.1f}% "
          f"(the loop breaks vote ties by lowest class, the model by nearest neighbour)")


if __name__ == "__main__":
    main()
