"""DDP on localhost with gloo: torchrun, ``vistrain run --nproc 2``, and two simulated nodes.

Two ranks with batch 32 each see, at every step, exactly the 64 images one process sees that takes two
accumulated batches of 32 per step (``train.accum_steps=2``), and DDP averages their gradients: with plain
SGD and a training split that divides into whole batches (1,024 images: no padded last batch), the weights
and every validation figure match that single-process run up to float rounding. (The reference is not one
batch of 64: oneDNN may pick another convolution kernel for another batch size, whose rounding differs, and
on an AVX2-only CPU that alone moved the weights by 1e-3 in two epochs, the DDP run included.) (Adam-family
optimizers turn rounding differences in near-zero gradients into whole steps of the learning
rate, and a padded last batch counts one image twice; neither is a DDP error, so neither is used here.)
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

COMMON = ["--headless", "--data", "digits", "--epochs", "2", "--augment", "none", "--device", "cpu",
          "--optimizer", "sgd", "--lr", "0.05", "--set", "data.val_fraction=0.23",  # 1,024 training images
          "--set", "train.threads=1", "--set", "output.system_interval_s=0.3"]
# Seen once on a fresh machine: the first gloo start aborts while the ranks connect.
TRANSIENT = re.compile(r"gloo|connect|rendezvous|SIGABRT|Signals\.SIGABRT|timed out|address already in use", re.I)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_commands(cmds: list[list[str]], timeout: float = 300) -> tuple[bool, str]:
    """Start the commands together (the nodes of one job); (all exited 0, their output)."""
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}) for cmd in cmds]
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    return all(p.returncode == 0 for p in procs), f"codes {[p.returncode for p in procs]}\n" + "\n".join(outs)


def launch(attempt, out_dir: Path) -> str:
    """Run *attempt()* -> (ok, output); retry once, with a warning giving the reason, when the first
    start failed the way gloo's transient start-up failure does. Never skips."""
    ok, text = attempt()
    if not ok and TRANSIENT.search(text):
        warnings.warn(f"DDP launch failed at start-up and was retried once: {text.strip().splitlines()[-3:]}")
        shutil.rmtree(out_dir, ignore_errors=True)
        ok, text = attempt()
    assert ok, text[-3000:]
    return text


def assert_same_training(run: Path, reference: Path) -> None:
    """The DDP run ends with the single-process run's weights (up to float rounding) and validation figures."""
    import torch

    got = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    ref = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)
    assert got["global_step"] == ref["global_step"]
    for key, value in ref["state_dict"].items():
        diff = (got["state_dict"][key] - value).abs().max().item()
        assert diff < 1e-5, f"{key} differs by {diff} from the single-process run"

    def rows(folder):
        return [{k: float(v) for k, v in r.items() if k.startswith("val_")}
                for r in csv.DictReader((folder / "metrics.csv").open())]

    got_rows, ref_rows = rows(run), rows(reference)
    assert len(got_rows) == len(ref_rows)
    for got_row, ref_row in zip(got_rows, ref_rows):  # written with 6 decimals: rounding can move the last one
        assert got_row == pytest.approx(ref_row, abs=2e-6)


def check_rank0_alone_wrote(out_dir: Path, world: int) -> Path:
    """One run folder, one run in its events, one line per step, and every rank's system sample."""
    runs = [p for p in out_dir.iterdir()]
    assert [p.name for p in runs] == ["ddp"], runs  # a second writer would have made ddp-2
    run = runs[0]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "events.jsonl", "metrics.csv"]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert sum(e["kind"] == "run_started" for e in events) == 1
    steps = [e["global_step"] for e in events if e["kind"] == "batch_end"]
    assert steps == sorted(set(steps))
    assert len(list(csv.DictReader((run / "metrics.csv").open()))) == 2
    samples = [e for e in events if e["kind"] == "system_sample"]
    assert any(sorted(r["rank"] for r in s["ranks"]) == list(range(world)) for s in samples), samples[-1:]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    return run


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    """The reference: one process, two batches of 32 per step (each rank's batch size; see the module)."""
    from vistrain.cli import main

    out = tmp_path_factory.mktemp("single")
    assert main(["run", *COMMON, "--batch-size", "32", "--set", "train.accum_steps=2", "--out", str(out),
                 "--name", "one"]) == 0
    return out / "one"


def test_torchrun_two_processes(tmp_path, single_process):
    out = tmp_path / "runs"
    text = launch(lambda: run_commands([[
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
        f"--rdzv-endpoint=127.0.0.1:{free_port()}",
        "-m", "vistrain", "run", *COMMON, "--batch-size", "32", "--out", str(out), "--name", "ddp"]]), out)
    assert "DDP: 2 processes (gloo)" in text
    run = check_rank0_alone_wrote(out, 2)
    assert_same_training(run, single_process)


def test_vistrain_run_nproc_2(tmp_path, single_process, cli):
    out = tmp_path / "runs"

    def in_process():  # the launcher runs in this process; the two workers are its children
        code, text, err = cli("run", "--nproc", "2", *COMMON, "--batch-size", "32", "--out", out, "--name", "ddp")
        return code == 0, f"code {code}\n{text}{err}"

    launch(in_process, out)
    run = check_rank0_alone_wrote(out, 2)
    assert_same_training(run, single_process)


