"""Strategies measured on held-out data: distillation, Noisy Student, pseudo-labelling and transfer.

Every run trains on a dataset whose test split is held out from it: ``heldout:NAME`` (registered
here as an in-process dataset plugin) removes a stratified 20 % of NAME's images (seed 1234) into
``test``. vistrain then splits the rest into train/val as usual and picks checkpoints on val; the
test split is used only for the figures printed here, never to pick a checkpoint or a setting.

    python benchmarks/strategies.py                  # all four, the settings in benchmarks/README.md
    python benchmarks/strategies.py --only noisy --quick   # a few epochs, to check it runs
    python benchmarks/strategies.py --only consistency --e labels=10 --e seeds=0/1   # FixMatch, FlexMatch & co.
    # --e baselines=0: without supervised, pseudo-label and noisy-student
    # --e ceiling=0: without "supervised, all labels" (the same recipe on every training label, for reference)
    # --e methods=fixmatch: the consistency methods to run (default fixmatch/flexmatch; --e methods= for none)
    # --e width=2: every method's model (Noisy Student's students too) is LeNet-5 at twice the width
    # --e norm=batch: every method's model (Noisy Student's students too) is LeNet-5 with BatchNorm
    # --e selftrain=pseudo-label: a pseudo-label (or noisy-student) student of each fixmatch/flexmatch run's best.pt
    # --consistency-set strategy.params.selftrain=pseudo-label --variant st --e methods=fixmatch: the same round
    #   inside the fixmatch run (its first stage and its student are both reported)
    # --e pseudo_threshold=0.5: the pseudo-label runs' threshold (default: the strategy's, 0.9)
    # --e drop=0.5: every method's model has dropout before its classifier (model.drop_rate; Noisy Student's
    #   students keep their own strategy.params.dropout)

Printed per experiment: held-out error of every model and the ratio the acceptance asks for.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from vistrain import plugins
from vistrain.config import resolve_config
from vistrain.data.source import DataSource
from vistrain.data.splits import stratified_split
from vistrain.hookspecs import hookimpl
from vistrain.inference import evaluate_checkpoint
from vistrain.runner import execute

HELD_OUT_FRACTION = 0.2
HELD_OUT_SEED = 1234
SPEC = "affine-deg10-shift2-scale0.1-shear5"
# Noisy Student's students are larger than the teacher (Xie et al.): LeNet-5 at 2x, then 3x width
WIDE_STUDENTS = "strategy.params.students=[{name: lenet5, kwargs: {width: 2}}, {name: lenet5, kwargs: {width: 3}}]"


def load_heldout(arg: str | None, cfg) -> DataSource:
    """``heldout:NAME`` (or ``NAME@FRACTION``): NAME's images minus a stratified held-out test split."""
    from vistrain.data.prepare import load_source

    name, _, fraction = (arg or "mnist5k").partition("@")
    base = load_source(name, cfg)
    keep, test = stratified_split(base.train.labels, float(fraction or HELD_OUT_FRACTION), HELD_OUT_SEED)
    return DataSource(f"heldout:{base.name}", base.classes, base.train.subset(keep), test=base.train.subset(test),
                      channels=base.channels, image_size=base.image_size)


class HeldOutPlugin:
    """Registers ``heldout:NAME`` for this process only."""

    @hookimpl
    def register_datasets(self, register):
        register("heldout", load_heldout, takes_arg=True, description="NAME minus a held-out test split")


def run(out: Path, name: str, sets: list[str]) -> Path:
    """One headless run; returns its checkpoints folder. A run folder left by an interrupted
    benchmark (same --out) is resumed from its ``last.pt`` instead of started again."""
    from vistrain.checkpoint import load_checkpoint

    # data.test_fraction=0: the held-out split is heldout:NAME's own test split, carved before val;
    # val_fraction pinned so the figures do not move with the default
    # the augmentation is pinned too (the default recipe's before it gained elastic distortion), so
    # teacher, students and baselines keep the jitter the figures in benchmarks/README.md were measured with, and so
    # is the best.pt rule (max, the highest val top-1: the default before it became 1se)
    cfg = resolve_config(None, {"output.dir": str(out), "output.name": name},
                         ["data.test_fraction=0", "data.val_fraction=0.2", f"augment.spec={SPEC}",
                          "checkpoint.best=max", *sets])
    t0 = time.perf_counter()
    last = out / name / "checkpoints" / "last.pt"
    if last.exists():
        print(f"  [{name}] resuming from {last}", flush=True)
        result = execute(cfg, resume=load_checkpoint(last), run_dir=out / name)
    else:
        result = execute(cfg)
    print(f"  [{name}] finished in {time.perf_counter() - t0:.0f}s, best val top-1 "
          f"{100 * float(result.metrics.get('best_val_top1', 0)):.2f}%", flush=True)
    return result.run_dir / "checkpoints"


