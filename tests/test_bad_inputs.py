"""Bad-input catalogue through the installed ``vistrain`` script, each in its own subprocess.

Every case must exit 2 with exactly one error line on stderr (after a usage line for usage errors;
warnings count as lines) and no traceback. The subprocesses run in parallel and share one tiny
checkpoint, so the catalogue takes about a minute on two cores.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

VISTRAIN = shutil.which("vistrain")
# The whole catalogue runs in the first test's fixture: on a busy machine that is more than the default limit.
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Case:
    """One wrong input: the arguments ({w} is the shared workspace) and a piece of the expected error line."""

    id: str
    args: tuple[str, ...]
    expect: str
    usage: bool = False
    env: dict = field(default_factory=dict)


def usage(id_, *args, expect):
    return Case(id_, args, expect, usage=True)


def user(id_, *args, expect, env=None):
    return Case(id_, args, expect, env=env or {})


RUN = ("run", "--headless", "--out", "{w}/runs")
RUN_DIGITS = (*RUN, "--data", "digits", "--epochs", "1", "--set", "data.batch_size=256")
CKPT = "{w}/base/checkpoints/last.pt"
TUNE = ("tune", "--out", "{w}/studies", "--set", "data.name=digits", "--set", "train.epochs=1")

def _plugin_env(name: str) -> dict:
    """Environment that lets exactly the fake plugin *name* load (tests default to VISTRAIN_PLUGINS=none)."""
    return {"VISTRAIN_PLUGINS": name, "VT_PLUGIN_PATH": "1"}


# Per kind of name: the hook that registers it, and a command that uses the name the fake plugin
# registers (`vt-model`...). Each hook raises in one plugin; each factory raises when used in another.
PLUGIN_USES = {
    "model": ("register_models", ("models", "info", "vt-model")),
    "dataset": ("register_datasets", (*RUN, "--data", "vt-data")),
    "augmentation": ("register_augmentations", (*RUN, "--augment", "vt-aug")),
    "strategy": ("register_strategies", (*RUN_DIGITS, "--strategy", "vt-strategy")),
    "optimizer": ("register_optimizers", (*RUN_DIGITS, "--optimizer", "vt-opt")),
    "scheduler": ("register_schedulers", (*RUN_DIGITS, "--scheduler", "vt-sched")),
    "command": ("register_commands", ("vt-command",)),
}
HOOKS = [hook for hook, _args in PLUGIN_USES.values()]

CASES = [
    # usage errors from typer/click, whatever copy of click typer uses
    usage("unknown-option", "run", "--bogus-flag", expect="No such option"),
    usage("unknown-command", "trian", expect="No such command 'trian'"),
    usage("missing-argument", "eval", expect="Missing argument"),
    usage("int-option-not-a-number", "run", "--epochs", "two", expect="'--epochs'"),
    usage("float-option-not-a-number", "run", "--lr", "fast", expect="'--lr'"),
    usage("extra-argument", "config", "show", "extra", expect="unexpected extra argument"),
    usage("unknown-subcommand", "models", "lst", expect="No such command 'lst'"),
    usage("option-without-value", "run", "--model", expect="'--model'"),
    # names and keys
    user("unknown-model", *RUN, "--model", "lenet", expect="did you mean 'lenet5'"),
    user("unknown-dataset", *RUN, "--data", "mnist5", expect="did you mean 'mnist5k'"),
    user("unknown-strategy", *RUN, "--strategy", "supervise", expect="did you mean 'supervised'"),
    user("unknown-optimizer", *RUN, "--optimizer", "adamww", expect="did you mean 'adamw'"),
    user("unknown-scheduler", *RUN, "--scheduler", "cosin", expect="did you mean 'cosine'"),
    user("unknown-config-key", *RUN, "--set", "train.epohcs=1", expect="did you mean 'epochs'"),
    user("set-wrong-type", *RUN, "--set", "train.epochs=lots", expect="train.epochs"),
    user("set-without-equals", *RUN, "--set", "train.epochs", expect="train.epochs"),
    user("models-info-unknown", "models", "info", "vgg12", expect="did you mean"),
    user("unknown-augment-op", *RUN, "--augment", "flip-hh", expect="flip-hh"),
    # YAML
    user("yaml-malformed", *RUN, "-c", "{w}/bad-indent.yaml", expect="line 3"),
    user("yaml-missing", *RUN, "-c", "{w}/no-such.yaml", expect="no-such.yaml"),
    user("yaml-not-a-mapping", *RUN, "-c", "{w}/list.yaml", expect="list.yaml"),
    # numeric options at 0 and below
    user("epochs-zero", *RUN, "--epochs", "0", expect="train.epochs"),
    user("batch-size-zero", *RUN, "--batch-size", "0", expect="batch_size"),
    user("lr-negative", *RUN, "--lr", "-1", expect="optim.lr"),
    # class imbalance and checkpoint averaging
    user("sampler-unknown", *RUN, "--set", "data.sampler=balance", expect="data.sampler"),
    user("class-weights-unknown", *RUN, "--set", "train.class_weights=inverse-sqrt", expect="train.class_weights"),
    user("class-weights-wrong-length", *RUN_DIGITS, "--set", "train.class_weights=[1, 2]",
         expect="train.class_weights has 2 numbers but the dataset has 10 classes"),
    user("average-last-one", *RUN, "--set", "checkpoint.average_last=1", expect="checkpoint.average_last"),
    # vistrain tune
    user("tune-unknown-key", *TUNE, "--space", "{w}/space-typo.yaml", expect="unknown config key 'optim.lrr'"),
    user("tune-low-above-high", *TUNE, "--space", "{w}/space-reversed.yaml", expect="low 0.1 > high 0.001"),
    user("tune-unknown-distribution", *TUNE, "--space", "{w}/space-gauss.yaml", expect="unknown distribution 'gauss'"),
    user("tune-unknown-sampler", *TUNE, "--space", "{w}/space.yaml", "--sampler", "grid", expect="unknown sampler 'grid'"),
    user("tune-unknown-pruner", *TUNE, "--space", "{w}/space.yaml", "--pruner", "asha", expect="unknown pruner 'asha'"),
    user("tune-bad-storage", *TUNE, "--space", "{w}/space.yaml", "--storage", "nosuchdb://x/y",
         expect="cannot open the study storage 'nosuchdb://x/y'"),
    user("tune-trials-zero", *TUNE, "--space", "{w}/space.yaml", "--trials", "0", expect="--trials must be 1 or more"),
    user("tune-no-space", *TUNE, expect="needs a search space"),
    user("tune-report-not-a-study", "tune", "report", "{w}/empty", expect="is not a study folder"),
    # paths
    user("imagefolder-missing", *RUN, "--data", "imagefolder:{w}/no-such-dir", expect="does not exist"),
    user("imagefolder-empty", *RUN, "--data", "imagefolder:{w}/empty", expect="has no images"),
    user("out-is-a-file", "run", "--headless", "--data", "digits", "--epochs", "1", "--out", "{w}/a-file/runs",
         expect="cannot write the run folder"),
    user("attach-missing-folder", "attach", "{w}/no-such-run", expect="no-such-run"),
    user("imagefolder-is-a-file", *RUN, "--data", "imagefolder:{w}/a-file", expect="is not a folder"),
    user("imagefolder-no-class-folders", *RUN, "--data", "imagefolder:{w}/flat", expect="no class subfolders"),
    user("imagefolder-class-without-images", *RUN, "--data", "imagefolder:{w}/one-empty-class",
         expect="class folder(s) 'dog' hold no images"),
    user("imagefolder-all-unreadable", *RUN, "--data", "imagefolder:{w}/broken-images",
         expect="could be read"),
    user("pretrained-file-missing", *RUN, "--pretrained", "{w}/no-such.safetensors", expect="no-such.safetensors"),
    # the other data sources
    user("shard-pattern-matches-nothing", *RUN, "--data", "webdataset:{w}/shards/train-{{000000..000009}}.tar",
         expect="matches no shard"),
    user("shard-without-images", *RUN, "--data", "webdataset:{w}/labels-only.tar", expect="has no images"),
    user("shard-not-a-tar", *RUN, "--data", "webdataset:{w}/a-file", expect="not a tar file"),
    user("hf-without-the-label-column", *RUN, "--data", "hf:{w}/hf-no-label", expect="no column 'label'"),
    user("hf-hub-name-without-download", *RUN, "--data", "hf:someone/some-dataset", expect="--download"),
    user("csv-row-names-a-missing-file", *RUN, "--data", "csv:{w}/table.csv", expect="line 3"),
    user("csv-missing", *RUN, "--data", "csv:{w}/no-such.csv", expect="no-such.csv"),
    user("unlabelled-source-without-images", *RUN, "--labels-per-class", "5", "--strategy", "pseudo-label",
         "--set", "data.unlabelled=images:{w}/empty", expect="has no images"),
    user("unlabelled-source-missing", *RUN, "--labels-per-class", "5", "--strategy", "pseudo-label",
         "--set", "data.unlabelled=images:{w}/no-such-dir", expect="does not exist"),
    user("train-on-an-unlabelled-folder", *RUN, "--data", "images:{w}/flat", expect="data.unlabelled"),
    # consistency training
    user("fixmatch-threshold-zero", *RUN_DIGITS, "--strategy", "fixmatch", "--set", "strategy.params.threshold=0",
         expect="strategy.params.threshold"),
    user("fixmatch-threshold-above-one", *RUN_DIGITS, "--strategy", "fixmatch",
         "--set", "strategy.params.threshold=1.5", expect="strategy.params.threshold"),
    user("flexmatch-mu-zero", *RUN_DIGITS, "--strategy", "flexmatch", "--set", "strategy.params.mu=0",
         expect="strategy.params.mu"),
    user("fixmatch-label-smoothing-caps-below-tau", *RUN_DIGITS, "--labels-per-class", "20", "--strategy", "fixmatch",
         "--set", "strategy.params.label_smoothing=0.2", expect="caps the labelled target at 0.820"),
    user("pseudo-label-threshold-above-the-smoothed-cap", *RUN_DIGITS, "--labels-per-class", "20", "--strategy",
         "pseudo-label", "--set", "strategy.params.threshold=0.95",
         expect="caps the teachers' targets at 0.9100 (10 classes), below strategy.params.threshold 0.95"),
    user("fixmatch-cutout-min-above-cutout", *RUN_DIGITS, "--strategy", "fixmatch", "--set", "strategy.params.cutout=0.2",
         "--set", "strategy.params.cutout_min=0.3", expect="parameters: cutout_min 0.3 is above cutout 0.2"),
    user("fixmatch-without-unlabelled-images", *RUN_DIGITS, "--strategy", "fixmatch", expect="needs unlabelled images"),
    user("flexmatch-a-class-without-labelled-images", *RUN, "--data", "hf:{w}/hf-missing-class", "--strategy",
         "flexmatch", "--set", "data.unlabelled=images:{w}/flat", expect="no image of class 'fox'"),
    user("datasets-check-unknown", "datasets", "check", "imagefolder:{w}/no-such-dir", expect="does not exist"),
    # image files of every broken kind
    user("predict-image-missing", "predict", CKPT, "{w}/no-such.png", expect="could not read 1 image"),
    user("predict-image-empty", "predict", CKPT, "{w}/broken-images/c/empty.png", expect="could not read 1 image"),
    user("predict-image-text", "predict", CKPT, "{w}/broken-images/c/text.png", expect="could not read 1 image"),
    user("predict-image-truncated", "predict", CKPT, "{w}/broken-images/c/truncated.png",
         expect="could not read 1 image"),
    user("predict-folder-without-images", "predict", CKPT, "{w}/empty", expect="/empty' has no images"),
    user("predict-out-unknown-format", "predict", CKPT, "{w}/broken-images", "--out", "{w}/p.txt",
         expect="must end in .csv, .json or .jsonl"),
    user("predict-out-unwritable", "predict", CKPT, "{w}/broken-images", "--out", "{w}/a-file/p.csv",
         expect="/a-file/p.csv: "),
    # numeric options at 0 and below
    usage("eval-batch-size-zero", "eval", CKPT, "--data", "digits", "--batch-size", "0", expect="'--batch-size'"),
    usage("predict-top-k-negative", "predict", CKPT, "{w}/no-such.png", "--top-k", "-1", expect="'--top-k'"),
    usage("knn-k-zero", "models", "knn-eval", CKPT, "--k", "0", expect="'--k'"),
    usage("augment-preview-rows-zero", "augment", "preview", "--rows", "0", expect="'--rows'"),
    usage("log-every-zero", "run", "--log-every", "0", expect="'--log-every'"),
    user("labels-per-class-zero", *RUN, "--labels-per-class", "0", expect="labels_per_class"),
    user("val-fraction-above-one", *RUN, "--set", "data.val_fraction=1.5", expect="val_fraction"),
    # checkpoints of every broken kind
    user("checkpoint-missing", "eval", "{w}/missing.pt", "--data", "digits", expect="not found"),
    user("checkpoint-zeros", "eval", "{w}/zeros.pt", "--data", "digits", expect="corrupt"),
    user("checkpoint-truncated", "predict", "{w}/truncated.pt", "{w}/no-such.png", expect="corrupt"),
    user("checkpoint-is-a-folder", "eval", "{w}", "--data", "digits", expect="is a folder"),
    user("checkpoint-not-vistrain", "eval", "{w}/foreign.pt", "--data", "digits", expect="not a vistrain checkpoint"),
    user("checkpoint-newer-format", "eval", "{w}/newer.pt", "--data", "digits", expect="newer vistrain"),
    user("checkpoint-no-model-description", "eval", "{w}/no-model.pt", "--data", "digits",
         expect="lacks its model description"),
    user("checkpoint-plain-pickle", "eval", "{w}/pickle.pt", "--data", "digits", expect="not a safe torch checkpoint"),
    user("checkpoint-other-classes", "eval", CKPT, "--data", "imagefolder:{w}/pets", expect="class(es) 'cat'"),
    user("checkpoint-other-head", "eval", "{w}/other-head.pt", "--data", "digits", expect="does not match model"),
    user("viz-corrupt-checkpoint", "viz", "weights", "{w}/zeros.pt", "--out", "{w}/w.png", expect="corrupt"),
    user("viz-cam-out-is-a-png", "viz", "cam", CKPT, "{w}/flat/0.png", "--out", "{w}/cam.png",
         expect="names an image file, but viz cam writes a folder"),
    user("eval-unknown-split", "eval", CKPT, "--data", "digits", "--split", "trian", expect="unknown split"),
    user("resume-other-model", "run", "--headless", "--resume", CKPT, "--model", "lenet5",
         expect="do not fit the model"),
    # the run folder the dashboard attaches to
    user("attach-not-a-run-folder", "attach", "{w}/empty", expect="events.jsonl"),
    user("attach-event-not-an-object", "attach", "{w}/events-list", expect="events.jsonl"),
    user("attach-event-not-json", "attach", "{w}/events-text", expect="events.jsonl"),
    # third-party plugins that raise in each hook, and factories that raise when used
    *[Case(f"plugin-raises-in-{hook}", args, f"'vt_raise_{hook}' failed to load", env=_plugin_env(f"vt_raise_{hook}"),
           usage=kind == "command")  # an unknown command is a usage error
      for kind, (hook, args) in PLUGIN_USES.items()],
    *[user(f"plugin-{kind}-factory-raises", *args, expect="plugin 'vt_factory'", env=_plugin_env("vt_factory"))
      for kind, (_hook, args) in PLUGIN_USES.items() if kind != "dataset"],
    user("plugin-dataset-factory-raises", *PLUGIN_USES["dataset"][1], expect="from plugin 'vt_factory' failed",
         env=_plugin_env("vt_factory")),
    user("plugin-import-fails", "run", "--headless", "--out", "{w}/runs", "--model", "vt-model",
         expect="'vt_import_fails' failed to load", env=_plugin_env("vt_import_fails")),
    # augmentation specs
    user("augment-bad-parameter-value", *RUN, "--augment", "rotate-degabc", expect="rotate-degabc"),
    user("augment-preview-unknown-op", "augment", "preview", "--spec", "flip-hh", "--out", "{w}/p.png",
         expect="flip-hh"),
]


FACTORY_PLUGIN = """
from vistrain.hookspecs import hookimpl


