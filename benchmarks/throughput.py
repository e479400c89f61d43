"""Training and inference samples/s of every built-in model: vistrain's engine vs a hand-written loop.

For each model at its default input (and ``timm:resnet18``), one process builds two copies
with the same seed, optimizer (the default AdamW) and in-memory batches, then alternates:
a round of ``train_one_epoch`` (events going through the dispatcher to a JSONL writer, a
TrainControl checked every step, as ``vistrain run`` drives it) against the same number of
steps of the loop a PyTorch user writes by hand, then ``evaluate`` against a ``no_grad``
forward loop. Who goes first alternates by round; the first round warms up and is dropped.
The reported ratio is the median of the per-round ratios vistrain/raw in samples/s (≥ 1 means
vistrain is at least as fast). FLOPs per sample come from ``vistrain models info``'s counter
(forward; a training step is counted as 3× forward), and the achieved GFLOP/s is set against
the machine's own float32 matmul GFLOP/s.

``--process`` adds the whole-process comparison: ``vistrain run --headless`` against
``benchmarks/raw_run.py`` (the same model, data, splits, epochs, evaluation, checkpoints and
final test evaluation, written by hand), each started as a fresh interpreter and timed from
outside, alternating.

    python benchmarks/throughput.py                        # every model, a few minutes on 2 cores
    python benchmarks/throughput.py --quick                # LeNet-5 and the MLP only: a smoke test
    python benchmarks/throughput.py --models vgg16,timm:resnet18 --device cuda --amp --channels-last --compile
    python benchmarks/throughput.py --process --process-epochs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

QUICK_MODELS = ["lenet5", "mlp"]
# samples per step aimed at: about 2 GFLOP of training work, within [1, 128]
TARGET_STEP_FLOP = 2e9


def builtin_models() -> list[str]:
    """Every registered built-in model except the non-parametric k-NN, plus timm:resnet18."""
    from vistrain.plugins import registry

    names = [e.name for e in registry("model") if e.plugin.startswith("vistrain.") and e.name not in ("knn", "timm")]
    return names + ["timm:resnet18"]


def matmul_gflops(device: torch.device, dtype=torch.float32, n: int = 1024, repeats: int = 5) -> float:
    """Best-of-*repeats* GFLOP/s of an n×n matmul: the machine's practical peak for dense math."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops(model: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """Forward FLOPs for one sample of *shape* (C, H, W), counted as ``vistrain models info`` counts them."""
    from vistrain.models.inspect import summarize

    return summarize(model, shape).total_flops


def build(name: str, seed: int, device: torch.device, channels_last: bool):
    """(model, input spec) as vistrain builds them, on *device*; channels-last as the hand-written loop does it
    (vistrain's side goes through its own ``train.channels_last`` code, :func:`vistrain.engine.device.prepare_model`)."""
    from vistrain.config import ModelConfig
    from vistrain.models.factory import create_model

    torch.manual_seed(seed)
    model, _, spec = create_model(ModelConfig(name=name), 10, None, 3)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, spec


def calibrate_steps(model: torch.nn.Module, sample: tuple[int, ...], batch: int, device: torch.device,
                    seconds: float) -> int:
    """Steps per timed round so that a round lasts about *seconds* (2 at least, 200 at most): a
    round of a few milliseconds measures the clock and the per-call set-up more than the steps."""
    x = torch.randn(batch, *sample, device=device)
    y = torch.zeros(batch, dtype=torch.long, device=device)
    best = float("inf")
    for _ in range(3):  # the first warms allocators and thread pools
        _sync(device)
        t0 = time.perf_counter()
        F.cross_entropy(model(x), y).backward()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    return int(min(200, max(2, round(seconds / best))))


