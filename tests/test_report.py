"""``vistrain report`` and ``vistrain compare`` on a finished run, a killed run, a multi-stage run and a search."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from vistrain import events as ev
from vistrain import plugins
from vistrain.listeners.jsonl import JsonlWriter

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--headless", "--data", "digits", "--set", "data.batch_size=128", "--set", "output.system_interval_s=0.5"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished 2-epoch run and a run killed with SIGKILL after its first checkpoint (made once)."""
    from vistrain.cli import main

    out = tmp_path_factory.mktemp("runs")
    env = dict(os.environ, PYTHONPATH=str(ROOT), VISTRAIN_PLUGINS="none")
    killed = subprocess.Popen([sys.executable, "-c", "from vistrain.cli import run; run()", "run", *FAST, "--epochs",
                               "30", "--out", str(out), "--name", "killed"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = out / "killed" / "events.jsonl"

    def kill_after_first_checkpoint():
        deadline = time.time() + 180
        while time.time() < deadline and killed.poll() is None:
            if events.exists() and "checkpoint_saved" in events.read_text():
                break
            time.sleep(0.1)
        killed.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_checkpoint)
    killer.start()
    try:
        plugins.reset()
        assert main(["run", *FAST, "--epochs", "2", "--out", str(out), "--name", "done"]) == 0
    finally:
        killer.join()
        killed.wait()
    assert "checkpoint_saved" in events.read_text() and "run_finished" not in events.read_text()
    return out


def pngs(html: str) -> list[np.ndarray]:
    """Every embedded PNG, decoded (the test fails on one that does not decode)."""
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    images = [cv2.imdecode(np.frombuffer(base64.b64decode(b), np.uint8), cv2.IMREAD_COLOR) for b in found]
    assert all(img is not None and img.shape[0] > 50 and img.shape[1] > 50 for img in images)
    assert len(images) == html.count("<img ")
    return images


def section_ids(html: str) -> set[str]:
    return set(re.findall(r'<section id="([^"]+)"', html))


def test_report_on_a_finished_run(cli, runs, tmp_path):
    code, out, err = cli("report", runs / "done", "--out", tmp_path / "r.html", "--png", tmp_path / "png")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    ids = section_ids(html)
    assert {"summary", "curves", "val", "confusion", "per-class", "calibration", "mistakes", "config",
            "environment"} <= ids
    assert not {"pseudo-labels", "augment-search"} & ids and not any(i.startswith("stage-") for i in ids)
    assert len(pngs(html)) == 5
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["confusion.png", "curves.png", "mistakes.png",
                                                                     "per-class.png", "reliability.png"]
    assert re.search(r"Expected calibration error \(15 bins\) on the val split: \d+\.\d\d%", html)
    assert "finished normally" in html and "best.pt on the val split of digits" in html
    assert "torch" in html and "http" not in html.replace("http-equiv", "")  # self-contained: no links out
    # the val top-1 the report computes from best.pt is the one the run logged for its best epoch
    logged = max(json.loads(line)["top1"] for line in (runs / "done" / "events.jsonl").read_text().splitlines()
                 if '"eval_end"' in line and '"split": "val"' in line)
    assert f"top-1 {100 * logged:.2f}%" in html


def test_png_alone_and_default_out(cli, runs, tmp_path):
    code, out, err = cli("report", runs / "done", "--png", tmp_path / "p", "--mistakes", "0")
    assert code == 0, err
    assert not (runs / "done" / "report.html").exists() and "mistakes.png" not in out


def test_report_on_a_killed_run(cli, runs, tmp_path):
    code, out, err = cli("report", runs / "killed", "--out", tmp_path / "k.html")
    assert code == 0, err
    html = (tmp_path / "k.html").read_text()
    assert {"summary", "curves", "val", "confusion", "config", "environment"} <= section_ids(html)
    assert "killed or crashed" in html
    pngs(html)


def test_report_errors_are_one_line(cli, tmp_path):
    code, out, err = cli("report", tmp_path / "nope")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("report", tmp_path)
    assert code == 2 and "no events.jsonl" in err


def _write_events(path: Path, events: list[ev.Event]) -> None:
    writer = JsonlWriter(path)
    for e in events:
        writer.on_event(e)
    writer.close()


def _stage_events(stage: str, index: int, epochs: int, acc0: float, ckpt_dir: Path, best: bool) -> list[ev.Event]:
    out: list[ev.Event] = [ev.StageStarted(stage=stage, index=index, total=3, description=f"noisy-student {index}/3: {stage}",
                                           epochs=epochs, steps_per_epoch=4, model="lenet5", num_params=61706)]
    for e in range(1, epochs + 1):
        out += [ev.BatchEnd(stage=stage, epoch=e, step=4, steps_per_epoch=4, global_step=4 * e, loss=1.0 / e, lr=0.01,
                            samples_per_s=900.0, data_wait_s=0.01, step_time_s=0.5, epochs=epochs),
                ev.EpochEnd(stage=stage, epoch=e, epochs=epochs, train_loss=1.0 / e, train_top1=acc0 + 0.02 * e,
                            lr=0.01, duration_s=0.5, samples=512),
                ev.EvalEnd(stage=stage, epoch=e, split="val", loss=0.8 / e, top1=acc0 + 0.03 * e, top5=0.99,
                           num_samples=360)]
        out.append(ev.CheckpointSaved(path=str(ckpt_dir / f"{stage}-last.pt"), epoch=e, global_step=4 * e))
        if best:
            out.append(ev.CheckpointSaved(path=str(ckpt_dir / f"{stage}-best.pt"), epoch=e, global_step=4 * e,
                                          is_best=True, metric=acc0 + 0.03 * e, reason="best"))
    return out


def _round(r: int, flip: float | None) -> ev.PseudoLabelStats:
    return ev.PseudoLabelStats(round=r, counts_before=[40 + 3 * i for i in range(10)], counts_after=[60] * 10,
                               confidence_hist=[0] * 10 + [3, 5, 8, 12, 20, 30, 45, 60, 90, 150], threshold=0.7,
                               acceptance_rate=0.8, mean_confidence=0.9, flip_rate=flip, accuracy=0.95,
                               class_names=[str(i) for i in range(10)])


def test_report_on_a_multi_stage_run(cli, runs, tmp_path):
    """A noisy-student-shaped run folder: teacher and two students, two pseudo-label rounds, stage checkpoints."""
    run = tmp_path / "ns"
    ckpts = run / "checkpoints"
    ckpts.mkdir(parents=True)
    for name in ("teacher-best.pt", "student1-best.pt"):  # real checkpoints of the digits model
        shutil.copy(runs / "done" / "checkpoints" / "best.pt", ckpts / name)
    config = yaml.safe_load((runs / "done" / "config.yaml").read_text())
    config["strategy"] = {"name": "noisy-student", "params": {"rounds": 2}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    events: list[ev.Event] = [ev.RunStarted(run_name="ns", run_dir=str(run), strategy="noisy-student", model="lenet5",
                                            dataset="digits", device="cpu", num_classes=10, num_train=1000,
                                            num_val=360, config=config)]
    events += _stage_events("teacher", 1, 2, 0.80, ckpts, best=True)
    events.append(_round(1, None))
    events += _stage_events("student1", 2, 3, 0.84, ckpts, best=True)
    events.append(_round(2, 0.04))
    events += _stage_events("student2", 3, 1, 0.86, ckpts, best=False)  # no best checkpoint written yet
    events.append(ev.RunFinished(run_name="ns", duration_s=12.5, metrics={"val_top1": 0.89}))
    _write_events(run / "events.jsonl", events)

    code, out, err = cli("report", run)
    assert code == 0, err
    html = (run / "report.html").read_text()
    ids = section_ids(html)
    assert {"summary", "curves", "val", "stage-teacher", "stage-student1", "stage-student2", "pseudo-labels",
            "round-1", "round-2", "teacher-confusion", "student1-per-class", "config", "environment"} <= ids
    # the run's result is the last stage that wrote a best checkpoint
    assert "student1-best.pt on the val split of digits" in html
    assert html.count("noisy-student 2/3: student1") == 1
    assert "4.00% of labels changed since the previous round" in html
    images = pngs(html)
    assert len(images) >= 3 + 3 + 2 + 2 + 1  # val (3), stage curves (3), stage confusion/per-class (2x2), rounds
    assert "12.5 s" in html


def _search_folder(out: Path) -> Path:
    """A finished 3-trial policy search folder (trials.jsonl, search.yaml, policy.yaml, events.jsonl)."""
    from vistrain.policy_search import write_policy

    records = [{"trial": t, "policy": {"op": "rand", "n": n, "m": m}, "label": f"rand-n{n}-m{m}", "score": s}
               for t, n, m, s in ((1, 2, 9, 0.91), (2, 1, 4, 0.93), (3, 3, 20, 0.88))]
    out.mkdir()
    (out / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "search.yaml").write_text(yaml.safe_dump({"data": "digits", "model": "lenet5", "epochs": 1}))
    write_policy(out / "policy.yaml", records[1]["policy"], [], score=0.93, trial=2, data="digits", model="lenet5")
    _write_events(out / "events.jsonl", [ev.AugmentTrial(trial=r["trial"], trials=3, policy=r["policy"], score=r["score"])
                                         for r in records])
    return out


def test_report_on_an_augmentation_search(cli, tmp_path):
    out = _search_folder(tmp_path / "search")
    code, stdout, err = cli("report", out, "--out", tmp_path / "s.html")
    assert code == 0, err
    html = (tmp_path / "s.html").read_text()
    assert {"augment-search", "winning-policy", "config", "environment"} <= section_ids(html)
    assert html.index("rand-n1-m4") < html.index("rand-n2-m9") < html.index("rand-n3-m20")  # ranked best first
    assert len(pngs(html)) == 2  # leaderboard and the policy preview


def test_report_on_a_run_trained_with_a_searched_policy(cli, runs, tmp_path):
    search = _search_folder(tmp_path / "search")
    run = tmp_path / "run"
    shutil.copytree(runs / "done", run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["augment"]["spec"] = str(search / "policy.yaml")
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    code, out, err = cli("report", run, "--mistakes", "0")
    assert code == 0, err
    html = (run / "report.html").read_text()
    assert {"augment-policy", "augment-search", "winning-policy"} <= section_ids(html)
    assert f"This run trained with the policy in {search / 'policy.yaml'}" in html
    pngs(html)


def test_compare_prints_the_table_and_writes_the_overlay(cli, runs, tmp_path):
    code, out, err = cli("compare", runs / "done", runs / "killed", "--out", tmp_path / "cmp.png")
    assert code == 0, err
    lines = out.splitlines()
    header = lines[0]
    assert header.split()[:2] == ["run", "status"] and "samples/s" in header and "highest val top-1" in header
    done = next(line for line in lines if line.startswith("done"))
    killed = next(line for line in lines if line.startswith("killed"))
    assert " finished " in done and " killed " in killed
    assert re.search(r"train\.epochs\s+2\s+30", out)  # the config key that differs, with both values
    assert "output.name" not in out
    img = cv2.imread(str(tmp_path / "cmp.png"))
    assert img is not None and img.shape[1] > 500
    code, out, err = cli("compare", runs / "done", runs / "killed", "--out", tmp_path / "cmp.html")
    assert code == 0 and {"table", "config-diff", "curves"} <= section_ids((tmp_path / "cmp.html").read_text())


def test_compare_needs_two_runs(cli, runs, tmp_path):
    code, out, err = cli("compare", runs / "done")
    assert code == 2 and "at least two" in err
    code, out, err = cli("compare", runs / "done", runs / "killed", "--out", tmp_path / "x.jpg")
    assert code == 2 and ".png or .html" in err


def test_commands_do_not_import_torch_or_matplotlib_for_help():
    code = ("import sys; from vistrain.cli import main; main(['--help']); main(['report', '--help']);"
            "main(['export', '--help']); main(['viz', 'cam', '--help']);"
            "print('HEAVY', [m for m in ('torch', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert "HEAVY []" in out.stdout, out.stderr


def test_a_resumed_run_counts_each_epoch_once(tmp_path):
    """Killed after epoch 2 with its checkpoint from epoch 1, resumed: epoch 2 is replayed and counted once."""
    from vistrain.report.rundata import load_run

    def session(t0: float, epochs: range, acc: float) -> list[ev.Event]:
        out: list[ev.Event] = [ev.RunStarted(run_name="r", run_dir="r", strategy="supervised", model="lenet5",
                                             dataset="digits", device="cpu", time=t0)]
        for e in epochs:
            out += [ev.BatchEnd(stage="supervised", epoch=e, step=4, steps_per_epoch=4, global_step=4 * e, loss=1 / e,
                                lr=0.1, samples_per_s=1.0, data_wait_s=0.0, step_time_s=1.0, time=t0 + 10 * e - 5),
                    ev.EpochEnd(stage="supervised", epoch=e, epochs=3, train_loss=1 / e, train_top1=acc, lr=0.1,
                                duration_s=10.0, samples=100, time=t0 + 10 * e),
                    ev.EvalEnd(stage="supervised", epoch=e, split="val", loss=1 / e, top1=acc, top5=1.0,
                               num_samples=10, time=t0 + 10 * e)]
        return out

    run = tmp_path / "r"
    run.mkdir()
    events = session(1000.0, range(1, 3), 0.5) + session(5000.0, range(2, 4), 0.9)
    events.append(ev.RunFinished(run_name="r", duration_s=31.0, time=5031.0))
    _write_events(run / "events.jsonl", events)
    data = load_run(run)
    (stage,) = data.stages
    assert [e.epoch for e in stage.epochs] == [1, 2, 3] and [e.epoch for e in stage.evals] == [1, 2, 3]
    assert [e.top1 for e in stage.evals] == [0.5, 0.9, 0.9]  # epoch 2 as the resumed run trained it
    assert [b.epoch for b in stage.steps] == [1, 2, 3]
    assert data.status == "finished" and data.wall_s == 20.0 + 31.0  # the 4000 s pause is not run time
    assert len(data.sessions) == 2


def test_status_tells_a_live_run_from_a_killed_one(tmp_path):
    """A run without a final event is 'running' while its process lives, 'killed' once it is gone."""
    import platform

    from vistrain.report.rundata import load_run

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name, pid, host in (("live", os.getpid(), platform.node()), ("dead", dead.pid, platform.node())):
        run = tmp_path / name
        run.mkdir()
        _write_events(run / "events.jsonl", [
            ev.RunStarted(run_name=name, run_dir=str(run), strategy="supervised", model="lenet5", dataset="digits",
                          device="cpu", environment={"pid": pid, "host": host}, time=time.time() - 5)])
    assert load_run(tmp_path / "live").status == "running"
    assert load_run(tmp_path / "dead").status == "killed"
    # another machine's run: judged by how recently it wrote
    other = tmp_path / "other"
    other.mkdir()
    _write_events(other / "events.jsonl", [ev.RunStarted(run_name="o", run_dir="x", strategy="s", model="m", dataset="d",
                                                          device="cpu", environment={"pid": 1, "host": "elsewhere"})])
    assert load_run(other).status == "running"
    old = time.time() - 3600
    os.utime(other / "events.jsonl", (old, old))
    assert load_run(other).status == "killed"


def test_report_on_a_real_noisy_student_run(cli, tmp_path):
    """The strategy's own events and stage checkpoints, not a hand-made folder: teacher, one student, one round."""
    code, out, err = cli("run", *FAST, "--strategy", "noisy-student", "--labels-per-class", "30", "--epochs", "1",
                         "--set", "strategy.params.iterations=1", "--set", "strategy.params.teacher_epochs=1",
                         "--set", "strategy.params.threshold=0.0", "--out", tmp_path, "--name", "ns")
    assert code == 0, err
    code, out, err = cli("report", tmp_path / "ns", "--mistakes", "4")
    assert code == 0, err
    html = (tmp_path / "ns" / "report.html").read_text()
    assert {"summary", "curves", "val", "stage-teacher", "stage-student1", "teacher-confusion", "student1-confusion",
            "pseudo-labels", "round-1", "config", "environment"} <= section_ids(html)
    assert "student1-best.pt on the val split of digits" in html and "held-out test top-1" in html
    pngs(html)


def test_best_epoch_ties_go_to_the_later_epoch(tmp_path):
    """As fit() chooses best.pt: with equal val top-1 the later epoch is the best one."""
    from vistrain.report.rundata import load_run

    run = tmp_path / "r"
    run.mkdir()
    _write_events(run / "events.jsonl", [ev.EvalEnd(stage="s", epoch=e, split="val", loss=0.1, top1=t, top5=1.0,
                                                    num_samples=10) for e, t in ((1, 0.5), (2, 0.9), (3, 0.8), (4, 0.9))])
    data = load_run(run)
    assert data.best_eval().epoch == 4 and data.stages[0].best_eval.epoch == 4


def _consistency(stage: str, steps, flex: bool, known: bool = True) -> list[ev.ConsistencyStats]:
    """A consistency stage's statistics at *steps*: FlexMatch's thresholds rise per class from a low start."""
    out = []
    for i, step in enumerate(steps, start=1):
        out.append(ev.ConsistencyStats(
            stage=stage, epoch=1 + step // 100, global_step=step, images=640, mask_rate=min(0.9, 0.1 * i),
            unlabelled_loss=0.3, threshold=0.95, accuracy=0.9 if known else None, accuracy_all=0.8 if known else None,
            class_thresholds=[min(0.95, 0.4 + 0.02 * i + 0.05 * c) if flex else 0.95 for c in range(3)],
            class_accepted=[10 * (c + 1) for c in range(3)], class_names=["cat", "dog", "owl"]))
    return out


def test_run_data_collects_the_consistency_statistics_per_stage(tmp_path):
    """A warm-up stage without them, then a FlexMatch stage killed and resumed from step 40: replayed steps once."""
    from vistrain.report.rundata import load_run

    run = tmp_path / "r"
    run.mkdir()
    events: list[ev.Event] = [ev.StageStarted(stage="warmup", index=1, total=2, epochs=1, steps_per_epoch=4),
                              ev.StageStarted(stage="flexmatch", index=2, total=2, epochs=3, steps_per_epoch=100)]
    events += _consistency("flexmatch", [20, 40, 60], flex=True)
    events += _consistency("flexmatch", [60, 80], flex=True)  # the resumed run's, after its checkpoint at step 40
    _write_events(run / "events.jsonl", events)
    data = load_run(run)
    assert [s.name for s in data.consistency_stages] == ["flexmatch"] and data.stages[0].consistency == []
    stats = data.stages[1].consistency
    assert [s.global_step for s in stats] == [20, 40, 60, 80]
    assert stats[2].mask_rate == pytest.approx(0.1)  # step 60 as the resumed run trained it


@pytest.mark.parametrize("flex, known", [(True, True), (False, False)], ids=["flexmatch", "fixmatch-unknown-labels"])
def test_report_on_a_consistency_run(cli, tmp_path, flex, known):
    """A consistency stage's section: the table, a figure that decodes (three panels with FlexMatch's varying
    thresholds, two with FixMatch's tau), and a note when the true labels are unknown."""
    from vistrain.report.build import build_report

    run = tmp_path / "fm"
    run.mkdir()
    events: list[ev.Event] = [ev.RunStarted(run_name="fm", run_dir=str(run), strategy="flexmatch", model="lenet5",
                                            dataset="digits", device="cpu", num_classes=3),
                              ev.StageStarted(stage="flexmatch", index=1, total=1, epochs=2, steps_per_epoch=100)]
    events += _consistency("flexmatch", range(10, 200, 10), flex=flex, known=known)
    events.append(ev.RunFinished(run_name="fm", duration_s=12.5))
    _write_events(run / "events.jsonl", events)

    code, out, err = cli("report", run)
    assert code == 0, err
    html = (run / "report.html").read_text()
    assert "consistency" in section_ids(html) and "Pseudo labels over the steps" in html
    # steps, intervals, unlabelled images, mask rate over the stage (image-weighted) and at the end, accuracies
    row = re.search(r"<tr><td>flexmatch</td>(.*?)</tr>", html).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[:6] == ["10–190", "19", "12,160", "71.05%", "90.00%", "90.00%" if known else "n/a"]
    assert cells[-1] == ("0.78–0.88" if flex else "0.95")  # the last interval's thresholds
    assert ("true labels are not known" in html) is not known
    (image,) = pngs(html)
    assert image.shape[1] == (1500 if flex else 1100)  # a panel of per-class thresholds only where they vary
    assert [name for name, _ in build_report(run).images()] == ["consistency.png"]
