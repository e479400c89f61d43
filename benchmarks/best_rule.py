"""Which epoch should be best.pt? Each `checkpoint.best` rule's test top-1 on the same runs.

Trains the default recipe once per (split, seed), keeps every epoch's weights, and afterwards
evaluates each epoch on the run's held-out test split. Every rule then picks its epoch from the
val top-1 alone (``vistrain.engine.loop.update_best``, the code the runs use), and its test
top-1 is printed; "oracle" is the epoch with the highest *test* top-1, which no rule can know,
shown as a ceiling. The test split chooses nothing here: the rules only read val.

    .venv/bin/python benchmarks/best_rule.py --splits 2,3,4 --seeds 0,1,2 [--jobs 2] [--set KEY=VALUE ...] [--save F]
    .venv/bin/python benchmarks/best_rule.py --load F      # the table again from a saved run, without training

``--jobs 2`` runs two trainings side by side with one torch thread each (accuracy only; the
wall time of a run is not a figure here).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RULES = ("max", "1se", "last")


def train_one(split: int, seed: int, overrides: list[str], out: Path) -> dict:
    """One run (in this process): per-epoch val top-1 and test top-1."""
    from vistrain.config import resolve_config
    from vistrain.hookspecs import hookimpl
    from vistrain.inference import evaluate_checkpoint
    from vistrain.runner import execute

    kept = out / "epochs"
    kept.mkdir(parents=True, exist_ok=True)

    class KeepEveryEpoch:
        """Copies each end-of-epoch last.pt once it is in place."""

        @hookimpl
        def on_event(self, event):
            if getattr(event, "kind", "") == "checkpoint_saved" and event.reason == "epoch" \
                    and Path(event.path).name == "last.pt":
                shutil.copy(event.path, kept / f"{event.epoch}.pt")

    cfg = resolve_config(None, {"output.dir": str(out)},
                         [f"data.split_seed={split}", f"train.seed={seed}", *overrides])
    result = execute(cfg, listeners=[KeepEveryEpoch()])
    with open(result.run_dir / "metrics.csv") as fh:
        val = {int(float(r["epoch"])): float(r["val_top1"]) for r in csv.DictReader(fh) if r.get("val_top1")}
    test = {int(p.stem): float(evaluate_checkpoint(p, cfg.data.name, split="test", device="cpu")["top1"])
            for p in kept.glob("*.pt")}
    with open(result.run_dir / "events.jsonl") as fh:  # the val split's size, from an evaluation event
        count = next(e["num_samples"] for e in map(json.loads, fh) if e["kind"] == "eval_end" and e["split"] == "val")
    return {"split": split, "seed": seed, "val": val, "test": test, "val_count": count}


def chosen_epoch(rule: str, val: dict[int, float], count: int) -> int:
    """The epoch *rule* leaves in best.pt, replaying the run's val top-1 through the engine's rule."""
    from vistrain.engine.loop import TrainState, update_best

    state = TrainState()
    for epoch in sorted(val):
        update_best(state, epoch, val[epoch], count, rule)
    return state.best_epoch


def main() -> None:
    """Train every (split, seed), then print each rule's chosen epoch and test top-1, and the means."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="2,3,4", help="data.split_seed values")
    parser.add_argument("--seeds", default="0,1,2", help="train.seed values")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--jobs", type=int, default=1, help="trainings side by side (one torch thread each)")
    parser.add_argument("--save", help="also write every run's per-epoch val and test top-1 to this JSON file")
    parser.add_argument("--load", help="replay the rules on a --save file instead of training")
    parser.add_argument("--one", nargs=3, metavar=("SPLIT", "SEED", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a worker: one training, its figures as JSON on stdout
        split, seed, out = int(args.one[0]), int(args.one[1]), Path(args.one[2])
        print(json.dumps(train_one(split, seed, args.overrides, out)))
        return
    runs = [(int(a), int(b)) for a in args.splits.split(",") for b in args.seeds.split(",")]
    env = dict(os.environ, **({"OMP_NUM_THREADS": "1"} if args.jobs > 1 else {}))
    sets = [f"--set={s}" for s in args.overrides] + (["--set=train.threads=1"] if args.jobs > 1 else [])

    def work(run: tuple[int, int]) -> dict:
        with tempfile.TemporaryDirectory() as out:
            proc = subprocess.run([sys.executable, __file__, "--one", str(run[0]), str(run[1]), out, *sets],
                                  env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"split {run[0]} seed {run[1]} failed:\n{proc.stderr[-2000:]}")
            return json.loads(proc.stdout.strip().splitlines()[-1])

    if args.load:
        with open(args.load) as fh:
            results = json.load(fh)
    else:
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = list(pool.map(work, runs))
    if args.save:
        with open(args.save, "w") as fh:
            json.dump(results, fh)
    print(f"overrides: {args.overrides or 'none'}; test top-1 of the epoch each rule leaves in best.pt")
    print("split seed | " + " | ".join(f"{r:>14s}" for r in (*RULES, "oracle (test)")))
    totals = {r: 0.0 for r in (*RULES, "oracle")}
    for res in results:
        val = {int(k): v for k, v in res["val"].items()}
        test = {int(k): v for k, v in res["test"].items()}
        count = int(res["val_count"] or 0)
        cells = []
        for rule in RULES:
            epoch = chosen_epoch(rule, val, count)
            totals[rule] += test[epoch]
            cells.append(f"ep {epoch:3d} {100 * test[epoch]:6.2f}%")
        best = max(sorted(test), key=lambda e: test[e])
        totals["oracle"] += test[best]
        cells.append(f"ep {best:3d} {100 * test[best]:6.2f}%")
        print(f"{res['split']:5d} {res['seed']:4d} | " + " | ".join(f"{c:>14s}" for c in cells), flush=True)
    n = len(results)
    print("mean       | " + " | ".join(f"{100 * totals[r] / n:13.2f}%" for r in (*RULES, "oracle")))


if __name__ == "__main__":
    main()
