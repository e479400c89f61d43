"""Calibration of the default recipe, per seed: val and test ECE (15 bins) and NLL before and after temperature
scaling fitted on the val split (``vistrain calibrate``). The test split never enters the fit.

    python benchmarks/calibration.py --seeds 0,1,2 [--set train.epochs=20 ...]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from vistrain.config import resolve_config
from vistrain.inference import calibrate_checkpoint
from vistrain.runner import execute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for seed in [int(s) for s in args.seeds.split(",")]:
            cfg = resolve_config(None, {"output.dir": out, "output.name": f"s{seed}"},
                                 [*args.overrides, f"train.seed={seed}"])
            run = execute(cfg).run_dir
            fit = calibrate_checkpoint(run / "checkpoints" / "best.pt", device="cpu")
            row = {"seed": seed, "T": fit.temperature}
            for split, (before, after) in fit.report.items():
                row[split] = (before["ece"], after["ece"], before["loss"], after["loss"], after["top1"])
            rows.append(row)
            print(f"seed {seed}: T {fit.temperature:.3f} | " + " | ".join(
                f"{s} ECE {100 * r[0]:.2f}% -> {100 * r[1]:.2f}%, NLL {r[2]:.4f} -> {r[3]:.4f}, top-1 {100 * r[4]:.2f}%"
                for s, r in row.items() if s in ("val", "test")), flush=True)
    print("\n| seed | T (fitted on val) | val ECE before → after | test ECE before → after | test NLL before → after |")
    print("|---|---|---|---|---|")
    for r in rows:
        v, t = r["val"], r["test"]
        print(f"| {r['seed']} | {r['T']:.3f} | {100 * v[0]:.2f} → {100 * v[1]:.2f} % | {100 * t[0]:.2f} → "
              f"{100 * t[1]:.2f} % | {t[2]:.4f} → {t[3]:.4f} |")
    mean = lambda split, i: float(np.mean([r[split][i] for r in rows]))  # noqa: E731
    print(f"| mean | {np.mean([r['T'] for r in rows]):.3f} | {100 * mean('val', 0):.2f} → {100 * mean('val', 1):.2f} % | "
          f"{100 * mean('test', 0):.2f} → {100 * mean('test', 1):.2f} % | {mean('test', 2):.4f} → {mean('test', 3):.4f} |")


if __name__ == "__main__":
    main()
