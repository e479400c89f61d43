"""Assemble ``vistrain report``: what a run folder holds so far, as one self-contained HTML document.

Each section appears only when the run has what it shows: curves when an epoch or step was
logged, val predictions when a checkpoint exists, one section per stage for multi-stage
strategies, pseudo-label rounds, a consistency stage's pseudo labels over its steps, and the
augmentation search when the folder is (or the run used) a search's result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from vistrain.errors import VistrainError
from vistrain.report import figures
from vistrain.report.html import Document, Section, slug
from vistrain.report.rundata import RunData, load_run
from vistrain.runfolder import RunFolder


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _secs(s: float | None) -> str:
    if s is None:
        return "n/a"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _status_line(run: RunData) -> str:
    last = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.last_time)) if run.last_time else "?"
    return {
        "finished": "finished normally",
        "stopped": "stopped by the user with a checkpoint saved",
        "failed": f"failed: {run.failed.message if run.failed else ''}",
        "running": f"still running: this report shows what it wrote until {last}",
        "killed": f"ended without a final event (killed or crashed); this report shows what it wrote until {last}",
    }[run.status]


def _summary(doc: Document, run: RunData) -> None:
    sec = doc.section("summary", "Summary")
    st = run.started
    final, best = run.final_eval(), run.best_eval()
    rows = [["status", run.status], ["strategy", st.strategy if st else run.config.get("strategy", {}).get("name", "?")],
            ["model", st.model if st else "?"], ["dataset", st.dataset if st else "?"],
            ["device", st.device if st else "?"]]
    if st:
        rows.append(["images (train / val)", f"{st.num_train} / {st.num_val}, {st.num_classes} classes"])
    rows += [["stages", ", ".join(s.name for s in run.stages) or "none yet"],
             ["epochs finished", sum(len(s.epochs) for s in run.stages)],
             ["final val top-1", _pct(final.top1) if final else "n/a"],
             ["highest val top-1", f"{_pct(best.top1)} ({best.stage}, epoch {best.epoch})" if best else "n/a"]]
    rows += [[f"val top-1 of the averaged weights ({s.name})" if run.multi_stage else "val top-1 of the averaged weights",
              f"{_pct(s.averaged.top1)} (checkpoint.average_last; "
              f"{'best.pt holds them' if s.best_is_average else 'best.pt holds an epoch'})"]
             for s in run.stages if s.averaged is not None]
    for t in run.tests:
        rows.append(["held-out test top-1", f"{_pct(t.top1)} on {t.num_samples} images ({t.stage})"])
        if t.balanced_top1 is not None and t.macro_f1 is not None:
            rows.append(["held-out test balanced top-1 / macro-F1", f"{_pct(t.balanced_top1)} / {_pct(t.macro_f1)}"])
    resumed = f" over {len(run.sessions)} sessions (resumed)" if len(run.sessions) > 1 else ""
    rows += [["wall time", _secs(run.wall_s) + resumed],
             ["training samples/s", f"{run.samples_per_s():.0f}" if run.samples_per_s() else "n/a"]]
    sec.table(["", ""], rows)
    sec.text(f"The run {_status_line(run)}.", note=run.status != "finished")
    if run.skipped_lines:
        sec.text(f"{run.skipped_lines} line(s) of events.jsonl could not be read (a torn write) and were skipped.", note=True)


def _unreadable(doc: Document, run: RunData) -> None:
    """The images the run could not read and left out, by split."""
    sec = doc.section("unreadable", "Unreadable images")
    total = sum(len(v) for v in run.unreadable.values())
    sec.text(f"{total} image(s) could not be read (corrupt, truncated or deleted during the run) and were left out; "
             "'vistrain datasets check' decodes a whole dataset and lists them.", note=True)
    sec.table(["split", "image"], [[split, name] for split, names in sorted(run.unreadable.items())
                                   for name in sorted(names)[:200]])


def _curves(doc: Document, run: RunData) -> None:
    sec = doc.section("curves", "Curves")
    if not any(s.epochs or s.evals or s.steps for s in run.stages):
        sec.text("No training step has been logged yet.", note=True)
        return
    title = "all stages, one after the other" if run.multi_stage else ""
    sec.image("curves.png", figures.curves_figure(run.stages, title), "loss and accuracy curves")


def _val_section(sec: Section, ckpt: Path, predict: Callable, prefix: str, mistakes: int) -> None:
    try:
        pred = predict(ckpt)
    except VistrainError as exc:
        sec.text(f"Could not predict the val split with {ckpt.name}: {exc}", note=True)
        return
    classes = pred.class_metrics()
    acc, counts = classes.recall, classes.support  # a class's top-1 is its recall
    sec.text(f"{ckpt.name} on the val split of {pred.dataset}: top-1 {_pct(pred.top1)} on {len(pred.labels)} images.")
    conf = sec.sub("Confusion matrix", id=f"{prefix}confusion")
    conf.image(f"{prefix}confusion.png", figures.confusion_figure(pred.confusion(), pred.classes,
                                                                  f"confusion matrix, {ckpt.name}"), "confusion matrix")
    per = sec.sub("Per-class accuracy", id=f"{prefix}per-class")
    per.image(f"{prefix}per-class.png", figures.per_class_figure(acc, counts, pred.classes), "per-class accuracy")
    worst = sorted(range(len(acc)), key=lambda i: acc[i])[:3]
    per.text("Weakest classes: " + ", ".join(f"{pred.classes[i]} {100 * acc[i]:.1f}%" for i in worst) + ".")
    from vistrain.metrics import TABLE_HEADER

    per.text(f"Balanced top-1 (the mean of the classes' recall) {_pct(classes.balanced_top1)}, macro-F1 "
             f"{_pct(classes.macro_f1)}: each class counts the same, however many images it has.")
    rows = classes.table(pred.classes)
    if len(rows) > 30:  # the classes that need attention, not a thousand rows
        weakest = sorted(range(len(rows)), key=lambda i: classes.f1[i])[:15]
        per.text(f"The 15 classes of {len(rows)} with the lowest F1:")
        rows = [rows[i] for i in weakest]
    per.table(TABLE_HEADER, rows)
    from vistrain.calibration import reliability, reliability_figure

    table = reliability(pred.probs, pred.labels)
    cal = sec.sub("Calibration", id=f"{prefix}calibration")
    cal.image(f"{prefix}reliability.png", reliability_figure(table, f"val, {ckpt.name}"), "reliability diagram")
    cal.text(f"Expected calibration error (15 bins) on the val split: {100 * table.ece:.2f}%: how far the model's "
             f"confidence is from its accuracy. 'vistrain calibrate' fits a temperature on the val split that "
             f"reduces it; the probabilities here already use the checkpoint's temperature when it has one.")
    if mistakes <= 0:
        return
    wrong = pred.confident_mistakes(mistakes)
    sub = sec.sub("Most confidently wrong", id=f"{prefix}mistakes")
    if not wrong:
        sub.text("No val image is misclassified.")
        return
    images = [pred.images.image(i) for i in wrong]
    captions = [f"true {pred.classes[pred.labels[i]]} → {pred.classes[pred.predicted[i]]}\n"
                f"{100 * pred.probs[i, pred.predicted[i]]:.0f}%" for i in wrong]
    sub.image(f"{prefix}mistakes.png", figures.image_grid_figure(images, captions), "most confidently wrong val images")
    sub.text(f"The {len(wrong)} val images the model got wrong with the highest confidence "
             f"(true class → predicted class, confidence), out of {int((pred.predicted != pred.labels).sum())} mistakes.")


def _best_saved(saved) -> str:
    """``name.pt (epoch N, val top-1 X)`` of a stage's best checkpoint, chosen by the run's checkpoint.best rule."""
    if saved is None:
        return "none"
    metric = f", val top-1 {_pct(saved.metric)}" if saved.metric is not None else ""
    return f"{Path(saved.path).name} (epoch {saved.epoch}{metric})"


def _stages(doc: Document, run: RunData, predict: Callable) -> None:
    for stage in run.stages:
        sec = doc.section(f"stage-{slug(stage.name)}", f"Stage: {stage.name}")
        st = stage.started
        best = stage.best_eval
        rows = [["description", st.description if st else stage.name],
                ["position", f"{st.index} of {st.total}" if st else "?"],
                ["model", f"{st.model} ({st.num_params:,} parameters)" if st and st.model else "?"],
                ["epochs finished", f"{len(stage.epochs)} of {st.epochs if st else '?'}"],
                ["final val top-1", _pct(stage.evals[-1].top1) if stage.evals else "n/a"],
                ["highest val top-1", f"{_pct(best.top1)} (epoch {best.epoch})" if best else "n/a"],
                ["training time", _secs(sum(e.duration_s for e in stage.epochs))],
                ["samples/s", f"{stage.samples_per_s():.0f}" if stage.samples_per_s() else "n/a"],
                ["best checkpoint", _best_saved(stage.best_saved)]]
        if stage.averaged is not None:
            rows.insert(6, ["averaged weights' val top-1", _pct(stage.averaged.top1)])
        sec.table(["", ""], rows)
        if stage.epochs or stage.evals or stage.steps:
            sec.image(f"curves-{slug(stage.name)}.png", figures.curves_figure([stage], stage.name), f"{stage.name} curves")
        name = stage.best_checkpoint
        if name and run.checkpoint_path(name).exists():
            _val_section(sec, run.checkpoint_path(name), predict, f"{slug(stage.name)}-", mistakes=0)
        if stage.consistency:
            sec.text("This stage trained on pseudo-labels by consistency (see Pseudo labels over the steps).")
        if stage.rounds:
            sec.text("Pseudo-label rounds emitted during this stage: " + ", ".join(str(r.round) for r in stage.rounds)
                     + " (see Pseudo labels).")


def _pseudo_labels(doc: Document, run: RunData) -> None:
    sec = doc.section("pseudo-labels", "Pseudo labels")
    rounds = run.rounds
    rows = [[r.round, f"{r.threshold:.2f}", _pct(r.acceptance_rate), f"{r.mean_confidence:.3f}", _pct(r.flip_rate),
             _pct(r.accuracy), sum(r.counts_before), sum(r.counts_after)] for r in rounds]
    sec.table(["round", "threshold", "accepted", "mean confidence", "flip rate", "label accuracy",
               "accepted images", "after balancing"], rows)
    if len(rounds) > 1:
        sec.image("pseudo-rounds.png", figures.rounds_summary_figure(rounds), "pseudo-label rates per round")
    for r in rounds:
        sub = sec.sub(f"Round {r.round}", id=f"round-{r.round}")
        sub.image(f"pseudo-round-{r.round}.png", figures.round_figure(r, f"round {r.round}"), f"pseudo-label round {r.round}")
        flips = "" if r.flip_rate is None else f", {_pct(r.flip_rate)} of labels changed since the previous round"
        acc = "" if r.accuracy is None else f"; {_pct(r.accuracy)} of accepted labels are right"
        sub.text(f"{_pct(r.acceptance_rate)} of the unlabelled images passed the threshold {r.threshold:.2f}{flips}{acc}.")


def _consistency(doc: Document, run: RunData) -> None:
    """A consistency stage's (FixMatch, FlexMatch) pseudo labels over its steps: a table and a figure per stage."""
    sec = doc.section("consistency", "Pseudo labels over the steps")
    sec.text("Each logging interval, the share of unlabelled images whose pseudo-label (the prediction on the weakly "
             "augmented view) passed its class's threshold and so trained the model on the strongly augmented view "
             "(the mask rate), and, where the true labels of those images are known, how many of the accepted and of "
             "all pseudo-labels were right.")
    stages = run.consistency_stages
    rows = []
    for stage in stages:
        last = stage.consistency[-1]
        images = sum(s.images for s in stage.consistency)
        mask = sum(s.mask_rate * s.images for s in stage.consistency) / images if images else None
        thresholds = last.class_thresholds or [last.threshold]
        rows.append([stage.name, f"{stage.consistency[0].global_step}–{last.global_step}", len(stage.consistency),
                     f"{images:,}", _pct(mask), _pct(last.mask_rate), _pct(last.accuracy), _pct(last.accuracy_all),
                     f"{min(thresholds):.2f}" if max(thresholds) - min(thresholds) < 5e-3
                     else f"{min(thresholds):.2f}–{max(thresholds):.2f}"])
    sec.table(["stage", "steps", "intervals", "unlabelled images", "mask rate (whole stage)", "last mask rate",
               "last accuracy (accepted)", "last accuracy (all)", "last thresholds"], rows)
    for stage in stages:
        target = sec if len(stages) == 1 else sec.sub(f"Stage {stage.name}", id=f"consistency-{slug(stage.name)}")
        name = "consistency.png" if len(stages) == 1 else f"consistency-{slug(stage.name)}.png"
        target.image(name, figures.consistency_figure(stage.consistency, stage.name),
                     f"{stage.name}: mask rate and pseudo-label accuracy over the steps")
        if not any(s.accuracy is not None for s in stage.consistency):
            target.text("The unlabelled images' true labels are not known, so the pseudo-labels' accuracy is not shown.",
                        note=True)