def test_error(checkpoint: Path, data: str) -> float:
    """Held-out (test split) error of a checkpoint."""
    return 1.0 - evaluate_checkpoint(checkpoint, data, split="test", device="cpu")["top1"]


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


DISTILL_DATA = "heldout:mnist5k@0.4"  # 2,000 held-out digits; 2,400 train and 600 val remain
# (name, strategy.params); every one with the teacher checkpoint of its seed, T and alpha of the settings line
DISTILL_METHODS = {
    "kd": [],
    "dkd": ["strategy.params.loss=dkd", "strategy.params.alpha=0.5"],
    "dist": ["strategy.params.loss=dist", "strategy.params.alpha=0.5"],
    "kd+fitnet": ["strategy.params.feature=fitnet"],
    "kd+mixup": ["strategy.params.mix=mixup", "strategy.params.alpha=1.0"],
}


def spread(values: list[float]) -> str:
    """mean ± standard deviation over seeds, in percent, then each seed."""
    v = np.asarray(values) * 100
    return f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0:.2f} % ({' / '.join(f'{x:.2f}' for x in v)})"


def distill(out: Path, e: dict) -> None:
    """LeNet-5 teacher; MLP 2x800 alone and distilled by each method, over seeds; same augmentation and schedule.

    Per seed (``train.seed``, which also draws the val split): a teacher, the student alone and every method of
    ``DISTILL_METHODS`` for ``distill`` epochs, and (``distill_long`` > 0) the student alone and ``kd+mixup`` for
    that many epochs, Beyer et al.'s "patient" schedule. Gap closed = (alone − distilled) / (alone − teacher) with
    the seed's own teacher and student alone."""
    data = DISTILL_DATA
    n = len(load_heldout(data.partition(":")[2], None).test)
    seeds = list(range(e["distill_seeds"]))
    errors: dict[str, list[float]] = {}

    def record(key: str, ck: Path) -> float:
        errors.setdefault(key, []).append(test_error(ck / "best.pt", data))
        return errors[key][-1]

    for seed in seeds:
        base = [f"data.name={data}", f"train.seed={seed}"]
        teacher = run(out, f"distill-teacher-s{seed}", [*base, f"train.epochs={e['distill_teacher']}", "model.name=lenet5"])
        record("teacher", teacher)
        # (epochs, tag, extra settings, methods): the main schedule; the long one; Hinton et al.'s protocol, where
        # the students see no jitter (the teacher keeps its own) and T = 20
        schedules = [(e["distill"], "", [], list(DISTILL_METHODS))]
        if e["distill_long"]:
            schedules.append((e["distill_long"], f"@{e['distill_long']}ep", [], ["kd", "kd+mixup"]))
        if e["distill_hinton"]:
            schedules.append((e["distill"], "@no-jitter", ["augment.spec=none"], ["kd"]))
        for epochs, tag, extra, methods in schedules:  # extra: for the student alone and the distilled ones
            common = [*base, f"train.epochs={epochs}", "model.name=mlp", *extra]
            record(f"alone{tag}", run(out, f"distill-alone{tag}-s{seed}", common))
            for method, sets in DISTILL_METHODS.items():
                if method not in methods:
                    continue
                ck = run(out, f"distill-{method}{tag}-s{seed}",
                         [*common, "strategy.name=distill", f"strategy.params.teacher={teacher / 'best.pt'}",
                          f"strategy.params.temperature={20 if tag == '@no-jitter' else e['T']}",
                          f"strategy.params.alpha={e['alpha']}", *sets])
                record(f"{method}{tag}", ck)
        print(f"DISTILL seed {seed}: " + " | ".join(f"{k} {pct(v[-1])}" for k, v in errors.items()), flush=True)
    print(f"DISTILL ({n} held-out images, {len(seeds)} seeds; LeNet-5 teacher -> MLP 2x800, {e['distill']} epochs, "
          f"T={e['T']}): held-out error, mean ± sd (each seed)")
    rows = []
    for key, values in errors.items():
        line = f"  {key:<16} {spread(values)}"
        v = np.asarray(values) * 100
        row = [key, f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0:.2f} %", " / ".join(f"{x:.2f}" for x in v), ""]
        alone = errors["alone" + (key[key.index("@"):] if "@" in key else "")]
        if key != "teacher" and not key.startswith("alone"):
            closed = [(a - d) / (a - t) if a > t else float("nan") for a, d, t in zip(alone, values, errors["teacher"])]
            line += (f"  gap closed {np.nanmean(closed):.0%} ({' / '.join(f'{c:.0%}' for c in closed)})")
            row[3] = f"{100 * np.nanmean(closed):.0f} % ({' / '.join(f'{100 * c:.0f}' for c in closed)})"
        rows.append(row)
        print(line, flush=True)
    print("\nThe table for benchmarks/README.md:\n")
    print(f"| student (held-out error) | mean ± sd | seeds {' / '.join(map(str, seeds))} | gap closed, mean (per seed) |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |", flush=True)


