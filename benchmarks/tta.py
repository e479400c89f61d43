"""Test-time augmentation on held-out data: each seed's best.pt scored without and with every TTA mode.

Two datasets: mnist5k (LeNet-5, the default recipe at a shorter schedule), where a mirror image is a
different digit, and synthetic shapes (mirror-symmetric classes, colour photos-like 32 px, ``shapes``'
default recipe). Every checkpoint is chosen on val as a run chooses it; the modes are compared on the
run's test split, which no run trains on or selects with. The same checkpoints serve every mode.

    python benchmarks/tta.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from vistrain.config import resolve_config
from vistrain.inference import TTA_MODES, evaluate_checkpoint
from vistrain.runner import execute

SETUPS = {
    "mnist5k": ["data.name=mnist5k", "model.name=lenet5", "train.epochs=20"],
    # a short schedule: at 20 epochs every seed scores 100 % and no mode can show a difference
    "shapes": ["data.name=shapes:32", "model.name=lenet5", "train.epochs=8", "data.test_fraction=0.2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--only", default=",".join(SETUPS), help="comma list of " + ", ".join(SETUPS))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as out:
        for name in args.only.split(","):
            top1: dict[str, list[float]] = {m: [] for m in TTA_MODES}
            data = None
            for seed in seeds:
                cfg = resolve_config(None, {"output.dir": out, "output.name": f"{name}-s{seed}"},
                                     [*SETUPS[name], f"train.seed={seed}"])
                data = cfg.data.name
                run = execute(cfg).run_dir
                for mode in TTA_MODES:
                    r = evaluate_checkpoint(run / "checkpoints" / "best.pt", data, split="test", device="cpu", tta=mode)
                    top1[mode].append(100 * r["top1"])
                print(f"{name} seed {seed} ({r['num_samples']} test images): "
                      + " | ".join(f"{m} {v[-1]:.2f}%" for m, v in top1.items()), flush=True)
            print(f"\n{name}: test top-1, mean over seeds {', '.join(map(str, seeds))} (each seed)")
            print("| TTA | mean | seeds | change against none |")
            print("|---|---|---|---|")
            base = np.mean(top1["none"])
            for mode, v in top1.items():
                delta = "" if mode == "none" else f"{np.mean(v) - base:+.2f} points"
                print(f"| {mode} | {np.mean(v):.2f} % | {' / '.join(f'{x:.2f}' for x in v)} | {delta} |", flush=True)
            print()


if __name__ == "__main__":
    main()
