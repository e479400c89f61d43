"""Per-class precision, recall and F1, balanced top-1 and macro-F1: against scikit-learn, in evaluate(), the events,
eval, the report and compare."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_recall_fscore_support

from vistrain.metrics import ClassMetrics, confusion_matrix


@pytest.mark.parametrize("seed", range(5))
def test_class_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    k = 6
    labels = rng.integers(0, k - 1, 300)  # class 5 never occurs in the labels
    predicted = np.where(rng.random(300) < 0.6, labels, rng.integers(0, k, 300))
    predicted[predicted == 3] = 2  # class 3 is never predicted: its precision is 0 by convention
    m = ClassMetrics.from_predictions(labels, predicted, k)
    p, r, f, support = precision_recall_fscore_support(labels, predicted, labels=range(k), zero_division=0)
    assert np.allclose(m.precision, p) and np.allclose(m.recall, r) and np.allclose(m.f1, f)
    assert (m.support == support).all()
    with pytest.warns(UserWarning):  # scikit-learn warns that class 5 is predicted but never true
        expected_balanced = balanced_accuracy_score(labels, predicted)
    assert m.balanced_top1 == pytest.approx(expected_balanced)
    assert m.macro_f1 == pytest.approx(f1_score(labels, predicted, average="macro", zero_division=0))


def test_balanced_top1_counts_classes_not_images():
    """900 images of class 0 all right, 100 of class 1 all wrong: top-1 90 %, balanced top-1 50 %."""
    labels = np.array([0] * 900 + [1] * 100)
    m = ClassMetrics.from_predictions(labels, np.zeros(1000, dtype=int), 2)
    assert m.balanced_top1 == 0.5
    assert m.recall.tolist() == [1.0, 0.0] and m.precision.tolist() == [0.9, 0.0]
    assert m.macro_f1 == pytest.approx((2 * 0.9 / 1.9) / 2)
    assert confusion_matrix(labels, np.zeros(1000, dtype=int), 2).tolist() == [[900, 0], [100, 0]]


class _Fixed(torch.nn.Module):
    """Returns the logits stored for each input index (the input holds the index)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[x.view(len(x), -1)[:, 0].long()]


def test_evaluate_reports_the_per_class_figures_of_the_whole_loader(recorder):
    from vistrain.engine.loop import evaluate
    from vistrain.events import EvalEnd

    rng = torch.Generator().manual_seed(0)
    logits = torch.randn(70, 4, generator=rng)
    labels = torch.randint(0, 4, (70,), generator=rng)
    batches = [(torch.arange(i, min(i + 16, 70)).float().view(-1, 1), labels[i:i + 16]) for i in range(0, 70, 16)]
    events = []
    result = evaluate(_Fixed(logits), batches, device=torch.device("cpu"), emit=events.append)
    expected = ClassMetrics.from_predictions(labels.numpy(), logits.argmax(1).numpy(), 4)
    assert result["balanced_top1"] == pytest.approx(expected.balanced_top1)
    assert result["macro_f1"] == pytest.approx(expected.macro_f1)
    assert result["class_recall"] == pytest.approx(expected.recall.tolist())
    (event,) = [e for e in events if isinstance(e, EvalEnd)]
    assert event.balanced_top1 == pytest.approx(expected.balanced_top1)
    assert event.class_precision == pytest.approx(expected.precision.tolist())


def test_eval_run_report_and_compare_show_them(cli, tmp_path):
    from vistrain.events import EvalEnd
    from vistrain.runfolder import read_events

    code, out, err = cli("run", "--headless", "--data", "digits", "--epochs", "1", "--out", tmp_path, "--name", "a")
    assert code == 0, err
    assert "balanced top-1" in out and "macro-F1" in out  # the test split's line
    events, _ = read_events(tmp_path / "a" / "events.jsonl")
    test = [e for e in events if isinstance(e, EvalEnd) and e.split == "test"][0]
    assert test.balanced_top1 is not None and len(test.class_recall) == 10
    header = (tmp_path / "a" / "metrics.csv").read_text().splitlines()[0]
    assert header.endswith("val_balanced_top1,val_macro_f1")
    code, out, err = cli("eval", tmp_path / "a" / "checkpoints" / "best.pt", "--data", "digits", "--per-class")
    assert code == 0, err
    assert f"balanced top-1 {100 * test.balanced_top1:.2f}%" in out and f"macro-F1 {100 * test.macro_f1:.2f}%" in out
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0] in list("0123456789")]
    assert len(rows) == 10 and all(r[1].endswith("%") and r[2].endswith("%") for r in rows)
    assert [float(r[2].rstrip("%")) for r in rows] == pytest.approx([100 * x for x in test.class_recall], abs=0.006)
    code, out, err = cli("compare", tmp_path / "a", tmp_path / "a")
    assert code == 0, err
    assert "test balanced top-1" in out and f"{100 * test.macro_f1:.2f}%" in out
    code, out, err = cli("report", tmp_path / "a", "--out", tmp_path / "r.html")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    assert "held-out test balanced top-1 / macro-F1" in html and "<th>precision</th>" in html