def bench_model(name: str, args, device: torch.device, emit, peak: float) -> dict:
    """Paired train and inference samples/s of one model, engine vs raw."""
    from vistrain.config import OptimConfig
    from vistrain.data.pipeline import TensorBatchLoader
    from vistrain.engine.control import TrainControl
    from vistrain.engine.loop import TrainState, evaluate, train_one_epoch
    from vistrain.plugins import registry

    from vistrain.engine.device import prepare_model

    model_v, spec = build(name, 0, device, False)
    model_r, _ = build(name, 0, device, args.channels_last)
    shape = (1, spec.channels, spec.size, spec.size)
    flops = forward_flops(model_v, shape[1:])
    batch = args.batch or int(min(128, max(1, round(TARGET_STEP_FLOP / max(1, 3 * flops)))))
    steps = args.steps or calibrate_steps(model_r, shape[1:], batch, device, args.round_seconds)
    rounds = args.rounds
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch * steps, *shape[1:], generator=g)
    y = torch.randint(0, 10, (batch * steps,), generator=g)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x, y = x.to(device), y.to(device)
    # the engine moves each batch to the device itself; shuffling off so both sides see the same batches
    loader = TensorBatchLoader(x, y, batch, shuffle=False)
    make_opt = registry("optimizer").entry("adamw").load()
    opt_v, opt_r = make_opt(model_v.parameters(), OptimConfig()), make_opt(model_r.parameters(), OptimConfig())
    amp = torch.bfloat16 if args.amp else None
    state, control = TrainState(), TrainControl()
    compiled_r = torch.compile(model_r) if args.compile else model_r
    # vistrain's side: what train.channels_last and train.compile do in a run
    compiled_v = prepare_model(model_v, channels_last=args.channels_last, compile=args.compile)

    def engine_train() -> float:
        _sync(device)
        t0 = time.perf_counter()
        train_one_epoch(compiled_v, loader, opt_v, device=device, epoch=1, epochs=1, state=state, emit=emit,
                        control=control, amp_dtype=amp, log_interval=10, channels_last=args.channels_last)
        _sync(device)
        return time.perf_counter() - t0

    def raw_train() -> float:
        compiled_r.train()
        _sync(device)
        t0 = time.perf_counter()
        for i in range(steps):
            xb, yb = x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = F.cross_entropy(compiled_r(xb), yb)
            opt_r.zero_grad(set_to_none=True)
            loss.backward()
            opt_r.step()
        loss.item()
        _sync(device)
        return time.perf_counter() - t0

    def engine_infer() -> float:
        _sync(device)
        t0 = time.perf_counter()
        evaluate(compiled_v, loader, device=device, amp_dtype=amp, channels_last=args.channels_last)
        _sync(device)
        return time.perf_counter() - t0

    @torch.no_grad()
    def raw_infer() -> float:
        compiled_r.eval()
        _sync(device)
        t0 = time.perf_counter()
        for i in range(steps):
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                out = compiled_r(x[i * batch:(i + 1) * batch])
            out.float().argmax(1)
        _sync(device)
        return time.perf_counter() - t0

    pairs = {"train": ([], []), "infer": ([], [])}
    for rnd in range(rounds + 1):
        for kind, ours, raw in (("train", engine_train, raw_train), ("infer", engine_infer, raw_infer)):
            if rnd % 2:
                t_v, t_r = ours(), raw()
            else:
                t_r, t_v = raw(), ours()
            if rnd > 0:  # round 0 warms up allocators, thread pools and compilation
                pairs[kind][0].append(t_v)
                pairs[kind][1].append(t_r)
    n = batch * steps
    row = {"model": name, "input": f"{spec.channels}x{spec.size}x{spec.size}", "batch": batch, "steps": steps,
           "rounds": rounds, "gflop": flops / 1e9}
    for kind, mult in (("train", 3), ("infer", 1)):
        ours, raw = pairs[kind]
        row[f"{kind}_v"] = n / statistics.median(ours)
        row[f"{kind}_r"] = n / statistics.median(raw)
        row[f"{kind}_ratio"] = statistics.median(r / o for o, r in zip(ours, raw))  # (n/o)/(n/r)
        row[f"{kind}_gflops"] = row[f"{kind}_v"] * flops * mult / 1e9
    row["peak_share"] = row["train_gflops"] / peak
    return row


