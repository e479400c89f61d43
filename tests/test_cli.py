"""End-to-end CLI: run folder contents, eval/predict, and every bad input → one line, exit code 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import write_png_digits
from vistrain import plugins
from vistrain.events import from_dict
from vistrain.hookspecs import hookimpl

FAST = ["--headless", "--data", "digits", "--epochs", "1", "--set", "data.batch_size=128", "--set", "output.system_interval_s=0.2"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny real training run shared by the eval/predict tests."""
    from vistrain.cli import main

    plugins.reset()
    out = tmp_path_factory.mktemp("runs")
    code = main(["run", *FAST, "--epochs", "2", "--out", str(out), "--name", "base"])
    assert code == 0
    return out / "base"


def test_help_and_version_do_not_import_torch():
    code = ("import sys; from vistrain.cli import main; main(['--help']); main(['models', 'list']);"
            "main(['datasets', 'list']); main(['--version']); print('TORCH', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "TORCH False" in out.stdout and "vistrain 0." in out.stdout and "lenet5" in out.stdout


def test_run_writes_a_complete_run_folder(trained_run):
    run = trained_run
    assert (run / "config.yaml").read_text().startswith("model:")
    events = [from_dict(json.loads(line)) for line in (run / "events.jsonl").read_text().splitlines()]
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    for kind in ("stage_started", "batch_end", "epoch_end", "eval_end", "checkpoint_saved"):
        assert kind in kinds
    assert all(json.loads(line)["schema"] == 1 for line in (run / "events.jsonl").read_text().splitlines())
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and float(rows[-1]["val_top1"]) > 0.5
    ckpt = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert ckpt["model"]["name"] == "lenet5" and ckpt["classes"] == [str(i) for i in range(10)]
    assert ckpt["input"] == {"channels": 1, "size": 28, "mean": [0.1307], "std": [0.3081], "resize": "squash",
                             "crop_pct": 0.875}
    assert {"optimizer", "scheduler", "rng", "epoch", "global_step"} <= set(ckpt)
    assert (run / "checkpoints" / "last.pt").exists()


def test_plain_output_when_not_a_terminal(cli, tmp_path):
    code, out, err = cli("run", *FAST, "--out", tmp_path, "--log-every", "5")
    assert code == 0, err
    assert "\x1b[" not in out and "\r" not in out
    assert "step 10/10" in out and "val loss" in out and "run folder:" in out


def test_same_name_never_overwrites(cli, tmp_path):
    cli("run", *FAST, "--out", tmp_path, "--name", "x")
    first = (tmp_path / "x" / "checkpoints" / "last.pt").read_bytes()
    code, out, _ = cli("run", *FAST, "--out", tmp_path, "--name", "x")
    assert code == 0 and (tmp_path / "x-2" / "checkpoints" / "last.pt").exists()
    assert (tmp_path / "x" / "checkpoints" / "last.pt").read_bytes() == first


def test_a_checkpoint_predicts_exactly_as_the_model_did_before_it_was_saved(tmp_path):
    """The model comes back in eval mode with its weights, BatchNorm statistics and input spec: the same
    logits, bit for bit, as the trained model in memory (dropout and BatchNorm make train mode differ)."""
    import torch.nn.functional as F

    from vistrain.config import ModelConfig
    from vistrain.checkpoint import make_checkpoint
    from vistrain.durable import atomic_torch_save
    from vistrain.models.factory import load_model
    from vistrain.models.factory import create_model

    torch.manual_seed(0)
    model, spec, input_spec = create_model(ModelConfig(name="vgg11_bn", input_size=32), 10, (8, 8), 1)
    x = torch.randn(16, input_spec.channels, input_spec.size, input_spec.size)
    y = torch.randint(0, 10, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(3):  # weights and running statistics move away from their initial values
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        expected = model(x)
    path = tmp_path / "vgg.pt"
    atomic_torch_save(make_checkpoint(model=model, model_spec=spec, input_spec=input_spec.to_dict(),
                                      classes=list("abcdefghij"), epoch=1, global_step=3), path)
    loaded, ckpt, loaded_spec = load_model(path)
    assert loaded_spec == input_spec and ckpt["classes"] == list("abcdefghij")
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)


def held_out_digits(run, classes: list[str], root):
    """The run's own held-out test images of *classes*, written as 8x8 PNGs in ROOT/<class>/; the file paths."""
    import cv2

    from vistrain.data.prepare import load_source, prepare_data
    from vistrain.checkpoint import load_checkpoint
    from vistrain.checkpoint import saved_config

    cfg = saved_config(load_checkpoint(run / "checkpoints" / "best.pt")).data
    data = prepare_data(load_source("digits", cfg), cfg)
    paths = []
    for i in range(len(data.test)):
        name = data.classes[int(data.test.labels[i])]
        if name in classes:
            (root / name).mkdir(parents=True, exist_ok=True)
            paths.append(root / name / f"{i}.png")
            cv2.imwrite(str(paths[-1]), data.test.image(i)[..., 0])
    return paths


def test_eval_on_a_png_folder_maps_class_names(cli, trained_run, tmp_path):
    # folder classes 0, 3, 7 are labels 0, 1, 2 of the folder and outputs 0, 3, 7 of the checkpoint
    from vistrain.inference import Predictions

    best = trained_run / "checkpoints" / "best.pt"
    files = held_out_digits(trained_run, ["7", "3", "0"], tmp_path / "pngs")
    code, out, err = cli("eval", best, "--data", f"imagefolder:{tmp_path / 'pngs'}")
    assert code == 0, err
    code, out_workers, err = cli("eval", best, "--data", f"imagefolder:{tmp_path / 'pngs'}", "--workers", "2")
    assert code == 0 and out_workers == out, err  # decoded by two loader workers: the same figures
    predicted = list(Predictions(best, [str(f) for f in files], top_k=1, num_workers=0))
    expected = sum(preds[0][0] == Path(path).parent.name for path, preds in predicted) / len(files)
    assert expected > 0.5  # a class map that ignored the names would score far below this
    assert f"[all] {len(files)} images: top-1 {100 * expected:.2f}%" in out


def test_eval_on_the_training_dataset_uses_its_held_out_splits(cli, trained_run):
    code, out, _ = cli("eval", trained_run / "checkpoints" / "best.pt", "--data", "digits")
    test = [json.loads(line) for line in (trained_run / "events.jsonl").read_text().splitlines()]
    test = [e for e in test if e["kind"] == "eval_end" and e["split"] == "test"]
    assert code == 0 and "[test]" in out and f"top-1 {100 * test[0]['top1']:.2f}%" in out
    code, out, _ = cli("eval", trained_run / "checkpoints" / "best.pt", "--data", "digits", "--split", "val")
    rows = list(csv.DictReader((trained_run / "metrics.csv").open()))
    best = max(float(r["val_top1"]) for r in rows)
    assert code == 0 and "[val]" in out and f"top-1 {100 * best:.2f}%" in out


def test_predict_prints_the_models_top_k_classes_and_probabilities(cli, trained_run, tmp_path):
    from vistrain.data.decode import read_image_file
    from vistrain.data.pipeline import ImageTransform
    from vistrain.models.factory import load_model

    best = trained_run / "checkpoints" / "best.pt"
    (image,) = held_out_digits(trained_run, ["4"], tmp_path / "p")[:1]
    code, out, err = cli("predict", best, image, "--top-k", "3")
    assert code == 0, err
    model, ckpt, spec = load_model(best)
    with torch.no_grad():
        probs = torch.softmax(model(ImageTransform(spec)(read_image_file(image)).unsqueeze(0)), dim=1)[0]
    values, idx = probs.topk(3)
    shown = ", ".join(f"{ckpt['classes'][i]} {100 * v:.1f}%" for v, i in zip(values.tolist(), idx.tolist()))
    assert out.strip() == f"{image}: {shown}"


def test_predict_a_folder_in_batches_to_csv_json_and_jsonl_naming_unreadable_files(cli, trained_run, tmp_path):
    """A folder is every image below it, in sorted order; batches decoded by workers give each image what the
    model gives it alone; --out writes CSV, JSON or JSON Lines, and an unreadable file is named (exit 2) after the
    others' predictions are written."""
    from vistrain.data.decode import read_image_file
    from vistrain.data.pipeline import ImageTransform
    from vistrain.models.factory import load_model

    best = trained_run / "checkpoints" / "best.pt"
    files = sorted(str(p) for p in held_out_digits(trained_run, ["1", "2"], tmp_path / "d"))
    (tmp_path / "d" / "2" / "zz.png").write_text("not an image")
    model, ckpt, spec = load_model(best)
    expected = []
    for path in files:
        with torch.no_grad():
            probs = torch.softmax(model(ImageTransform(spec)(read_image_file(path)).unsqueeze(0)), dim=1)[0]
        values, idx = probs.topk(2)
        expected.append((path, [(ckpt["classes"][i], v) for v, i in zip(values.tolist(), idx.tolist())]))

    rows = {}
    for suffix in ("csv", "json", "jsonl"):
        out = tmp_path / f"p.{suffix}"
        code, stdout, err = cli("predict", best, tmp_path / "d", "-k", "2", "--out", out, "--workers", "2",
                                "--batch-size", "5")
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "could not read 1 image(s): " + str(tmp_path / "d" / "2" / "zz.png") in err and str(out) in err
        assert f"wrote {len(files)} prediction(s) to {out}" in stdout
        if suffix == "csv":
            table = list(csv.reader(out.open()))
            assert table[0] == ["path", "class_1", "prob_1", "class_2", "prob_2"]
            rows[suffix] = [(r[0], [(r[1], float(r[2])), (r[3], float(r[4]))]) for r in table[1:]]
        else:
            text = out.read_text()
            records = json.loads(text) if suffix == "json" else [json.loads(line) for line in text.splitlines()]
            rows[suffix] = [(r["path"], list(zip(r["classes"], r["probs"]))) for r in records]
    for got in rows.values():
        assert [p for p, _ in got] == files
        for (path, preds), (_, want) in zip(got, expected):
            assert [c for c, _ in preds] == [c for c, _ in want], path
            assert [p for _, p in preds] == pytest.approx([p for _, p in want], abs=2e-6), path
    code, stdout, err = cli("predict", best, tmp_path / "d" / "1", files[-1], "-k", "2", "--workers", "0")
    assert code == 0, err
    lines = stdout.strip().splitlines()
    assert len(lines) == len(files) - sum(f.startswith(str(tmp_path / "d" / "2")) for f in files) + 1
    assert lines[-1] == f"{files[-1]}: " + ", ".join(f"{c} {100 * p:.1f}%" for c, p in expected[-1][1])


def test_config_show_prints_defaults(cli):
    code, out, _ = cli("config", "show")
    assert code == 0 and "name: lenet5" in out and "epochs:" in out


# --- bad input: one line, exit code 2, no traceback; --debug shows it --------------------------------


def one_line_error(code, err):
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("args, expected", [
    (["--model", "lenet"], "unknown model 'lenet'. did you mean 'lenet5'"),
    (["--data", "mnist5"], "unknown dataset 'mnist5'. did you mean 'mnist5k'"),
    (["--strategy", "supervise"], "unknown strategy 'supervise'. did you mean 'supervised'"),
    (["--optimizer", "adamww"], "unknown optimizer 'adamww'. did you mean 'adamw'"),
    (["--set", "train.epohcs=1"], "unknown config key 'train.epohcs'. did you mean 'epochs'"),
    (["--set", "train.epochs=lots"], "config key 'train.epochs'"),
    (["--data", "imagefolder:/no/such/dir"], "does not exist"),
])
def test_bad_names_and_keys(cli, tmp_path, args, expected):
    code, _, err = cli("run", "--headless", "--out", tmp_path, *args)
    assert expected in one_line_error(code, err)
    assert not any(tmp_path.iterdir()), "a failed validation must not leave a run folder"


def test_unknown_augmentation_op(cli, tmp_path):
    code, _, err = cli("run", "--headless", "--out", tmp_path, "--augment", "flip-hh")
    line = one_line_error(code, err)
    assert "flip-hh" in line


def test_malformed_yaml_names_the_line(cli, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model:\n  name: lenet5\n data: x\n")
    code, _, err = cli("run", "--headless", "-c", cfg)
    assert "line 3" in one_line_error(code, err)


def test_empty_image_folder(cli, tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    code, _, err = cli("run", "--headless", "--out", tmp_path / "o", "--data", f"imagefolder:{tmp_path / 'empty'}")
    assert "has no images" in one_line_error(code, err)


def test_corrupt_images_are_reported_and_the_run_goes_on(cli, tmp_path):
    folder = write_png_digits(tmp_path / "d", per_class=6, classes=["0", "1"])
    (folder / "1" / "bad.png").write_bytes(b"corrupt")
    code, out, err = cli("run", *FAST[:1], "--data", f"imagefolder:{folder}", "--epochs", "1", "--out", tmp_path / "o")
    assert code == 0, err
    assert "skipped 1 unreadable image(s): bad.png" in out


def test_unwritable_output_folder(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = cli("run", *FAST, "--out", blocker / "runs")
    assert "cannot write the run folder" in one_line_error(code, err)


def test_checkpoint_from_another_class_set(cli, trained_run, tmp_path):
    folder = tmp_path / "pets"
    write_png_digits(tmp_path / "tmp", per_class=1, classes=["1"])
    (folder / "cat").mkdir(parents=True)
    (tmp_path / "tmp" / "1" / "0.png").rename(folder / "cat" / "0.png")
    code, _, err = cli("eval", trained_run / "checkpoints" / "best.pt", "--data", f"imagefolder:{folder}")
    assert "class(es) 'cat'" in one_line_error(code, err)


def test_checkpoint_from_another_model(cli, trained_run, tmp_path):
    ckpt = torch.load(trained_run / "checkpoints" / "best.pt", weights_only=True)
    ckpt["model"]["num_classes"] = 5
    ckpt["classes"] = ckpt["classes"][:5]
    torch.save(ckpt, tmp_path / "other.pt")
    code, _, err = cli("eval", tmp_path / "other.pt", "--data", "digits")
    assert "does not match model 'lenet5'" in one_line_error(code, err)


def test_corrupt_and_missing_checkpoints(cli, tmp_path):
    (tmp_path / "c.pt").write_bytes(b"\x00" * 100)
    code, _, err = cli("eval", tmp_path / "c.pt", "--data", "digits")
    assert "corrupt" in one_line_error(code, err)
    code, _, err = cli("predict", tmp_path / "missing.pt", tmp_path / "x.png")
    assert "not found" in one_line_error(code, err)


class NaNAfterFirstEpoch:
    """A plugin model that returns NaN once it has trained for a while."""

    @hookimpl
    def register_models(self, register):
        from vistrain.models.lenet import LeNet5

        class Diverging(LeNet5):
            calls = 0

            def forward(self, x):
                out = super().forward(x)
                if self.training:
                    Diverging.calls += 1
                    if Diverging.calls > 12:  # in epoch 2 (10 steps an epoch)
                        return out * float("nan")
                return out

        register("diverging", lambda n, c, s, **kw: Diverging(n, c, s), in_chans=1, input_size=28)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(cli, tmp_path):
    plugins.register_plugin(NaNAfterFirstEpoch(), "nan")
    try:
        code, out, err = cli("run", *FAST, "--epochs", "3", "--model", "diverging", "--out", tmp_path, "--name", "n")
    finally:
        plugins.unregister_plugin("nan")
    line = one_line_error(code, err)
    assert "loss became nan" in line and "last good checkpoint" in line
    ckpt = torch.load(tmp_path / "n" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1
    assert json.loads((tmp_path / "n" / "events.jsonl").read_text().splitlines()[-1])["kind"] == "run_failed"


def test_debug_shows_the_traceback(cli):
    code, _, err = cli("--debug", "run", "--headless", "--model", "lenet")
    assert code == 2 and "Traceback" in err and "error: unknown model" in err


def test_resume_continues_from_the_checkpoint(cli, trained_run, tmp_path):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(trained_run, run)
    code, out, err = cli("run", "--headless", "--resume", run / "checkpoints" / "last.pt", "--epochs", "3")
    assert code == 0, err
    assert "resumed from epoch 2" in out
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 3


def test_errors_stay_one_line_after_the_report_module_is_imported(cli):
    """Importing the ``vistrain.cli.report`` submodule sets the package attribute ``report``; the
    error path must not call it (it once replaced the error reporter, so every error was a TypeError)."""
    import importlib

    importlib.import_module("vistrain.cli.report")
    code, _out, err = cli("run", "--headless", "--model", "no-such-model")
    assert code == 2
    assert err.strip().startswith("error:") and "TypeError" not in err


def test_piped_tables_never_fold_a_row(capsys):
    """``vistrain ... list | grep`` must see each row whole, however wide the other columns are."""
    from rich.table import Table

    from vistrain.cli.lists import print_table

    table = Table(box=None, pad_edge=False)
    for col in ("name", "registered", "status"):
        table.add_column(col, overflow="fold")
    long = "broken: import failed: RuntimeError: " + "x" * 300
    table.add_row("plug", "models: " + ", ".join(f"model{i}" for i in range(40)), long)
    print_table(table)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("plug")]
    assert len(rows) == 1 and long in rows[0]


@pytest.mark.parametrize("args, codes", [(["--help"], (141,)), (["config", "show"], (1, 141)),
                                         (["models", "list"], (1, 141))])  # rich's tables end their own way: 1
def test_output_piped_to_a_reader_that_stops_early_is_not_an_error(args, codes):
    """`vistrain --help | head -1`: the reader closes the pipe; no error line, exit 141 (128 + SIGPIPE) as git.
    (The reader closes before the first write, so the write fails every time, not only when the output
    outgrows the pipe's buffer.)"""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "vistrain", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**__import__("os").environ, "VISTRAIN_PLUGINS": "none"})
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert "error" not in err.lower() and "Traceback" not in err and "Exception" not in err, err
    assert code in codes