def boom(*args, **kwargs):
    raise RuntimeError("vt_factory broke")


def vt_command():
    \"\"\"A plugin command that raises.\"\"\"
    boom()


@hookimpl
def register_models(register):
    register("vt-model", boom, in_chans=1, input_size=28)


@hookimpl
def register_datasets(register):
    register("vt-data", boom)


@hookimpl
def register_augmentations(register):
    register("vt-aug", boom)


@hookimpl
def register_strategies(register):
    register("vt-strategy", boom)


@hookimpl
def register_optimizers(register):
    register("vt-opt", boom)


@hookimpl
def register_schedulers(register):
    register("vt-sched", boom)


@hookimpl
def register_commands(register):
    register("vt-command", vt_command, help="A plugin command that raises.")


@hookimpl
def on_event(event):
    if event.kind == "epoch_end":
        raise RuntimeError("vt_factory listener broke")
"""


def _make_plugins(root: Path) -> Path:
    """Fake plugin distributions: modules plus a dist-info whose entry points the real machinery reads."""
    site = root / "plugins-site"
    site.mkdir()
    modules = {"vt_factory": FACTORY_PLUGIN, "vt_import_fails": "raise ImportError('vt_import_fails needs vt-lib')\n"}
    for hook in HOOKS:
        modules[f"vt_raise_{hook}"] = ("from vistrain.hookspecs import hookimpl\n\n\n@hookimpl\n"
                                       f"def {hook}(register):\n    raise RuntimeError('vt_raise_hook broke')\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)
    info = site / "vt_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vt-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[vistrain]\n" + "".join(f"{n} = {n}\n" for n in modules))
    return site


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


PLUGIN_SITE: Path | None = None  # set by the workspace fixture


def _env(extra: dict) -> dict:
    extra = dict(extra)
    env = dict(os.environ)
    env.pop("VISTRAIN_DEBUG", None)
    env.update({"VISTRAIN_PLUGINS": "none", "OMP_NUM_THREADS": "1", "COLUMNS": "200"})
    if extra.pop("VT_PLUGIN_PATH", None):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN_SITE), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def _invoke(args, workspace: Path, env: dict | None = None, timeout: float = 120):
    """Run the script; a case that hangs comes back as exit code None with what it printed so far."""
    argv = [VISTRAIN, *(a.format(w=workspace) for a in args)]
    try:
        return subprocess.run(argv, capture_output=True, text=True, cwd=workspace, env=_env(env or {}),
                              stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return subprocess.CompletedProcess(argv, None, "", f"(still running after {timeout:.0f} s)\n{err}")


def _png_bytes() -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.full((28, 28), 128, dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _make_checkpoints(root: Path) -> None:
    import pickle

    import torch

    last = root / "base" / "checkpoints" / "last.pt"
    data = last.read_bytes()
    (root / "zeros.pt").write_bytes(b"\x00" * 100)
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    torch.save({"weight": torch.zeros(3)}, root / "foreign.pt")
    ckpt = torch.load(last, weights_only=True)
    torch.save({**ckpt, "format_version": 99}, root / "newer.pt")
    torch.save({k: v for k, v in ckpt.items() if k != "model"}, root / "no-model.pt")
    torch.save({**ckpt, "model": {**ckpt["model"], "num_classes": 5}, "classes": ckpt["classes"][:5]},
               root / "other-head.pt")
    # a plain pickle whose loading would run code: it must be refused without running it
    (root / "pickle.pt").write_bytes(pickle.dumps(Path("/etc/passwd")))


def _make_workspace(root: Path) -> None:
    (root / "bad-indent.yaml").write_text("model:\n  name: lenet5\n data: x\n")
    (root / "list.yaml").write_text("- model\n- data\n")
    (root / "space.yaml").write_text("optim.lr: {log_uniform: [1.0e-3, 1.0e-1]}\n")
    (root / "space-typo.yaml").write_text("optim.lrr: {log_uniform: [1.0e-3, 1.0e-1]}\n")
    (root / "space-reversed.yaml").write_text("optim.lr: {uniform: [0.1, 0.001]}\n")
    (root / "space-gauss.yaml").write_text("optim.lr: {gauss: [0.1, 0.001]}\n")
    (root / "empty" / "a").mkdir(parents=True)
    (root / "a-file").write_text("not a folder")
    png = _png_bytes()
    (root / "flat").mkdir()
    (root / "flat" / "0.png").write_bytes(png)
    broken = root / "broken-images" / "c"
    broken.mkdir(parents=True)
    (broken / "empty.png").write_bytes(b"")
    (broken / "text.png").write_text("not an image")
    (broken / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "pets" / "cat").mkdir(parents=True)
    (root / "pets" / "cat" / "0.png").write_bytes(png)
    (root / "one-empty-class" / "cat").mkdir(parents=True)
    (root / "one-empty-class" / "cat" / "0.png").write_bytes(png)
    (root / "one-empty-class" / "dog").mkdir()
    (root / "one-empty-class" / "dog" / "._0.png").write_bytes(b"\x00\x05\x16\x07 a macOS resource fork")
    (root / "events-list").mkdir()
    (root / "events-list" / "events.jsonl").write_text("[1, 2, 3]\n")
    (root / "events-text").mkdir()
    (root / "events-text" / "events.jsonl").write_text("this is not JSON\n")
    _make_data_sources(root, png)
    _make_checkpoints(root)


def _make_data_sources(root: Path, png: bytes) -> None:
    import io
    import tarfile

    with tarfile.open(root / "labels-only.tar", "w") as tar:  # a shard of samples without images
        for key in ("000000", "000001"):
            info = tarfile.TarInfo(f"{key}.cls")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"0"))
    import datasets

    datasets.Dataset.from_dict({"image": [png, png], "y": [0, 1]}).save_to_disk(str(root / "hf-no-label"))
    # three class names, images of two: a labelled split without any 'fox'
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog", "fox"])})
    datasets.Dataset.from_dict({"image": [png] * 12, "label": [0] * 6 + [1] * 6},
                               features=features).save_to_disk(str(root / "hf-missing-class"))
    (root / "t").mkdir()
    (root / "t" / "a.png").write_bytes(png)
    (root / "table.csv").write_text("path,label\nt/a.png,cat\nt/missing.png,dog\n")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """Files for every case, and one tiny real checkpoint ({w}/base) trained once through the script."""
    assert VISTRAIN, "the vistrain console script is not on PATH: install the package (pip install -e .)"
    root = tmp_path_factory.mktemp("bad-inputs")
    done = _invoke(("run", "--headless", "--data", "digits", "--model", "perceptron", "--epochs", "1",
                    "--set", "data.batch_size=256", "--out", "{w}", "--name", "base"), root)
    assert done.returncode == 0, done.stderr
    _make_workspace(root)
    global PLUGIN_SITE
    PLUGIN_SITE = _make_plugins(root)
    return root


@pytest.fixture(scope="session")
def outcomes(workspace):
    """Run every case once, in parallel; the checkpoint's hash is taken before and after."""
    before = _sha(workspace / "base" / "checkpoints" / "last.pt")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {case.id: pool.submit(_invoke, case.args, workspace, case.env) for case in CASES}
        results = {name: future.result() for name, future in futures.items()}
    return results, before