def process_comparison(args) -> list[tuple[float, float]]:
    """Wall seconds of `vistrain run --headless` and of benchmarks/raw_run.py, alternating, fresh processes."""
    here = Path(__file__).resolve().parent
    common = ["--epochs", str(args.process_epochs), "--seed", "0"]
    times = []
    with tempfile.TemporaryDirectory() as out:
        for rnd in range(args.process_rounds):
            cmds = {
                "vistrain": [sys.executable, "-m", "vistrain", "run", "--headless", "--epochs", str(args.process_epochs),
                             "--augment", "none", "--out", out, "--name", f"v{rnd}"],
                "raw": [sys.executable, str(here / "raw_run.py"), *common, "--out", str(Path(out) / f"r{rnd}")],
            }
            order = ["vistrain", "raw"] if rnd % 2 == 0 else ["raw", "vistrain"]
            got = {}
            for which in order:
                t0 = time.perf_counter()
                subprocess.run(cmds[which], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "VISTRAIN_PLUGINS": "none"})
                got[which] = time.perf_counter() - t0
            times.append((got["vistrain"], got["raw"]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="comma list (default: every built-in model and timm:resnet18)")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_MODELS)}, 2 timed rounds of 3 steps")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per model (after one warm-up)")
    parser.add_argument("--batch", type=int, default=None, help="samples per step (default: by the model's FLOPs)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per round (default: as many as fill --round-seconds, 2 to 200)")
    parser.add_argument("--round-seconds", type=float, default=0.5, help="target length of one side's timed round")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for both sides (default: torch's)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on both sides")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--process", action="store_true", help="also time whole `vistrain run` vs a hand-written script")
    parser.add_argument("--process-epochs", type=int, default=3)
    parser.add_argument("--process-rounds", type=int, default=2)
    parser.add_argument("--only-process", action="store_true", help="skip the per-model table")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps = min(args.rounds, 2), args.steps or 3

    from vistrain import plugins
    from vistrain.dispatch import EventDispatcher
    from vistrain.listeners.jsonl import JsonlWriter

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    peak_dtype = torch.bfloat16 if args.amp else torch.float32
    peak = matmul_gflops(device, peak_dtype)
    flags = ", ".join(f for f, on in (("bf16 autocast", args.amp), ("channels_last", args.channels_last),
                                      ("torch.compile", args.compile)) if on) or "fp32 eager"
    print(f"torch {torch.__version__} on {device} ({torch.get_num_threads()} threads), {flags}; "
          f"{str(peak_dtype).replace('torch.', '')} matmul {peak:.1f} GFLOP/s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    if not args.only_process:
        names = QUICK_MODELS if args.quick else (args.models.split(",") if args.models else builtin_models())
        pm = plugins.get_plugin_manager()
        emit = EventDispatcher(pm)
        out = Path(tempfile.mkdtemp())
        writer = JsonlWriter(out / "events.jsonl")
        pm.register(writer, name="bench.jsonl")
        emit.trust("bench.jsonl")
        print(f"{'model':16s} {'input':>9s} {'GFLOP':>7s} {'batch':>5s} | {'train/s ours':>12s} {'raw':>8s} "
              f"{'ratio':>6s} {'GFLOP/s':>8s} {'of peak':>7s} | {'infer/s ours':>12s} {'raw':>8s} {'ratio':>6s}")
        rows = []
        try:
            for name in names:
                row = bench_model(name, args, device, emit, peak)
                rows.append(row)
                print(f"{name:16s} {row['input']:>9s} {row['gflop']:7.3f} {row['batch']:5d} | {row['train_v']:12.4g} "
                      f"{row['train_r']:8.4g} {row['train_ratio']:6.3f} {row['train_gflops']:8.2f} "
                      f"{100 * row['peak_share']:6.1f}% | {row['infer_v']:12.4g} {row['infer_r']:8.4g} "
                      f"{row['infer_ratio']:6.3f}", flush=True)
        finally:
            pm.unregister(name="bench.jsonl")
            writer.close()
        short = [r["model"] for r in rows if r["train_ratio"] < 0.97]
        print(f"ratio = median over {args.rounds} rounds (each side about {args.round_seconds:g}s or 2 steps per round) "
              f"of (vistrain samples/s) / "
              f"(raw samples/s), paired per round; train GFLOP/s counts 3x forward FLOPs")
        print("training ratio >= 0.97 for every model" if not short else f"training ratio below 0.97: {', '.join(short)}")
    if args.process or args.only_process:
        times = process_comparison(args)
        ratio = statistics.median(v / r for v, r in times)
        print(f"whole process, {args.process_epochs} epochs of LeNet-5 on mnist5k (no augmentation), "
              f"fresh interpreters alternating: vistrain run " + ", ".join(f"{v:.1f}s" for v, _ in times)
              + "; raw script " + ", ".join(f"{r:.1f}s" for _, r in times) + f"; median ratio vistrain/raw {ratio:.3f}")


if __name__ == "__main__":
    main()
