"""train.ema_decay: the weights' moving average is what is validated, saved in best.pt and used afterwards."""

from __future__ import annotations

import pytest
import torch

from vistrain.engine.ema import WeightEma


def test_the_average_follows_timms_warm_up_and_update():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    ema = WeightEma(model, decay=0.99, warmup=True)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(1, 40):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(step)
        # timm: decay 1 - (1 + s)^(-2/3) with s = step - 1, capped at ema_decay; 0 at the first step
        s = step - 1
        d = 0.0 if s <= 0 else min(1 - (1 + s) ** (-2 / 3), 0.99)
        assert ema.decay(step) == pytest.approx(d)
        for k, v in model.state_dict().items():
            expected[k] = expected[k] * d + v * (1 - d)
    for k, v in ema.module.state_dict().items():
        assert torch.allclose(v, expected[k], atol=1e-5), k
    assert not torch.allclose(ema.module.weight, model.weight)


def test_validation_runs_on_the_average():
    from vistrain.data.pipeline import TensorBatchLoader
    from vistrain.engine.loop import evaluate, fit

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    ema = WeightEma(model, decay=0.9)
    val = TensorBatchLoader(x, y, 32, shuffle=False)
    state = fit(model, TensorBatchLoader(x, y, 8, shuffle=True), val, torch.optim.SGD(model.parameters(), lr=0.5),
                device=torch.device("cpu"), epochs=2, ema=ema)
    cpu = torch.device("cpu")
    on_ema = evaluate(ema.module, val, device=cpu)
    on_model = evaluate(model, val, device=cpu)
    assert state.history[-1]["val_loss"] == pytest.approx(on_ema["loss"])
    assert on_ema["loss"] != pytest.approx(on_model["loss"])


def test_best_pt_holds_the_average_and_eval_reads_it(cli, tmp_path):
    from vistrain.checkpoint import holds_ema, load_checkpoint, training_weights, weights

    code, out, err = cli("run", "--headless", "--data", "digits", "--epochs", "2", "--set", "train.ema_decay=0.95",
                         "--out", tmp_path, "--name", "ema")
    assert code == 0, err
    assert "best.pt (epoch 2, EMA weights)" in out or "best.pt (epoch 1, EMA weights)" in out
    best = load_checkpoint(tmp_path / "ema" / "checkpoints" / "best.pt")
    assert holds_ema(best)
    assert any(not torch.equal(a, b) for a, b in zip(weights(best).values(), training_weights(best).values()))
    code, out, err = cli("eval", tmp_path / "ema" / "checkpoints" / "best.pt", "--data", "digits", "--split", "val")
    assert code == 0, err
    assert f"top-1 {100 * best['metrics']['val_top1']:.2f}%" in out  # eval scores the weights that were validated