def _search_records(run: RunData) -> list[dict]:
    from vistrain.policy_search import leaderboard, read_trials

    records = read_trials(run.path / "trials.jsonl")
    if records:
        return leaderboard(records)
    if run.trials:
        return list(run.trials[-1].leaderboard)
    return []


def _policy_preview(sec: Section, policy: Path | str, data_name: str | None, name: str) -> None:
    import cv2
    import numpy as np

    from vistrain.augment.pipeline import build_pipeline
    from vistrain.augment.preview import preview_grid
    from vistrain.config import DataConfig
    from vistrain.data.prepare import load_source

    if not data_name:
        sec.text("The dataset is not recorded, so no preview was drawn.", note=True)
        return
    try:
        pipeline = build_pipeline(str(policy))
        source = load_source(data_name, DataConfig(name=data_name))
    except VistrainError as exc:
        sec.text(f"No preview: {exc}", note=True)
        return
    pick = np.random.default_rng(0).choice(len(source.train), size=min(4, len(source.train)), replace=False)
    images = [np.asarray(source.train.image(int(i))) for i in pick]
    grid = preview_grid(pipeline, [im[..., None] if im.ndim == 2 else im for im in images], k=6, tile=80)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if ok:
        sec.image(name, buf.tobytes(), "augmentation policy preview")
        sec.text(f"Each row: an image of {data_name}, then six draws of the policy (captions name the ops applied).")