def test_two_nodes_simulated_on_localhost(tmp_path, single_process):
    out = tmp_path / "runs"

    def two_nodes():
        port = free_port()
        return run_commands([[sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                 "--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port),
                 "-m", "vistrain", "run", *COMMON, "--batch-size", "32", "--out", str(out), "--name", "ddp"]
                for node in (0, 1)])

    launch(two_nodes, out)
    run = check_rank0_alone_wrote(out, 2)
    assert_same_training(run, single_process)


def _rank_main(rank: int, world: int, store_path: str, out_dir: str) -> None:
    """One gloo rank training a tiny model: rank 1's loss turns NaN at step 3; rank 0 asks to stop at step 2
    of a second pass. Records where each rank stopped."""
    import torch
    import torch.distributed as tdist

    from vistrain.data.pipeline import TensorBatchLoader
    from vistrain.engine.control import StopRequested, TrainControl
    from vistrain.engine.loop import TrainState, train_one_epoch
    from vistrain.errors import NonFiniteLossError

    torch.set_num_threads(1)
    results: dict = {}
    tdist.init_process_group("gloo", store=tdist.FileStore(store_path, world), rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 3))
        x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
        loader = TensorBatchLoader(x, y, 8, True, rank=rank, world_size=world)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        calls = {"n": 0}

        def loss_fn(logits, target):
            calls["n"] += 1
            loss = torch.nn.functional.cross_entropy(logits, target)
            return loss * float("nan") if rank == 1 and calls["n"] == 3 else loss

        state = TrainState()
        try:
            train_one_epoch(model, loader, opt, device=torch.device("cpu"), epoch=1, epochs=1, state=state,
                            loss_fn=loss_fn, log_interval=1)
            results[f"nan{rank}"] = "finished"
        except NonFiniteLossError:
            results[f"nan{rank}"] = state.global_step
        control = TrainControl()
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 3))  # the NaN spoilt the first
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        state = TrainState(global_step=4)

        def stop_on_rank0(logits, target):
            if rank == 0 and state.global_step == 5:
                control.request_stop()
            return torch.nn.functional.cross_entropy(logits, target)

        try:
            train_one_epoch(model, loader, opt, device=torch.device("cpu"), epoch=2, epochs=2,
                            state=state, loss_fn=stop_on_rank0, log_interval=100, control=control)
            results[f"stop{rank}"] = "finished"
        except StopRequested:
            results[f"stop{rank}"] = state.global_step
    finally:
        # the DDP wrappers must go while the group is alive: teardown collects them before leaving it (left to
        # interpreter shutdown, gloo aborted the process in about 1 run in 4)
        from vistrain.engine.distributed import teardown

        model = opt = loader = None
        teardown(barrier=False)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(results))


def test_nan_on_one_rank_and_a_stop_on_rank_0_end_every_rank_at_the_same_step(tmp_path):
    import torch.multiprocessing as mp

    mp.start_processes(_rank_main, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, start_method="spawn")
    got = {**json.loads((tmp_path / "rank0.json").read_text()), **json.loads((tmp_path / "rank1.json").read_text())}
    assert got["nan0"] == got["nan1"] == 3  # the NaN of rank 1 reached rank 0 through the all-reduced loss
    assert got["stop0"] == got["stop1"] == 6  # rank 0's stop request, agreed on after the step, stops rank 1 too


def test_balanced_sampling_class_weights_and_the_average_of_the_last_epochs_under_ddp(tmp_path, cli):
    """Two ranks of batch 32 draw the balanced order one process of 64 draws, weigh the loss the same, and
    rank 0 averages the last epochs: the weights, val figures and averaged.pt match the single process's."""
    import torch

    extra = ["--set", "data.sampler=balanced", "--set", "train.class_weights=auto",
             "--set", "checkpoint.average_last=2", "--set", "checkpoint.best=last"]
    assert cli("run", *COMMON, *extra, "--batch-size", "64", "--out", tmp_path / "one", "--name", "one")[0] == 0
    reference = tmp_path / "one" / "one"
    out = tmp_path / "runs"

    def in_process():
        code, text, err = cli("run", "--nproc", "2", *COMMON, *extra, "--batch-size", "32", "--out", out, "--name", "ddp")
        return code == 0, f"code {code}\n{text}{err}"

    launch(in_process, out)
    run = out / "ddp"
    assert_same_training(run, reference)
    got = torch.load(run / "checkpoints" / "averaged.pt", weights_only=True)
    ref = torch.load(reference / "checkpoints" / "averaged.pt", weights_only=True)
    assert got["averaged_from"] == ["epoch-0001.pt", "epoch-0002.pt"]
    for key, value in ref["state_dict"].items():
        assert (got["state_dict"][key] - value).abs().max().item() < 1e-5, key
    assert abs(got["metrics"]["val_top1"] - ref["metrics"]["val_top1"]) < 1e-12
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["weights"] == "average"  # checkpoint.best=last: the average is the stage's final point
