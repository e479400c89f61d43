"""``vistrain run``: train with the dashboard in a terminal, or headless with plain lines.

Exit codes: 0 done (or stopped by the user with a checkpoint), 2 a user error, and
:data:`PREEMPTED_EXIT_CODE` (75) when SIGUSR1 or SIGTERM (a scheduler's preemption or time limit)
stopped the run after writing a checkpoint, so a requeue script can tell preemption from failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: stopped by a signal with a checkpoint; resume with --resume auto


def run(
    ctx: typer.Context,
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
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue from a checkpoint file, a run folder's newest "
                                         "loadable checkpoint, or 'auto' (the --name run if it exists, else start it)."),
    nproc: Optional[int] = typer.Option(None, "--nproc", min=1, help="Train with DDP on N local processes "
                                        "(starts torch.distributed.run; one per GPU on CUDA)."),
    set_: list[str] = typer.Option([], "--set", help="Override any config key: --set train.label_smoothing=0.1"),
    headless: bool = typer.Option(False, "--headless", help="No dashboard: plain progress lines."),
    log_every: int = typer.Option(50, "--log-every", min=1, help="Headless: print a line every N steps."),
) -> int:
    """Train a model. Defaults: LeNet-5 on the embedded MNIST-5k digits, supervised.

    Exits with 75 after SIGUSR1/SIGTERM stopped it with a checkpoint (see docs/cluster.md).
    """
    from vistrain.config import build_config, config_layers

    flags = {
        "model.name": model, "data.name": data, "strategy.name": strategy, "augment.spec": augment,
        "train.epochs": epochs, "data.batch_size": batch_size, "optim.lr": lr, "optim.name": optimizer,
        "sched.name": scheduler, "train.device": device, "train.seed": seed,
        "data.labels_per_class": labels_per_class, "model.pretrained": pretrained,
        "data.download": True if download else None, "output.name": name, "output.dir": out,
        "train.deterministic": True if deterministic else None,
    }
    # torch is imported by the run itself, not here: the dashboard process then starts while this one imports it
    from vistrain.engine.launchenv import env_rank, launched_by_torchrun

    layers = config_layers(config, flags, set_)  # the file, flags and --set, read once
    cfg = build_config(layers)  # a config error stops here (before N processes start)
    if nproc and nproc > 1 and not launched_by_torchrun():
        from vistrain.engine import distributed as dist

        return dist.launch(nproc, _typed_arguments(ctx, exclude={"nproc"}), PREEMPTED_EXIT_CODE)
    main_rank = env_rank() == 0
    resume_ckpt, run_dir = None, None
    if resume is not None:
        resume_ckpt, run_dir = _find_resume(resume, cfg, quiet=not main_rank)
    if resume_ckpt is not None:  # the saved config, then --config, the flags typed and --set
        from vistrain.checkpoint import saved_config

        cfg = build_config(layers, base=saved_config(resume_ckpt, "the resume checkpoint").model_dump(mode="json"))
    use_dashboard = not headless and sys.stdout.isatty() and main_rank
    stop_signal: list[int] = []  # the signals that asked for a stop, in order
    ok = False
    from vistrain.engine.control import TrainControl

    control = TrainControl()
    try:
        with _stop_on_signals(control, stop_signal):
            if use_dashboard:
                from vistrain.tui import run_with_dashboard

                result = run_with_dashboard(cfg, control=control, resume=resume_ckpt, run_dir=run_dir)
            else:
                from vistrain.listeners.console import ConsoleReporter
                from vistrain.runner import execute

                listeners = [ConsoleReporter(every=log_every)] if main_rank else []
                if main_rank and os.environ.get("SLURM_JOB_ID"):
                    typer.echo(f"SLURM job {os.environ['SLURM_JOB_ID']}: SIGUSR1 or SIGTERM saves a checkpoint and "
                               f"exits with code {PREEMPTED_EXIT_CODE}")
                result = execute(cfg, listeners=listeners, control=control, resume=resume_ckpt, run_dir=run_dir)
        ok = True
    finally:
        if "vistrain.engine.distributed" in sys.modules:  # else no process group was ever joined
            from vistrain.engine import distributed as dist

            dist.teardown(barrier=ok)
    if result is None:
        return 0
    if main_rank:
        typer.echo(f"run folder: {result.run_dir}")
    if stop_signal and result.stopped_early:
        if main_rank:
            import signal

            typer.echo(f"stopped by {signal.Signals(stop_signal[0]).name}: checkpoint saved; resume with: "
                       f"vistrain run --headless --resume {result.run_dir}"
                       f"{' (or requeue the job with --resume auto)' if os.environ.get('SLURM_JOB_ID') else ''}")
        return PREEMPTED_EXIT_CODE
    return 0


class _stop_on_signals:
    """SIGUSR1 (SLURM's warning signal) and SIGTERM (preemption, time limit): finish the step, save, stop."""

    def __init__(self, control, received: list[int]):
        self.control, self.received = control, received
        self.previous: dict = {}

    def __enter__(self):
        import signal

        def handler(signum, frame):
            # only stores flags: no lock, no I/O (the main thread may be inside a lock when this runs)
            self.received.append(signum)
            self.control.request_stop()

        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self.previous[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *exc):
        import signal

        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def _find_resume(resume: str, cfg, quiet: bool):
    """(checkpoint or None, run folder) for ``--resume auto`` (*cfg* names the run), a run folder, or a checkpoint file."""
    from vistrain import runfolder
    from vistrain.checkpoint import find_resume_checkpoint, load_checkpoint, position
    from vistrain.errors import CheckpointError, ConfigError

    def warn(skipped):
        if not quiet:
            for path, why in skipped:
                print(f"warning: skipped {path}: {why}", file=sys.stderr)

    if resume == "auto":
        if not cfg.output.name:
            raise ConfigError("--resume auto needs the run's name to find it",
                              hint="pass --name NAME (the same on every requeue), e.g. --name $SLURM_JOB_NAME")
        folder = runfolder.named(cfg.output.dir, cfg.output.name)
        if not folder.checkpoints.is_dir():
            return None, folder.path
        ckpt, path, skipped = find_resume_checkpoint(folder.checkpoints)
        warn(skipped)
        if ckpt is None:
            if not quiet:
                print(f"warning: no loadable checkpoint in {folder.path}; starting the run from the beginning",
                      file=sys.stderr)
            return None, folder.path
    elif Path(resume).is_dir():
        folder = runfolder.RunFolder(Path(resume))
        ckpt, path, skipped = find_resume_checkpoint(folder.checkpoints)
        warn(skipped)
        if ckpt is None:
            raise CheckpointError(f"no loadable checkpoint in {str(folder.path)!r}",
                                  hint="pass a run folder (runs/NAME) that has checkpoints, or a .pt file")
    else:
        path = Path(resume)
        ckpt = load_checkpoint(path)
        folder = runfolder.RunFolder(path.resolve().parent.parent)
    if not quiet:
        # progress, not a warning: stdout, so an error that follows stays the only stderr line
        where = position(ckpt)
        print(f"resuming from {path} (epoch {where['epoch']}, step {where['global_step']})")
    return ckpt, folder.path.resolve()


def _typed_arguments(ctx: typer.Context, exclude: set[str]) -> list[str]:
    """The ``run`` arguments the user typed, as a command line (to hand to the DDP workers)."""
    argv = ["run"]
    for param in ctx.command.params:
        if param.name in exclude or param.param_type_name != "option":
            continue
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name == "DEFAULT":
            continue
        value = ctx.params[param.name]
        flag = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        if param.is_flag:
            if value:
                argv.append(flag)
        elif param.multiple:
            for item in value:
                argv += [flag, str(item)]
        elif value is not None:
            argv += [flag, str(value)]
    return argv
