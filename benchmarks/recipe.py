"""The default recipe with and without augmentation: held-out (val) top-1 and wall time of each.

Both runs use `vistrain run`'s defaults (LeNet-5 on mnist5k unless overridden) and differ only
in ``augment.spec``: the default spec versus ``none``. Wall time is measured around the whole
run (data loading included, interpreter start-up excluded).

    .venv/bin/python benchmarks/recipe.py [--set train.epochs=30 ...] [--spec SPEC] [--only aug|none]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from vistrain.config import AugmentConfig, resolve_config
from vistrain.runner import execute


def run_once(spec: str, overrides: list[str], out: str) -> tuple[float, float, float]:
    """(final val top-1, best val top-1, wall seconds) of one run with augmentation *spec*."""
    cfg = resolve_config(None, {"augment.spec": spec, "output.dir": out}, overrides)
    t0 = time.perf_counter()
    result = execute(cfg)
    wall = time.perf_counter() - t0
    return float(result.metrics.get("val_top1", 0.0)), float(result.metrics.get("best_val_top1", 0.0)), wall


def main() -> None:
    """Run both recipes and print one line each, then the difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--spec", default=AugmentConfig().spec, help="augmentation spec of the augmented run")
    parser.add_argument("--only", choices=("aug", "none"), default=None)
    parser.add_argument("--seeds", default="0", help="comma list of train.seed values; means are printed")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available: {cores}; overrides: {args.overrides or 'none'}")
    results: dict[str, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as out:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for label, spec in (("augmented", args.spec), ("no augmentation", "none")):
                if args.only and (args.only == "aug") != (spec == args.spec):
                    continue
                final, best, wall = run_once(spec, [*args.overrides, f"train.seed={seed}"], out)
                results.setdefault(label, []).append((final, best, wall))
                print(f"seed {seed} {label:16s} spec={spec!r:45s} val top-1 final {100 * final:.2f}% "
                      f"best {100 * best:.2f}% wall {wall:.1f}s", flush=True)
    for label, rows in results.items():
        n = len(rows)
        print(f"mean of {n} seed(s) {label:16s}: final {100 * sum(r[0] for r in rows) / n:.2f}%  "
              f"best {100 * sum(r[1] for r in rows) / n:.2f}%  wall {sum(r[2] for r in rows) / n:.1f}s  "
              f"(slowest {max(r[2] for r in rows):.1f}s)")
    if len(results) == 2:
        diff = (sum(r[0] for r in results["augmented"]) - sum(r[0] for r in results["no augmentation"])) \
            / len(results["augmented"])
        print(f"augmentation gain (mean final val top-1): {100 * diff:+.2f} points")


if __name__ == "__main__":
    main()
