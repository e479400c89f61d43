"""train.accum_steps: k loader batches per optimizer step, the same update as one batch k times larger."""

from __future__ import annotations

import random

import pytest
import torch

from vistrain.data.pipeline import TensorBatchLoader
from vistrain.engine.loop import TrainState, train_one_epoch

CPU = torch.device("cpu")


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))


def one_epoch(batch: int, accum: int, x, y):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    events = []
    state = TrainState()
    train_one_epoch(model, TensorBatchLoader(x, y, batch, shuffle=False), opt, device=CPU, epoch=1, epochs=1,
                    state=state, scheduler=sched, accum_steps=accum, log_interval=1, emit=events.append)
    return model, state, sched, [e for e in events if e.kind == "batch_end"]


def test_two_batches_of_64_accumulated_make_the_update_of_one_batch_of_128():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(640, 4, 4, generator=g), torch.randint(0, 3, (640,), generator=g)
    big, big_state, big_sched, big_events = one_epoch(128, 1, x, y)
    acc, acc_state, acc_sched, acc_events = one_epoch(64, 2, x, y)
    for a, b in zip(big.parameters(), acc.parameters()):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    # the scheduler stepped once per optimizer step, and the progress counts optimizer steps
    assert big_state.global_step == acc_state.global_step == 5 and acc_sched.last_epoch == 5
    assert [(e.step, e.steps_per_epoch) for e in acc_events] == [(i, 5) for i in range(1, 6)]
    assert [e.step for e in acc_events] == [e.step for e in big_events]


def test_a_last_short_group_is_its_own_mean():
    """7 batches of 32 in groups of 3: 3 + 3 + 1; the single last batch is not divided by 3."""
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(224, 4, 4, generator=g), torch.randint(0, 3, (224,), generator=g)
    acc, state, _, _ = one_epoch(32, 3, x, y)
    assert state.global_step == 3
    reference = mlp()
    opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    for lo, hi in ((0, 96), (96, 192), (192, 224)):  # each group as one batch
        opt.zero_grad()
        torch.nn.functional.cross_entropy(reference(x[lo:hi]), y[lo:hi]).backward()
        opt.step()
        sched.step()
    for a, b in zip(reference.parameters(), acc.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("nproc", [1, 2])
def test_an_accumulating_run_killed_at_a_random_step_resumes_bitwise(nproc, tmp_path, cli):
    """Stops and step checkpoints fall between groups only, so a resume restarts a whole group; under DDP the
    gradients are all-reduced once per group (no_sync for the others)."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_resume import ARGS, _weights, assert_bitwise_equal, kill_job, run_until, start

    args = ARGS + ["--nproc", str(nproc), "--batch-size", "32", "--set", "train.accum_steps=3",
                   "--set", "checkpoint.every_steps=2", "--out", tmp_path, "--name"]
    code, out, err = cli(*args, "ref")
    assert code == 0, err
    per_epoch = 14 if nproc == 1 else 7  # 40 batches of 32 (20 per rank) in groups of 3
    if nproc == 1:  # (the workers of --nproc 2 print to the launcher's own stdout, not captured here)
        assert f"2 epochs x {per_epoch} steps" in out, out
    steps = 2 * per_epoch
    target = random.Random().randrange(3, steps - 1)
    proc = start(args + ["job", "--resume", "auto"])
    run_until(proc, target)
    kill_job(proc)
    code, out, err = cli(*args, "job", "--resume", "auto")
    assert code == 0, err
    if nproc == 1:
        assert "resumed inside epoch" in out or "resumed from epoch" in out, out
    assert_bitwise_equal(_weights(tmp_path / "ref"), _weights(tmp_path / "job"), f"{nproc} process(es), kill at {target}")
