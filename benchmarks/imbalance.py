"""Class imbalance: the default recipe on mnist5k with one class cut to 10 % of the others, with and without
the balanced sampler and class weights, per seed: held-out test top-1, balanced top-1, macro-F1, and the rare
class's recall and precision.

``imbalanced:NAME@CLASS:SHARE`` (registered here as an in-process dataset plugin) keeps SHARE of CLASS's images
(a fixed draw, seed 1234) and every image of the other classes. vistrain then splits it as any dataset: val
and the held-out test split are stratified, so both are as imbalanced as the training split (what a user's own
held-out photos look like; on mnist5k the rare class then has 10 test images). With ``--test balanced``
(``...:SHARE:balanced``) a stratified 20 % of NAME is held out as the test split *before* the class is cut, so
the test split keeps every class whole (100 rare test images; ImageNet-LT's protocol: balanced top-1 is then
top-1). Either way the test split never reaches training or the choice of best.pt.

    python benchmarks/imbalance.py --seeds 0,1,2 [--rare 5] [--share 0.1] [--test balanced] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from vistrain import plugins
from vistrain.config import resolve_config
from vistrain.data.source import DataSource
from vistrain.hookspecs import hookimpl
from vistrain.runner import execute

DRAW_SEED = 1234
CONDITIONS = {
    "plain": [],
    "balanced sampler": ["data.sampler=balanced"],
    "class weights auto": ["train.class_weights=auto"],
    "both": ["data.sampler=balanced", "train.class_weights=auto"],
}


def load_imbalanced(arg: str | None, cfg) -> DataSource:
    """``imbalanced:NAME@CLASS:SHARE``: NAME with class CLASS cut to SHARE of its images."""
    from vistrain.data.prepare import load_source

    from vistrain.data.splits import stratified_split

    name, _, rest = (arg or "mnist5k@0:0.1").partition("@")
    rare, share, *how = rest.split(":")
    base = load_source(name, cfg)
    pool, test = base.train, None
    if how == ["balanced"]:  # the test split is carved before the cut, so it keeps every class whole
        keep_idx, test_idx = stratified_split(np.asarray(pool.labels), 0.2, DRAW_SEED)
        pool, test = pool.subset(keep_idx), pool.subset(test_idx)
    labels = np.asarray(pool.labels)
    c = base.classes.index(rare)
    idx = np.flatnonzero(labels == c)
    kept = np.random.default_rng(DRAW_SEED).permutation(idx)[: max(1, round(float(share) * len(idx)))]
    keep = np.sort(np.concatenate([np.flatnonzero(labels != c), kept]))
    return DataSource(f"imbalanced:{arg}", base.classes, pool.subset(keep), test=test, channels=base.channels,
                      image_size=base.image_size, recipe=base.recipe)


class ImbalancedPlugin:
    """Registers ``imbalanced:NAME@CLASS:SHARE`` for this process only."""

    @hookimpl
    def register_datasets(self, register):
        register("imbalanced", load_imbalanced, takes_arg=True, description="NAME with one class cut down")


def run_once(data: str, overrides: list[str], out: str, rare: int) -> dict[str, float]:
    """One run: test top-1, balanced top-1, macro-F1, the rare class's recall/precision, wall seconds."""
    cfg = resolve_config(None, {"output.dir": out, "data.name": data}, overrides)
    t0 = time.perf_counter()
    result = execute(cfg)
    wall = time.perf_counter() - t0
    m = result.metrics
    from vistrain.inference import evaluate_checkpoint

    # the figures of the run's own test evaluation, and the per-class ones from the same checkpoint and split
    test = evaluate_checkpoint(result.run_dir / "checkpoints" / m["test_checkpoint"], data, split="test", device="cpu")
    assert abs(test["top1"] - m["test_top1"]) < 1e-9, "the run and eval disagree on the test split"
    return {"top1": m["test_top1"], "balanced": m["test_balanced_top1"], "macro_f1": m["test_macro_f1"],
            "rare_recall": test["class_recall"][rare], "rare_precision": test["class_precision"][rare],
            "rare_images": test["class_support"][rare], "test_images": test["num_samples"], "wall": wall,
            "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rare", default="5", help="the class cut down")
    parser.add_argument("--share", type=float, default=0.1, help="share of the rare class's images kept")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--only", action="append", choices=list(CONDITIONS), help="run only these conditions")
    parser.add_argument("--test", choices=["imbalanced", "balanced"], default="imbalanced",
                        help="the test split: as imbalanced as training (default), or every class whole")
    args = parser.parse_args()
    plugins.get_plugin_manager().register(ImbalancedPlugin(), "benchmark-imbalanced")
    data = f"imbalanced:mnist5k@{args.rare}:{args.share:g}" + (":balanced" if args.test == "balanced" else "")
    rare = int(args.rare)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"data {data}; cores {cores}; overrides: {args.overrides or 'none'}", flush=True)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as out:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for label, sets in CONDITIONS.items():
                if args.only and label not in args.only:
                    continue
                r = run_once(data, [*args.overrides, *sets, f"train.seed={seed}"], out, rare)
                results.setdefault(label, []).append(r)
                print(f"seed {seed} {label:20s} test top-1 {100 * r['top1']:.2f}%  balanced {100 * r['balanced']:.2f}%  "
                      f"macro-F1 {100 * r['macro_f1']:.2f}%  class {args.rare}: recall {100 * r['rare_recall']:.1f}% "
                      f"precision {100 * r['rare_precision']:.1f}% ({r['rare_images']} of {r['test_images']} test "
                      f"images)  wall {r['wall']:.1f}s (load {r['load']:.2f})", flush=True)
    for label, rows in results.items():
        def mean(key: str) -> float:
            return 100 * sum(r[key] for r in rows) / len(rows)

        print(f"mean of {len(rows)} {label:20s} test top-1 {mean('top1'):.2f}%  balanced {mean('balanced'):.2f}%  "
              f"macro-F1 {mean('macro_f1'):.2f}%  class {args.rare} recall {mean('rare_recall'):.1f}% precision "
              f"{mean('rare_precision'):.1f}%")


if __name__ == "__main__":
    main()
