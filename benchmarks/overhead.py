"""vistrain's engine vs a hand-written PyTorch loop: same model, data, seed and batch size.

Runs both in one process, alternating, and prints the median per-epoch training time of each
and their ratio (vistrain / raw). The vistrain side is a full headless run through
``vistrain.runner.execute`` (events.jsonl, metrics.csv, checkpoints, console reporter to
/dev/null, system sampler) on the default LeNet-5 / mnist5k recipe with augmentation off.

    python benchmarks/overhead.py [--epochs 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F


def raw_loop(x, y, epochs: int, batch_size: int, lr: float, seed: int) -> list[float]:
    """The loop a PyTorch user would write by hand; returns seconds per epoch."""
    from vistrain.models.lenet import LeNet5

    torch.manual_seed(seed)
    model = LeNet5(10, 1, 28)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = (len(x) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.25,
                                                cycle_momentum=False, div_factor=25.0, final_div_factor=1e4)
    g = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(x), generator=g)
        for i in range(steps):
            idx = order[i * batch_size:(i + 1) * batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        loss.item()
        times.append(time.perf_counter() - t0)
    return times


def vistrain_run(epochs: int, batch_size: int, lr: float, seed: int) -> list[float]:
    """A full headless vistrain run; returns the engine's measured seconds per epoch."""
    from vistrain import plugins
    from vistrain.config import resolve_config
    from vistrain.hookspecs import hookimpl
    from vistrain.reporters.console import ConsoleReporter
    from vistrain.runner import execute

    class EpochTimes:
        def __init__(self):
            self.times = []

        @hookimpl
        def on_event(self, event):
            if event.kind == "epoch_end":
                self.times.append(event.duration_s)

    rec = EpochTimes()
    with tempfile.TemporaryDirectory() as out:
        cfg = resolve_config(None, None, [
            f"train.epochs={epochs}", f"data.batch_size={batch_size}", f"optim.lr={lr}", f"train.seed={seed}",
            "augment.spec=none", f"output.dir={out}", "model.name=lenet5", "data.name=mnist5k",
            "optim.name=adamw", "sched.name=onecycle",
        ])
        plugins.register_plugin(rec, "bench-recorder")
        try:
            execute(cfg, listeners=[ConsoleReporter(stream=io.StringIO(), plain=True)])
        finally:
            plugins.unregister_plugin("bench-recorder")
    return rec.times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=4e-3)
    args = parser.parse_args()

    from vistrain.config import DataConfig
    from vistrain.data.pipeline import ImageTransform, InputSpec, materialise
    from vistrain.data.prepare import load_source, prepare_data

    data_cfg = DataConfig()
    data = prepare_data(load_source("mnist5k", data_cfg), data_cfg)
    x, y = materialise(data.train, ImageTransform(InputSpec(1, 28, (0.1307,), (0.3081,))))
    raw, ours = [], []
    for r in range(args.repeats):
        # skip each run's first epoch: allocator and thread-pool warm-up
        raw += raw_loop(x, y, args.epochs, args.batch_size, args.lr, seed=r)[1:]
        ours += vistrain_run(args.epochs, args.batch_size, args.lr, seed=r)[1:]
    raw_med, ours_med = statistics.median(raw), statistics.median(ours)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(x)} images/epoch, "
          f"batch {args.batch_size}, {args.repeats}x{args.epochs} epochs each (first epoch of each run dropped)")
    print(f"raw PyTorch loop : {raw_med * 1000:8.1f} ms/epoch (median of {len(raw)})")
    print(f"vistrain engine  : {ours_med * 1000:8.1f} ms/epoch (median of {len(ours)})")
    print(f"ratio vistrain/raw: {ours_med / raw_med:.3f}  (target <= 1.03)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
