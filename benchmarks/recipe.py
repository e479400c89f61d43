"""The default recipe, per seed: test-split top-1 (of best.pt, of the final epoch's last.pt, and of averaged.pt with checkpoint.average_last), val top-1 and wall time; optionally without augmentation.

Every run uses `vistrain run`'s defaults (LeNet-5 on mnist5k unless overridden). The test split
(``data.test_fraction``) is never trained on or used to choose best.pt, so its accuracy is the
honest one; val top-1 is shown for comparison. Wall time is measured around the whole run (data
loading, every evaluation and checkpoint included, interpreter start-up excluded), with the
load average at the end of each run, since the figures move with the machine.

    .venv/bin/python benchmarks/recipe.py --seeds 0,1,2 [--set train.epochs=30 ...] [--compare-none]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from vistrain.config import AugmentConfig, resolve_config
from vistrain.inference import evaluate_checkpoint
from vistrain.runner import execute


def run_once(spec: str, overrides: list[str], out: str) -> dict[str, float]:
    """Test top-1, final and best.pt val top-1, best.pt's epoch, and wall seconds of one run with augmentation *spec*."""
    cfg = resolve_config(None, {"augment.spec": spec, "output.dir": out}, overrides)
    t0 = time.perf_counter()
    result = execute(cfg)
    wall = time.perf_counter() - t0
    m = result.metrics
    # the final epoch's weights on the same test split, for comparison only (outside the timed run)
    last = evaluate_checkpoint(result.run_dir / "checkpoints" / "last.pt", cfg.data.name, split="test", device="cpu")
    averaged = result.run_dir / "checkpoints" / "averaged.pt"  # checkpoint.average_last: the average on its own
    avg = evaluate_checkpoint(averaged, cfg.data.name, split="test", device="cpu")["top1"] if averaged.exists() else None
    return {"test": float(m.get("test_top1", float("nan"))), "test_last": float(last["top1"]), "test_avg": avg,
            "avg_is_best": bool(m.get("average_is_best")),
            "final": float(m.get("val_top1", 0.0)), "best": float(m.get("best_val_top1", 0.0)),
            "epoch": int(m.get("best_epoch", 0)), "wall": wall,
            "load": os.getloadavg()[0]}


def main() -> None:
    """Run the recipe for every seed and print one line each, then the means."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--spec", default=AugmentConfig().spec, help="augmentation spec of the augmented run")
    parser.add_argument("--compare-none", action="store_true", help="also run each seed without augmentation")
    parser.add_argument("--seeds", default="0", help="comma list of train.seed values; means are printed")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available: {cores}; overrides: {args.overrides or 'none'}", flush=True)
    specs = [("default", args.spec)] + ([("no augmentation", "none")] if args.compare_none else [])
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as out:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for label, spec in specs:
                r = run_once(spec, [*args.overrides, f"train.seed={seed}"], out)
                results.setdefault(label, []).append(r)
                avg = (f", averaged.pt {100 * r['test_avg']:.2f}%{' = best.pt' if r['avg_is_best'] else ''}"
                       if r["test_avg"] is not None else "")
                print(f"seed {seed} {label:16s} test top-1 {100 * r['test']:.2f}% (final epoch "
                      f"{100 * r['test_last']:.2f}%{avg})  val top-1 final "
                      f"{100 * r['final']:.2f}% best.pt {100 * r['best']:.2f}% (epoch {r['epoch']})  wall {r['wall']:.1f}s  "
                      f"(load average {r['load']:.2f})", flush=True)
    for label, rows in results.items():
        n = len(rows)

        def mean(key: str) -> float:
            return sum(r[key] for r in rows) / n

        avg = f", averaged.pt {100 * mean('test_avg'):.2f}%" if all(r["test_avg"] is not None for r in rows) else ""
        print(f"mean of {n} seed(s) {label:16s}: test top-1 {100 * mean('test'):.2f}% (final epoch "
              f"{100 * mean('test_last'):.2f}%{avg})  (val final "
              f"{100 * mean('final'):.2f}%, best.pt {100 * mean('best'):.2f}%)  wall {mean('wall'):.1f}s "
              f"(slowest {max(r['wall'] for r in rows):.1f}s)")


if __name__ == "__main__":
    main()
