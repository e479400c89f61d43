"""k-NN: voting on toy data, batching, checkpoints, ``run --model knn`` and k-NN on a checkpoint's features."""

from __future__ import annotations

import json

import pytest
import torch

from vistrain.models.knn import KNNClassifier


def _toy():
    refs = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [10.0, 10.0], [10.0, 11.0]]).view(5, 2, 1, 1)
    labels = torch.tensor([0, 0, 1, 2, 2])
    return refs, labels


def test_majority_of_the_k_nearest():
    refs, labels = _toy()
    model = KNNClassifier(3, k=3)
    assert model.fit([(refs, labels)]) == 5
    queries = torch.tensor([[0.1, 0.1], [9.0, 9.0], [1.0, 0.1]]).view(3, 2, 1, 1)
    assert model(queries).argmax(1).tolist() == [0, 2, 0]
    assert model.votes(queries)[0].round().tolist() == [2.0, 1.0, 0.0]
    model.k = 1
    assert model(queries).argmax(1).tolist() == [0, 2, 1]


def test_ties_go_to_the_nearer_neighbours():
    refs = torch.tensor([[0.0], [3.0]]).view(2, 1, 1, 1)
    model = KNNClassifier(2, k=2)
    model.fit([(refs, torch.tensor([1, 0]))])
    assert model(torch.tensor([[1.0]]).view(1, 1, 1, 1)).argmax(1).item() == 1
    assert model(torch.tensor([[2.0]]).view(1, 1, 1, 1)).argmax(1).item() == 0


def test_cosine_ignores_scale():
    refs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 2, 1, 1)
    model = KNNClassifier(2, k=1, metric="cosine")
    model.fit([(refs, torch.tensor([0, 1]))])
    # By L2 (5, 0.2) is nearer (0, 1); by angle it is (1, 0).
    assert model(torch.tensor([[5.0, 0.2]]).view(1, 2, 1, 1)).argmax(1).item() == 0


def test_chunked_distances_match_brute_force():
    torch.manual_seed(0)
    refs, labels = torch.randn(300, 1, 4, 4), torch.randint(0, 4, (300,))
    queries = torch.randn(50, 1, 4, 4)
    model = KNNClassifier(4, k=5, chunk_size=7)
    model.fit([(refs[:150], labels[:150]), (refs[150:], labels[150:])])
    idx = torch.cdist(queries.flatten(1), refs.flatten(1)).topk(5, largest=False).indices
    expected = torch.zeros(50, 4).scatter_add_(1, labels[idx], torch.ones(50, 5))
    assert torch.equal(model.votes(queries).floor(), expected)


def test_state_dict_round_trip_restores_the_references():
    refs, labels = _toy()
    model = KNNClassifier(3, k=3)
    model.fit([(refs, labels)])
    fresh = KNNClassifier(3, k=3)
    fresh.load_state_dict(model.state_dict())
    q = torch.randn(4, 2, 1, 1)
    assert torch.equal(fresh(q), model(q))


def test_bad_options_are_user_errors(cli, tmp_path):
    code, _out, err = cli("run", "--model", "knn", "--headless", "--out", str(tmp_path), "--set", "model.kwargs.metric=l3")
    assert code == 2 and "metric" in err


def test_run_knn_on_mnist5k_reports_accuracy(cli, tmp_path):
    code, out, err = cli("run", "--model", "knn", "--data", "mnist5k", "--headless", "--out", str(tmp_path),
                         "--name", "knn")
    assert code == 0, err
    run = tmp_path / "knn"
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["kind"] == "eval_end"]
    assert [(e["split"], e["num_samples"]) for e in evals] == [("val", 500), ("test", 1000)]
    assert evals[1]["top1"] >= 0.90  # measured 94.3% on 1,000 val digits (k=3, L2 on pixels, 4,000 references)
    assert "top-1 9" in out
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("supervised,1,")
    code, out, _ = cli("eval", str(run / "checkpoints" / "best.pt"), "--data", "mnist5k")
    assert code == 0 and "[test]" in out and f"{100 * evals[1]['top1']:.2f}%" in out


@pytest.fixture(scope="module")
def lenet_checkpoint(tmp_path_factory):
    from vistrain import plugins
    from vistrain.cli import main

    out = tmp_path_factory.mktemp("runs")
    plugins.reset()
    assert main(["run", "--model", "lenet5", "--data", "mnist5k", "--headless", "--epochs", "1", "--out", str(out),
                 "--name", "lenet", "--labels-per-class", "100"]) == 0
    return out / "lenet" / "checkpoints" / "best.pt"


def test_knn_on_a_checkpoints_features(cli, lenet_checkpoint, tmp_path):
    code, out, err = cli("models", "knn-eval", str(lenet_checkpoint), "--k", "5")
    assert code == 0, err
    assert "84-d features of 3500 references" in out
    top1 = float(out.split("top-1 ")[1].split("%")[0])
    assert top1 > 70.0  # chance is 10%; one short epoch of LeNet already separates the digits
    # The same, as a run: the k-NN takes the checkpoint's input spec and embeds through its backbone.
    code, out, err = cli("run", "--model", "knn", "--data", "mnist5k", "--headless", "--out", str(tmp_path),
                         "--name", "knnfeat", "--set", f"model.kwargs.features={lenet_checkpoint}",
                         "--set", "model.kwargs.k=5")
    assert code == 0, err
    assert f"top-1 {top1:.2f}%" in out