def noisy(out: Path, e: dict) -> None:
    """Noisy Student (teacher stage + 2 rounds) on 50 labels/class."""
    data = "heldout:mnist5k"
    common = [f"data.name={data}", "data.labels_per_class=50", f"train.epochs={e['student']}"]
    ns = run(out, "noisy-student", [*common, "strategy.name=noisy-student", WIDE_STUDENTS,
                                    f"strategy.params.teacher_epochs={e['teacher']}", *e["noisy_sets"]])
    errors = {stage: test_error(ns / f"{stage}-best.pt", data) for stage in ("teacher", "student1", "student2")}
    print("NOISY STUDENT (50 labels/class): " + " | ".join(f"{k} {pct(v)}" for k, v in errors.items()))
    t = errors["teacher"]
    for k in ("student1", "student2"):
        print(f"  {k}: error ratio to the teacher {errors[k] / t:.2f}, accuracy {pct(1 - errors[k])}")


def pseudo(out: Path, e: dict) -> None:
    """Pseudo-label from the Noisy Student run's teacher (run ``noisy`` first, or at the same time)."""
    data = "heldout:mnist5k"
    teacher = out / "noisy-student" / "checkpoints" / "teacher-best.pt"
    while not (out / "noisy-student" / "checkpoints" / "student1-last.pt").exists():  # teacher stage finished
        time.sleep(10)
    common = [f"data.name={data}", "data.labels_per_class=50", f"train.epochs={e['student']}"]
    pl = run(out, "pseudo-label", [*common, "strategy.name=pseudo-label", f"strategy.params.teacher={teacher}",
                                   *e["pseudo_sets"]])
    t, p = test_error(teacher, data), test_error(pl / "best.pt", data)
    print(f"PSEUDO-LABEL (the Noisy Student run's teacher): teacher {pct(t)} | student {pct(p)} | ratio {p / t:.2f}")


