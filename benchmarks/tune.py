"""What searching buys on mnist5k: ``vistrain tune`` with random search and with TPE + the median pruner over
the learning rate, weight decay, label smoothing and RandAugment's (N, M), next to the default recipe.

Each search is ``vistrain tune`` itself (a subprocess, as a user runs it) with ``--trials N``; its best trial is
the one with the highest val top-1 (the study's ranking; the test split is never used to choose). Printed per
search: wall time, trials completed and pruned, epochs trained in all, the best trial's parameters and val
top-1, and the **held-out test** top-1 of that trial's ``best.pt`` (evaluated by the trial's run at its end,
read here only after the choice). The default recipe runs with the same epochs per trial over ``--seeds``.

    python benchmarks/tune.py --trials 20 --epochs 20 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = """\
optim.lr: {log_uniform: [1.0e-4, 1.0e-1]}
optim.weight_decay: {log_uniform: [1.0e-6, 1.0e-1]}
train.label_smoothing: {uniform: [0.0, 0.2]}
augment.spec: {randaugment: {n: [1, 3], m: [3, 15]}}
"""


def test_top1(run_dir: Path) -> float | None:
    """The held-out test top-1 the run reported at its end (its last run_finished event)."""
    from vistrain.events import RunFinished
    from vistrain.runfolder import RunFolder, read_events

    finished = [e for e in read_events(RunFolder(run_dir).events)[0] if isinstance(e, RunFinished)]
    return finished[-1].metrics.get("test_top1") if finished else None


def search(out: Path, name: str, sampler: str, pruner: str, trials: int, epochs: int, seed: int) -> dict:
    """Run one study with the vistrain command; returns its figures."""
    from vistrain.tune.summary import load_study

    space = out / "space.yaml"
    space.write_text(SPACE)
    cmd = [sys.executable, "-m", "vistrain", "tune", "--space", str(space), "--out", str(out), "--study", name,
           "--trials", str(trials), "--sampler", sampler, "--pruner", pruner, "--seed", str(seed),
           "--set", f"train.epochs={epochs}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "VISTRAIN_PLUGINS": "none"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    summary = load_study(out / name)
    best = summary.best()[0]
    shown = summary.shown
    return {"name": name, "wall": wall, "complete": sum(t.state == "complete" for t in shown),
            "pruned": sum(t.state == "pruned" for t in shown), "epochs": sum(len(t.steps) for t in shown),
            "best": best, "test": test_top1(Path(best.run_dir)), "load": os.getloadavg()[0]}


def default_recipe(out: Path, epochs: int, seed: int) -> dict:
    from vistrain.config import resolve_config
    from vistrain.runner import execute

    cfg = resolve_config(None, {"output.dir": str(out), "output.name": f"default-{seed}", "train.epochs": epochs,
                                "train.seed": seed})
    t0 = time.perf_counter()
    result = execute(cfg)
    return {"val": result.metrics["best_val_top1"], "test": result.metrics["test_top1"],
            "wall": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial (and of the default recipe)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the default recipe's runs")
    parser.add_argument("--seed", type=int, default=0, help="the samplers' seed")
    parser.add_argument("--out", default=None, help="keep the studies here (default: a temporary folder)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores {cores}; {args.trials} trials of {args.epochs} epochs per search", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        for seed in [int(s) for s in args.seeds.split(",")]:
            r = default_recipe(out / "default", args.epochs, seed)
            print(f"default recipe seed {seed}: val top-1 {100 * r['val']:.2f}%  test top-1 {100 * r['test']:.2f}%  "
                  f"wall {r['wall']:.1f}s", flush=True)
        for name, sampler, pruner in (("random", "random", "none"), ("tpe-median", "tpe", "median")):
            r = search(out, name, sampler, pruner, args.trials, args.epochs, args.seed)
            best = r["best"]
            from vistrain.tune.space import describe

            print(f"{name}: wall {r['wall']:.0f}s, {r['complete']} complete, {r['pruned']} pruned, {r['epochs']} epochs "
                  f"trained; best trial {best.number} val top-1 {100 * best.value:.2f}%, held-out test top-1 "
                  f"{100 * r['test']:.2f}%  ({describe(best.params)})  (load {r['load']:.2f})", flush=True)


if __name__ == "__main__":
    main()
