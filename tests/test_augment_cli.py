"""`vistrain augment list|preview|search` and `vistrain run --augment policy.yaml`, run in-process."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import yaml

from vistrain.augment.preview import GridLayout


def test_list_shows_ops_and_pool(cli):
    code, out, err = cli("augment", "list")
    assert code == 0
    assert "shear-x" in out and "RandAugment" in out
    code, out, _ = cli("augment", "list", "flip*")
    assert "flip-h" in out and "rotate" not in out


def test_listing_ops_does_not_import_torch():
    code = ("import sys; from vistrain.plugins import registry; registry('augmentation').names();"
            "from vistrain.augment.pipeline import build_pipeline; build_pipeline('flip-h,rand-n2-m9');"
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_preview_png_decodes_with_the_grid_size(cli, tmp_path):
    out = tmp_path / "grid.png"
    code, stdout, err = cli("augment", "preview", "--spec", "flip-h,rand-n2-m9", "--data", "digits",
                            "--out", out, "--rows", 3, "--k", 4, "--tile", 48)
    assert code == 0, err
    img = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert img is not None
    assert img.shape[:2] == GridLayout(3, 4, 48).size()
    assert img.shape[:2] == (3 * (48 + 14) + 4 * 4, 5 * 48 + 6 * 4)


def test_search_resumes_and_run_uses_the_policy(cli, tmp_path, recorder):
    out = tmp_path / "search"
    common = ("--data", "digits", "--model", "lenet5", "--epochs", 1, "--out", out,
              "--set", "data.batch_size=128", "--set", "data.labels_per_class=15")
    code, stdout, err = cli("augment", "search", "--trials", 4, *common)
    assert code == 0, err
    assert "leaderboard" in stdout and (out / "policy.yaml").exists()
    records = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert [r["trial"] for r in records] == [1, 2, 3, 4]
    trials = recorder.of("augment_trial")
    assert [e.trial for e in trials] == [1, 2, 3, 4] and len(trials[-1].leaderboard) == 4
    best = max(records, key=lambda r: r["score"])
    policy = yaml.safe_load((out / "policy.yaml").read_text())
    assert policy["pipeline"] == [best["policy"]] and policy["score"] == best["score"]
    assert sum(1 for line in (out / "events.jsonl").read_text().splitlines() if '"augment_trial"' in line) == 4

    # Resuming with one more trial runs only trial 5.
    code, stdout, err = cli("augment", "search", "--trials", 5, *common)
    assert code == 0, err
    assert "4 trial(s) already" in stdout
    assert [json.loads(x)["trial"] for x in (out / "trials.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]

    code, stdout, err = cli("run", "--headless", "--data", "digits", "--epochs", 1, "--augment", out / "policy.yaml",
                            "--out", tmp_path / "runs", "--name", "with-policy", "--set", "data.batch_size=128")
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "runs" / "with-policy" / "config.yaml").read_text())
    assert saved["augment"]["spec"] == str(out / "policy.yaml")


def test_search_in_a_folder_of_another_search_is_refused(cli, tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "search.yaml").write_text(yaml.safe_dump({"data": "mnist5k", "model": "lenet5", "seed": 0,
                                                                "epochs": 1, "subset": False, "base": []}))
    code, _, err = cli("augment", "search", "--data", "digits", "--trials", 1, "--epochs", 1, "--out", tmp_path / "s")
    assert code == 2 and "different data" in err
