"""Data wait of the default run: augmentation on the device vs per-image OpenCV vs none.

One process trains three copies of the default model (LeNet-5 on mnist5k's training split, the
default batch size and augmentation spec) through ``train_one_epoch``, alternating epoch by epoch
between three train loaders: the batch tensor-op loader that ``vistrain run`` now picks
(``DeviceAugmentLoader``, one batch prefetched in a thread), the per-image OpenCV loader it used
before (``AugmentedArrayLoader``), and no augmentation at all (``TensorBatchLoader``). Prints, per
loader, the median share of the epoch spent waiting for data (what the run's progress lines show
as ``wait``) and the median epoch time, plus paired per-epoch ratios against no augmentation:
the true cost of augmenting, which a prefetching loader cannot hide.

    python benchmarks/data_wait.py [--epochs 6] [--spec SPEC]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs per loader (after one warm-up)")
    parser.add_argument("--spec", default=None, help="augmentation spec (default: the config default)")
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()

    from vistrain import plugins
    from vistrain.augment.pipeline import build_pipeline
    from vistrain.config import resolve_config
    from vistrain.data.pipeline import AugmentedArrayLoader, ImageTransform, TensorBatchLoader, build_loader, materialise
    from vistrain.data.prepare import load_source, prepare_data
    from vistrain.engine.loop import TrainState, train_one_epoch
    from vistrain.models.factory import create_model

    overrides = [] if args.batch_size is None else [f"data.batch_size={args.batch_size}"]
    from vistrain.data import recipes

    cfg = resolve_config(None, None, overrides + ([f"augment.spec={args.spec}"] if args.spec else []))
    source = load_source(cfg.data.name, cfg.data)
    cfg, _why = recipes.resolve(cfg, source)  # augment.spec auto: the dataset's recipe, as vistrain run picks it
    data = prepare_data(source, cfg.data)
    device = torch.device("cpu")
    pipeline = build_pipeline(cfg.augment.spec)
    bs = cfg.data.batch_size

    def setup(make_loader):
        torch.manual_seed(0)
        model, _, input_spec = create_model(cfg.model, len(data.classes), data.source.image_size, data.source.channels)
        loader = make_loader(input_spec)
        opt = plugins.registry("optimizer").entry(cfg.optim.name).load()(model.parameters(), cfg.optim)
        return {"model": model, "loader": loader, "opt": opt, "state": TrainState(), "wait": [], "time": []}

    arms = {
        "device tensor ops": setup(lambda spec: build_loader(data.train, ImageTransform(spec, pipeline), bs, shuffle=True,
                                                             device=device, device_augment=True)),
        "per-image OpenCV": setup(lambda spec: AugmentedArrayLoader(data.train, ImageTransform(spec, pipeline), bs,
                                                                    shuffle=True)),
        "no augmentation": setup(lambda spec: TensorBatchLoader(*materialise(data.train, ImageTransform(spec)), bs,
                                                                shuffle=True)),
    }
    names = list(arms)
    for epoch in range(args.epochs + 1):
        turn = names[epoch % len(names):] + names[:epoch % len(names)]  # rotate who goes first
        for name in turn:
            arm = arms[name]
            t0 = time.perf_counter()
            r = train_one_epoch(arm["model"], arm["loader"], arm["opt"], device=device, epoch=epoch + 1,
                                epochs=args.epochs + 1, state=arm["state"], log_interval=cfg.train.log_interval)
            if epoch > 0:  # the first epoch warms allocators and thread pools
                arm["time"].append(time.perf_counter() - t0)
                arm["wait"].append(r["data_wait_s"] / r["duration_s"])
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(data.train)} images/epoch, batch {bs}, "
          f"spec {cfg.augment.spec!r}, {args.epochs} epochs per loader alternating; load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}")
    base = arms["no augmentation"]["time"]
    for name in names:
        arm = arms[name]
        ratio = statistics.median(t / b for t, b in zip(arm["time"], base))
        print(f"{name:18s} data wait {100 * statistics.median(arm['wait']):5.1f}% of the epoch  "
              f"epoch {statistics.median(arm['time']):6.2f} s  vs no augmentation {ratio:.3f}x")


if __name__ == "__main__":
    main()