def _augment_search(doc: Document, run: RunData, board: list[dict]) -> None:
    import yaml

    sec = doc.section("augment-search", "Augmentation search")
    sec.table(["rank", "trial", "policy", "val top-1"],
              [[i, r["trial"], r.get("label", ""), _pct(r["score"])] for i, r in enumerate(board, start=1)])
    sec.image("search-leaderboard.png", figures.leaderboard_figure(board), "augmentation search leaderboard")
    trial_runs = []
    for r in board:
        trial_dir = run.path / f"trial-{int(r['trial']):03d}"
        if RunFolder(trial_dir).events.exists():
            trial_runs.append(load_run(trial_dir))
    if trial_runs:
        sec.image("search-trials.png", figures.overlay_figure(trial_runs), "the trials' curves")
    policy = run.path / "policy.yaml"
    if policy.exists():
        sub = sec.sub("Winning policy", id="winning-policy")
        sub.pre(policy.read_text(encoding="utf-8"))
        settings = run.path / "search.yaml"
        data = (yaml.safe_load(settings.read_text(encoding="utf-8")) or {}).get("data") if settings.exists() else None
        _policy_preview(sub, policy, data, "policy-preview.png")


def _used_policy(doc: Document, run: RunData) -> None:
    """A run trained with a search's policy.yaml: show that policy, its preview and its search's leaderboard."""
    from vistrain.augment.pipeline import is_policy_path

    spec = (run.config.get("augment") or {}).get("spec")
    if not isinstance(spec, str) or not is_policy_path(spec) or not Path(spec).expanduser().exists():
        return
    path = Path(spec).expanduser()
    sec = doc.section("augment-policy", "Augmentation policy")
    sec.text(f"This run trained with the policy in {path}.")
    search = RunData(path.parent, {}, "")
    board = _search_records(search)
    if board and (path.parent / "policy.yaml") == path:  # the search's section shows the policy and its preview
        sec.text("It is the winner of the augmentation search below.")
        _augment_search(doc, search, board)
        return
    sec.pre(path.read_text(encoding="utf-8"))
    _policy_preview(sec, path, (run.config.get("data") or {}).get("name"), "policy-preview.png")