def transfer(out: Path, e: dict) -> None:
    """LeNet-5 from mnist5k to digits with 10 labels/class: scratch, probe, finetune, per labelled subset.

    ``digits:mnist`` centres each digit in 28x28 as MNIST does; all models of one subset see the same
    100 labelled images (``data.split_seed`` picks them) and the same schedule. "probe-aug" is the
    probe as it was before (cache_features=false, probe_lr_mult=1): augmented images through the frozen backbone at the network's LR."""
    data = f"heldout:{e['digits']}"
    source = run(out, "transfer-source", ["data.name=mnist5k", f"train.epochs={e['source']}"])
    models = {"scratch": [], "probe": ["strategy.params.mode=probe"],
              "probe-aug": ["strategy.params.mode=probe", "strategy.params.cache_features=false",
                            "strategy.params.probe_lr_mult=1"],
              "finetune": ["strategy.params.mode=finetune"]}
    errors: dict[str, list[float]] = {k: [] for k in models}
    for seed in range(e["transfer_subsets"]):
        common = [f"data.name={data}", "data.labels_per_class=10", f"train.epochs={e['transfer']}",
                  "data.batch_size=32", f"data.split_seed={seed}"]
        for name, sets in models.items():
            extra = [] if name == "scratch" else ["strategy.name=transfer", f"strategy.params.source={source / 'best.pt'}"]
            ck = run(out, f"transfer-{name}-s{seed}", [*common, *extra, *sets])
            errors[name].append(test_error(ck / "best.pt", data))
        print(f"TRANSFER subset {seed}: " + " | ".join(f"{k} {pct(v[-1])}" for k, v in errors.items()), flush=True)
    print(f"TRANSFER mnist5k -> {e['digits']} (10 labels/class, mean of {e['transfer_subsets']} labelled subsets): "
          + " | ".join(f"{k} {pct(float(np.mean(v)))}" for k, v in errors.items()))
    wins = sum(p < s for p, s in zip(errors["probe"], errors["scratch"]))
    print(f"  probe beats scratch on {wins} of {len(errors['probe'])} subsets; "
          f"probe / scratch error ratio {np.mean(errors['probe']) / np.mean(errors['scratch']):.2f}")


CONSISTENCY_BATCH, CONSISTENCY_MU = 32, 7


