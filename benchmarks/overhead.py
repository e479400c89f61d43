"""vistrain's engine vs a hand-written PyTorch loop: same model, data, seed and batch size.

Both run in one process and alternate epoch by epoch, so machine noise (frequency changes,
neighbours on a shared host) hits both alike. The raw side is the loop a PyTorch user writes
by hand. The vistrain side is the engine as ``vistrain run --headless`` drives it: the model,
optimizer and scheduler from the registries, ``train_one_epoch`` with a TrainControl, batch
events through the event dispatcher to the run's ``events.jsonl`` and ``metrics.csv`` writers
and the plain console reporter, the system sampler thread running, and a checkpoint written
after every epoch as ``fit`` does: serialised at once, then fsync'd and renamed into place by a
worker thread while the next epoch trains. The raw side saves its model, optimizer and
scheduler with a plain ``torch.save`` after every epoch, as a hand-written script does; the median
time of each side's save is printed, so the cost of vistrain's crash-safe write is visible on its
own. Validation is not timed on either side.

    python benchmarks/overhead.py [--epochs 20] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=8e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from vistrain import plugins
    from vistrain.config import resolve_config
    from vistrain.data.pipeline import ImageTransform, TensorBatchLoader
    from vistrain.data.prepare import load_source, prepare_data
    from vistrain.dispatch import EventDispatcher
    from vistrain.checkpoint import make_checkpoint
    from vistrain.durable import DurableWriter
    from vistrain.engine.control import TrainControl
    from vistrain.engine.loop import TrainState, soft_cross_entropy, train_one_epoch
    from vistrain.engine.system import SystemSampler
    from vistrain.models.factory import create_model
    from vistrain.listeners.console import ConsoleReporter
    from vistrain.listeners.csv import MetricsCsvWriter
    from vistrain.listeners.jsonl import JsonlWriter
    from vistrain.data.pipeline import materialise

    cfg = resolve_config(None, None, [
        f"data.batch_size={args.batch_size}", f"optim.lr={args.lr}", f"train.seed={args.seed}",
        f"train.epochs={args.epochs}", "augment.spec=none", "train.label_smoothing=0",
    ])
    data = prepare_data(load_source(cfg.data.name, cfg.data), cfg.data)
    device = torch.device("cpu")

    # --- vistrain side, built as the supervised strategy builds it ---------------------------
    torch.manual_seed(args.seed)
    model_v, spec, input_spec = create_model(cfg.model, 10, data.source.image_size, data.source.channels)
    x, y = materialise(data.train, ImageTransform(input_spec))
    loader_v = TensorBatchLoader(x, y, args.batch_size, shuffle=True, seed=args.seed)
    opt_v = plugins.registry("optimizer").entry(cfg.optim.name).load()(model_v.parameters(), cfg.optim)
    sched_v = plugins.registry("scheduler").entry(cfg.sched.name).load()(opt_v, cfg.sched, args.epochs * len(loader_v),
                                                                         len(loader_v))
    out = Path(tempfile.mkdtemp())
    pm = plugins.get_plugin_manager()
    listeners = [("bench.jsonl", JsonlWriter(out / "events.jsonl")), ("bench.csv", MetricsCsvWriter(out / "metrics.csv")),
                 ("bench.console", ConsoleReporter(stream=io.StringIO(), plain=True))]
    emit = EventDispatcher(pm, listeners=listeners)
    sampler = SystemSampler(emit, cfg.output.system_interval_s)
    sampler.start()
    state, control = TrainState(), TrainControl()
    committer = DurableWriter()  # as run_stage's CheckpointWriter: fsync and rename beside the next epoch

    # --- raw side: the same architecture, data tensors, optimizer and schedule, by hand -----
    from vistrain.models.lenet import LeNet5

    torch.manual_seed(args.seed)
    model_r = LeNet5(10, 1, 28)
    opt_r = torch.optim.AdamW(model_r.parameters(), lr=args.lr, weight_decay=cfg.optim.weight_decay)
    steps = (len(x) + args.batch_size - 1) // args.batch_size
    sched_r = torch.optim.lr_scheduler.OneCycleLR(opt_r, max_lr=args.lr, total_steps=args.epochs * steps,
                                                  pct_start=0.25, cycle_momentum=False, div_factor=25.0,
                                                  final_div_factor=1e4)
    g = torch.Generator().manual_seed(args.seed)
    save_s: dict[str, list[float]] = {"raw": [], "ours": []}

    def raw_epoch() -> float:
        model_r.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(x), generator=g)
        for i in range(steps):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            loss = F.cross_entropy(model_r(x[idx]), y[idx])
            opt_r.zero_grad(set_to_none=True)
            loss.backward()
            opt_r.step()
            sched_r.step()
        loss.item()
        t1 = time.perf_counter()
        torch.save({"model": model_r.state_dict(), "optimizer": opt_r.state_dict(), "scheduler": sched_r.state_dict()},
                   out / "raw.pt")
        save_s["raw"].append(time.perf_counter() - t1)
        return time.perf_counter() - t0

    def vistrain_epoch(epoch: int) -> float:
        t0 = time.perf_counter()
        train_one_epoch(model_v, loader_v, opt_v, device=device, epoch=epoch, epochs=args.epochs, state=state,
                        scheduler=sched_v, loss_fn=soft_cross_entropy, log_interval=cfg.train.log_interval,
                        emit=emit, control=control)
        state.epoch = epoch
        t1 = time.perf_counter()
        committer.save(make_checkpoint(model=model_v, model_spec=spec, input_spec=input_spec.to_dict(),
                                       classes=data.classes, epoch=epoch, global_step=state.global_step,
                                       optimizer=opt_v, scheduler=sched_v), [out / "last.pt"], background=True)
        save_s["ours"].append(time.perf_counter() - t1)
        return time.perf_counter() - t0

    raw, ours = [], []
    try:
        for epoch in range(1, args.epochs + 1):
            first_raw = epoch % 2 == 1  # alternate who goes first
            a = raw_epoch() if first_raw else None
            b = vistrain_epoch(epoch)
            a = a if a is not None else raw_epoch()
            if epoch > 1:  # the first epoch warms allocators and thread pools
                raw.append(a)
                ours.append(b)
    finally:
        committer.close()
        sampler.stop()
        emit.close()
        for name, obj in listeners:
            close = getattr(obj, "close", None)
            if close:
                close()
    raw_med, ours_med = statistics.median(raw), statistics.median(ours)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(x)} images/epoch, batch "
          f"{args.batch_size}, {args.epochs} epochs each, alternating (first epoch dropped)")
    print(f"raw PyTorch loop : {raw_med * 1000:8.1f} ms/epoch (median of {len(raw)})")
    print(f"vistrain engine  : {ours_med * 1000:8.1f} ms/epoch (median of {len(ours)}; events, CSV, JSONL, "
          f"console, system sampler and a checkpoint per epoch included)")
    print(f"checkpoint write per epoch on the training thread: vistrain {statistics.median(save_s['ours']) * 1000:.1f} ms "
          f"(serialised; fsync and rename beside training), "
          f"raw {statistics.median(save_s['raw']) * 1000:.1f} ms (plain torch.save)")
    paired = statistics.median(b / a for a, b in zip(raw, ours))
    print(f"ratio of medians vistrain/raw: {ours_med / raw_med:.3f}")
    print(f"median of per-epoch ratios (each pair run back to back): {paired:.3f}  (target <= 1.03)")


if __name__ == "__main__":
    main()