def _assert_one_error_line(case: Case, result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    shown = f"{case.id}: exit {result.returncode}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, shown
    assert result.returncode == 2, shown
    if case.usage:
        assert len(lines) == 2 and lines[0].startswith("Usage: vistrain"), shown
    else:
        assert len(lines) == 1, shown
    assert lines[-1].startswith("error: "), shown
    assert not lines[-1].startswith("error: unexpected "), shown
    assert case.expect in lines[-1], shown
    return lines[-1]


def test_the_catalogue_is_large_enough():
    assert len({case.id for case in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_and_exit_2(case, outcomes):
    results, _ = outcomes
    _assert_one_error_line(case, results[case.id])


def test_checkpoints_already_written_stay_intact(outcomes, workspace):
    _, before = outcomes
    assert _sha(workspace / "base" / "checkpoints" / "last.pt") == before


def test_a_raising_listener_is_one_warning_and_the_run_goes_on(workspace):
    """on_event is the one hook whose failure does not end the run: the listener is disabled, named once."""
    result = _invoke((*RUN_DIGITS, "--model", "perceptron"), workspace, _plugin_env("vt_factory"))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 0, result.stderr
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "'vt_factory'" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_no_arguments_prints_the_help_and_no_error(workspace):
    result = _invoke((), workspace)
    assert result.returncode == 0, result.stderr
    assert "Usage: vistrain" in result.stdout and "run" in result.stdout
    assert result.stderr.strip() == ""


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (needs root), unmounted afterwards."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the full-disk case needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder: Path, leave: int) -> None:
    """Fill the file system of *folder* up to the last *leave* bytes."""
    spare = folder / "spare"
    spare.write_bytes(b"\0" * leave)
    with open(folder / "filler", "wb", buffering=0) as fh:  # unbuffered: closing has nothing left to write
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    spare.unlink()


def test_a_full_disk_is_one_line_and_keeps_the_checkpoint(workspace, small_disk):
    run_dir = small_disk / "base"
    shutil.copytree(workspace / "base", run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    before = _sha(last)
    _fill(small_disk, leave=16 * 1024)  # room for the run's small files, not for a checkpoint
    result = _invoke(("run", "--headless", "--resume", str(last), "--epochs", "2"), workspace)
    _assert_one_error_line(Case("full-disk", (), "disk full"), result)
    assert _sha(last) == before