def _environment(doc: Document, run: RunData) -> None:
    import platform

    from vistrain import __version__

    sec = doc.section("environment", "Environment")
    env = dict(run.started.environment) if run.started and run.started.environment else {}
    if env:
        sec.table(["", ""], [[k, v] for k, v in env.items()])
    else:
        sec.text("The run did not record its environment (written by an older vistrain)"
                 + (f"; it ran on device {run.started.device}." if run.started else "."), note=True)
    sec.table(["", ""], [["wall time", _secs(run.wall_s)], ["events read", str(RunFolder(run.path).events)],
                         ["report made with", f"vistrain {__version__}, Python {platform.python_version()}"]])


def build_report(run_dir: str | Path, *, device: str = "cpu", mistakes: int = 24) -> Document:
    """The report of one run folder as a :class:`Document` (not yet written)."""
    from vistrain.report.predictions import val_predictions

    run = load_run(run_dir)
    board = _search_records(run)
    is_search = bool(board) and run.started is None
    doc = Document(f"vistrain report: {run.name}",
                   f"{run.path} · {'augmentation search' if is_search else run.status} · made "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S')}")

    cache: dict[Path, object] = {}

    def predict(ckpt: Path):  # the last stage's checkpoint is shown twice: predict it once
        key = ckpt.resolve()
        if key not in cache:
            cache[key] = val_predictions(ckpt, device=device)
        return cache[key]

    if is_search:
        _augment_search(doc, run, board)
    else:
        _summary(doc, run)
        if run.unreadable:
            _unreadable(doc, run)
        _curves(doc, run)
        ckpt = run.final_checkpoint()
        sec = doc.section("val", "Val split")
        if ckpt is None:
            sec.text("No checkpoint has been written yet, so there are no predictions to show.", note=True)
        else:
            _val_section(sec, ckpt, predict, "", mistakes)
        if run.multi_stage:
            _stages(doc, run, predict)
        if run.rounds:
            _pseudo_labels(doc, run)
        if run.consistency_stages:
            _consistency(doc, run)
        _used_policy(doc, run)
    if run.config_text:
        doc.section("config", "Resolved config").pre(run.config_text)
    elif is_search and (run.path / "search.yaml").exists():
        doc.section("config", "Search settings").pre((run.path / "search.yaml").read_text(encoding="utf-8"))
    _environment(doc, run)
    return doc

