"""``vistrain run``: train with the dashboard in a terminal, or headless with plain lines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def run(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file (then flags, then --set)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name, e.g. lenet5, vgg11, timm:resnet18."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Dataset, e.g. mnist5k, digits, shapes, imagefolder:DIR."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Training strategy (default supervised)."),
    augment: Optional[str] = typer.Option(None, "--augment", "-a", help="Augmentation spec, 'none', or a policy YAML."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Training epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Training batch size."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="sgd, adam, adamw, or a plugin's."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="onecycle, cosine, step, constant, or a plugin's."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    labels_per_class: Optional[int] = typer.Option(None, "--labels-per-class", help="Keep N labels per class; the rest is unlabelled."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Weights file (.safetensors/.pth) for the model."),
    download: bool = typer.Option(False, "--download", help="Allow downloading the dataset (never done otherwise)."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Run folder name (default <model>-<data>-<time>)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Parent folder of run folders (default runs)."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Deterministic algorithms (slower)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue from a checkpoint (runs/NAME/checkpoints/last.pt)."),
    set_: list[str] = typer.Option([], "--set", help="Override any config key: --set train.label_smoothing=0.1"),
    headless: bool = typer.Option(False, "--headless", help="No dashboard: plain progress lines."),
    log_every: int = typer.Option(50, "--log-every", help="Headless: print a line every N steps."),
) -> None:
    """Train a model. Defaults: LeNet-5 on the embedded MNIST-5k digits, supervised."""
    from vistrain.config import Config, deep_merge, resolve_config

    flags = {
        "model.name": model, "data.name": data, "strategy.name": strategy, "augment.spec": augment,
        "train.epochs": epochs, "data.batch_size": batch_size, "optim.lr": lr, "optim.name": optimizer,
        "sched.name": scheduler, "train.device": device, "train.seed": seed,
        "data.labels_per_class": labels_per_class, "model.pretrained": pretrained,
        "data.download": True if download else None, "output.name": name, "output.dir": out,
        "train.deterministic": True if deterministic else None,
    }
    resume_ckpt, run_dir = None, None
    if resume is not None:
        from vistrain.engine.checkpoint import load_checkpoint

        resume_ckpt = load_checkpoint(resume)
        saved = Config.model_validate(resume_ckpt.get("config") or {}).model_dump(mode="json")
        cfg = resolve_config(config, flags, set_)
        explicit = resolve_config(None, flags, set_).model_dump(mode="json", exclude_defaults=True)
        cfg = Config.model_validate(deep_merge(saved, explicit))
        run_dir = resume.resolve().parent.parent
    else:
        cfg = resolve_config(config, flags, set_)
    use_dashboard = not headless and sys.stdout.isatty()
    if use_dashboard:
        from vistrain.tui import run_with_dashboard

        result = run_with_dashboard(cfg, resume=resume_ckpt, run_dir=run_dir)
    else:
        import signal

        from vistrain.engine.control import TrainControl
        from vistrain.reporters.console import ConsoleReporter
        from vistrain.runner import execute

        reporter = ConsoleReporter(every=log_every)
        control = TrainControl()
        # SLURM and other schedulers send SIGTERM before killing a job: save a checkpoint and stop.
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: control.request_stop())
        try:
            result = execute(cfg, listeners=[reporter], control=control, resume=resume_ckpt, run_dir=run_dir)
        finally:
            signal.signal(signal.SIGTERM, previous)
    if result is not None:
        typer.echo(f"run folder: {result.run_dir}")