def consistency(out: Path, e: dict) -> None:
    """Supervised, pseudo-label, noisy-student, fixmatch and flexmatch on ``labels`` labels per class of mnist5k,
    one seed per ``seeds`` entry; every trained model (each stage) takes the same number of optimizer steps with
    the same labelled batch, the same model (LeNet-5), augmentation and schedule. The pseudo-label and Noisy
    Student runs use the supervised run of their seed as their teacher (so they cost two and three times its
    steps). The test split (1,000 digits) is held out from everything; best.pt is picked on val."""
    from vistrain.checkpoint import load_checkpoint

    data = "heldout:mnist5k"
    steps, batch, mu = e["consistency_steps"], CONSISTENCY_BATCH, CONSISTENCY_MU
    # match_images=1: the other methods take (1 + 2 mu) times the steps, so their final model sees as many images
    # as the consistency methods' (B labelled + 2 x mu x B unlabelled views a step)
    other_steps = steps * (1 + 2 * mu) if e["match_images"] else steps
    errors: dict[str, list[float]] = {}
    seen: dict[str, list[int]] = {}
    labels = e["labels"]
    for seed in [int(x) for x in str(e["seeds"]).split("/")]:
        common = [f"data.name={data}", f"data.labels_per_class={labels}", f"train.seed={seed}",
                  f"data.batch_size={batch}", "train.threads=1", "train.log_interval=50"]
        width = e["width"]
        kwargs = ", ".join(([f"width: {width:g}"] if width != 1 else []) + ([f"norm: {e['norm']}"] if e["norm"] else []))
        model = f"{{name: lenet5, kwargs: {{{kwargs}}}}}" if kwargs else "lenet5"
        if kwargs:
            common.append(f"model.kwargs={{{kwargs}}}")
        if e["drop"]:
            common.append(f"model.drop_rate={e['drop']:g}")
        source = load_heldout("mnist5k", None)
        train = int(round(len(source.train) * 0.8))  # data.val_fraction=0.2 of what the test split left
        labelled, pool = labels * len(source.classes), train - labels * len(source.classes)

        def epochs_for(per_epoch: int, budget: int = other_steps) -> int:
            return max(1, round(budget / per_epoch))

        def record(key: str, ck: Path, images_per_step: int, prefix: str = "") -> None:
            errors.setdefault(key, []).append(test_error(ck / f"{prefix}best.pt", data))
            done = int(load_checkpoint(ck / f"{prefix}last.pt")["global_step"])
            seen.setdefault(key, []).append(done * images_per_step)

        wide = (f"-w{width:g}" if width != 1 else "") + (f"-d{e['drop']:g}" if e["drop"] else "") \
            + (f"-{e['norm']}norm" if e["norm"] else "")
        tag = f"{labels}pc-s{seed}" + ("-img" if e["match_images"] else "") + wide
        # --e pseudo_threshold=X: every pseudo-label run (the baseline's and the self-training students') keeps
        # pseudo-labels of confidence >= X instead of the strategy's default
        pl_t = e["pseudo_threshold"]
        pl_sets, pl_suffix, pl_key = (([f"strategy.params.threshold={pl_t:g}"], f"-t{pl_t:g}", f" (threshold {pl_t:g})")
                                      if pl_t >= 0 else ([], "", ""))
        # the students' settings, for the supervised teacher's and (--e selftrain) the consistency runs':
        # pseudo-labelled students see labelled + accepted pool images in one shuffled set (about the whole pool);
        # Noisy Student's 1 labelled : 3 pseudo-labelled per batch, an epoch one pass over the (balanced) pseudo-labels
        student_sets = {
            "pseudo-label": [*pl_sets, f"train.epochs={epochs_for(-(-(labelled + pool) // batch))}"],
            "noisy-student": [f"strategy.params.students=[{model}]",
                              f"train.epochs={epochs_for(-(-pool // (batch - batch // 4)))}"]}
        if not e["consistency_sets"] and e["baselines"]:  # a variant of fixmatch/flexmatch runs alone
            sup_epochs = epochs_for(-(-labelled // batch))
            sup = run(out, f"sup-{tag}", [*common, f"train.epochs={sup_epochs}", f"train.eval_every={max(1, sup_epochs // 150)}"])
            record("supervised", sup, batch)
            teacher = f"strategy.params.teacher={sup / 'best.pt'}"
            pl = run(out, f"pseudo-{tag}{pl_suffix}", [*common, "strategy.name=pseudo-label", teacher,
                                                       *student_sets["pseudo-label"]])
            record(f"pseudo-label{pl_key}", pl, batch)
            ns = run(out, f"noisy-{tag}", [*common, "strategy.name=noisy-student", teacher, *student_sets["noisy-student"]])
            record("noisy-student", ns, batch)
        if not e["consistency_sets"] and e["ceiling"]:  # the same recipe on every training label: what 1,000 test
            # digits allow this model; the other methods' errors are read against it
            full_epochs = epochs_for(-(-train // batch))
            full = run(out, f"sup-all-{tag}", [*[c for c in common if not c.startswith("data.labels_per_class=")],
                                               f"train.epochs={full_epochs}",
                                               f"train.eval_every={max(1, full_epochs // 150)}"])
            record(f"supervised, all {train:,} labels", full, batch)
        per_epoch = pool // (mu * batch)
        for method in [m for m in e["methods"].split("/") if m]:
            variant = e["consistency_sets"]
            name = f"{method}-{labels}pc-s{seed}{wide}" + (f"-{e['variant']}" if variant else "")
            ck = run(out, name, [*common, f"strategy.name={method}", f"strategy.params.mu={mu}",
                                 f"train.epochs={epochs_for(per_epoch, steps)}", *variant])
            if (ck / f"{method}-best.pt").exists():  # --consistency-set strategy.params.selftrain=pseudo-label: the
                # consistency stage, then the student the same run trained on its pseudo-labels (the run's best.pt)
                record(f"{method} (the run's first stage)", ck, batch + 2 * mu * batch, prefix=f"{method}-")
                record(f"{method} + selftrain student (one run)", ck, batch)
            else:
                record(method, ck, batch + 2 * mu * batch)
            # --e selftrain=pseudo-label/noisy-student: a self-training round with this run's best.pt as the
            # teacher (a fresh model, the baselines' budget and settings), as pseudo-label and noisy-student
            # take the supervised run's above
            for student in [m for m in e["selftrain"].split("/") if m]:
                if student not in student_sets:
                    raise SystemExit(f"--e selftrain: unknown student strategy {student!r} (pseudo-label, noisy-student)")
                teacher = f"strategy.params.teacher={ck / 'best.pt'}"
                suffix, key = (pl_suffix, pl_key) if student == "pseudo-label" else ("", "")
                st = run(out, f"{student}-from-{name}{suffix}", [*common, f"strategy.name={student}", teacher,
                                                                  *student_sets[student]])
                record(f"{method} teacher, {student} student{key}", st, batch)
        print(f"CONSISTENCY {labels} labels/class seed {seed}: "
              + " | ".join(f"{k} {pct(v[-1])}" for k, v in errors.items()), flush=True)
    print(f"CONSISTENCY ({labels} labels/class, LeNet-5 at width {e['width']:g}, dropout {e['drop']:g}, norm {e['norm'] or 'none'}, {steps} steps of {batch} labelled images for fixmatch/flexmatch, "
          f"{other_steps} for the others, per trained model; 1,000 held-out digits): held-out error, mean ± sd")
    print(f"| method ({labels} labels/class) | held-out error, mean ± sd | each seed | images through the final model |")
    print("|---|---|---|---|")
    for key, values in errors.items():
        v = np.asarray(values) * 100
        print(f"| {key} | {v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0:.2f} % | "
              f"{' / '.join(f'{x:.2f}' for x in v)} | {int(np.mean(seen[key])):,} |", flush=True)


FULL = {"digits": "digits:mnist", "distill": 30, "distill_teacher": 30, "distill_seeds": 3, "distill_long": 90, "distill_hinton": 1, "T": 4, "alpha": 0.9, "student": 40, "teacher": 150, "source": 8, "transfer": 40, "transfer_subsets": 3,
        "noisy_sets": [], "pseudo_sets": [], "consistency_steps": 2250, "labels": 10, "seeds": "0/1",
        "match_images": 0, "baselines": 1, "ceiling": 1, "width": 1.0, "drop": 0.0, "norm": "", "methods": "fixmatch/flexmatch",
        "selftrain": "", "pseudo_threshold": -1.0}
QUICK = {**FULL, "distill": 2, "distill_teacher": 2, "distill_seeds": 2, "distill_long": 0, "distill_hinton": 0, "student": 2, "teacher": 20, "source": 2, "transfer": 3, "transfer_subsets": 1,
         "consistency_steps": 30}


def main() -> None:
    """Run the selected experiments in one temporary folder and print their held-out errors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="distill,noisy,pseudo,transfer,consistency",
                        help="comma list of distill, noisy, pseudo (needs noisy's teacher), transfer, consistency; "
                             "parts can run in separate processes at once with the same --out")
    parser.add_argument("--quick", action="store_true", help="a few epochs each, to check the script runs")
    parser.add_argument("--noisy-set", action="append", default=[], help="extra KEY=VALUE for the noisy-student run")
    parser.add_argument("--pseudo-set", action="append", default=[], help="extra KEY=VALUE for the pseudo-label run")
    parser.add_argument("--consistency-set", action="append", default=[],
                        help="extra KEY=VALUE for the fixmatch and flexmatch runs (their run names get --variant)")
    parser.add_argument("--variant", default="variant", help="the suffix of those runs' names")
    parser.add_argument("--e", action="append", default=[], metavar="KEY=N",
                        help="override an epoch setting, e.g. --e distill=30 (keys: see the settings line)")
    parser.add_argument("--digits", default=None, help="transfer target: digits:mnist (default) or digits (8x8)")
    parser.add_argument("--out", default=None, help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args()
    e = dict(QUICK if args.quick else FULL)
    e["noisy_sets"], e["pseudo_sets"] = args.noisy_set, args.pseudo_set
    e["consistency_sets"], e["variant"] = args.consistency_set, args.variant
    e["digits"] = args.digits or e["digits"]
    for item in args.e:
        key, _, value = item.partition("=")
        e[key] = type(e[key])(value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available: {cores}; settings: {e}", flush=True)
    plugins.register_plugin(HeldOutPlugin(), "benchmark-heldout")
    np.random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        for part in args.only.split(","):
            {"distill": distill, "noisy": noisy, "pseudo": pseudo, "transfer": transfer,
             "consistency": consistency}[part.strip()](out, e)


if __name__ == "__main__":
    main()
