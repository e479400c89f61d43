"""``vistrain tune``: search hyper-parameters and augmentation with Optuna; ``vistrain tune report STUDY``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from vistrain.cli.run import PREEMPTED_EXIT_CODE

app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


@app.callback()
def tune(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config the trials start from."),
    space: Optional[Path] = typer.Option(None, "--space", "-s", help="YAML file: config keys and their distributions."),
    trials: int = typer.Option(20, "--trials", "-n", help="Trials that complete or are pruned, over all workers."),
    study: str = typer.Option("tune", "--study", help="Study name; its folder is OUT/NAME."),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Folder the study's folder goes in."),
    storage: Optional[str] = typer.Option(None, "--storage", help="sqlite:///PATH, journal:PATH or a database URL "
                                          "(default: a SQLite file in the study's folder)."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, random or cmaes."),
    pruner: str = typer.Option("median", "--pruner", help="median, hyperband or none (fed each epoch's val top-1)."),
    prune_after: int = typer.Option(0, "--prune-after", min=0,
                                    help="No pruning before this epoch (e.g. the end of the lr warm-up)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Trial processes on this machine."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler."),
    set_: list[str] = typer.Option([], "--set", help="Override a key of the trials' config, e.g. --set train.epochs=10."),
    heartbeat: float = typer.Option(10.0, "--heartbeat", hidden=True, help="Seconds between a trial's heartbeats."),
    grace: float = typer.Option(120.0, "--grace", hidden=True,
                                help="Seconds without a heartbeat after which a trial's worker is taken for dead."),
    log_every: int = typer.Option(0, "--log-every", help="Print the trials' progress lines every N steps (0: off)."),
) -> None:
    """Search config keys (learning rate, weight decay, label smoothing, RandAugment's N and M, models...) with
    Optuna: TPE, random or CMA-ES sampling, median or Hyperband pruning, any number of workers sharing a study."""
    if ctx.invoked_subcommand is not None:
        return
    if space is None:
        from vistrain.errors import ConfigError

        raise ConfigError("vistrain tune needs a search space", hint="pass --space SPACE.yaml (see docs/tune.md)")
    settings = _settings(config, space, trials, study, out, storage, sampler, pruner, seed, set_, heartbeat, grace,
                         prune_after)
    raise typer.Exit(_tune(settings, workers, set_, log_every))


def _settings(config, space, trials, study, out, storage, sampler, pruner, seed, set_, heartbeat, grace, prune_after):
    """The study's settings from the command line (checked by TuneSettings), and its study.yaml written or checked."""
    from vistrain.config import resolve_config
    from vistrain.tune.space import Space
    from vistrain.tune.summary import check_study_file
    from vistrain.tune.worker import TuneSettings

    settings = TuneSettings(name=study, folder=(out.expanduser() / study).absolute(),  # events name trial folders
                            storage=storage or "", space=Space.from_file(space),
                            config=resolve_config(config, None, set_).model_dump(mode="json"), trials=trials,
                            sampler=sampler, pruner=pruner, seed=seed, heartbeat=heartbeat, grace=grace,
                            prune_after=prune_after)
    check_study_file(settings)
    return settings


def _tune(settings, workers: int, set_: list[str], log_every: int) -> int:
    from vistrain.cli.run import _stop_on_signals
    from vistrain.engine.control import TrainControl
    from vistrain.tune.study import open_study, storage_url

    # the storage opens here, so a bad URL is one line before any worker starts
    open_study(settings.name, storage_url(settings.storage, settings.folder), None, None)
    if workers > 1 and not os.environ.get("VISTRAIN_TUNE_WORKER"):
        code = _launch_workers(workers, set_)
        _print_summary(settings)
        return code
    from vistrain.listeners.console import ConsoleReporter
    from vistrain.tune.worker import Worker

    control = TrainControl()
    received: list[int] = []
    listeners = [ConsoleReporter(every=log_every, plain=True)] if log_every else []
    typer.echo(f"study {settings.name} in {settings.folder}: {settings.trials} trials, sampler {settings.sampler}, "
               f"pruner {settings.pruner}, storage {storage_url(settings.storage, settings.folder)}")
    worker = Worker(settings, control=control, listeners=listeners, log=lambda m: typer.echo(m))
    with _stop_on_signals(control, received):
        worker.run()
    if received or worker.preempted:
        import signal

        name = signal.Signals(received[0]).name if received else "a stop"
        if worker.preempted:
            typer.echo(f"stopped by {name}: the running trial saved a checkpoint and will resume when the study "
                       f"continues (run the same command again)")
        else:
            typer.echo(f"stopped by {name} between trials; run the same command again to continue the study")
        return PREEMPTED_EXIT_CODE
    if not os.environ.get("VISTRAIN_TUNE_WORKER"):
        _print_summary(settings)
    return 0


def _launch_workers(workers: int, set_: list[str]) -> int:
    """Run *workers* copies of this command as child processes, each with its share of the CPU threads;
    SIGTERM/SIGUSR1 are passed on. Exit code: 2 if any worker failed on an error, else 75 if any was
    stopped, else 0."""
    import signal
    import subprocess

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    argv = [a for a in sys.argv[1:]]
    extra = [] if any(s.startswith("train.threads=") for s in set_) else ["--set", f"train.threads={max(1, cores // workers)}"]
    procs = []
    for i in range(workers):
        env = {**os.environ, "VISTRAIN_TUNE_WORKER": str(i + 1)}
        procs.append(subprocess.Popen([sys.executable, "-m", "vistrain", *argv, *extra], env=env))

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if any(c not in (0, PREEMPTED_EXIT_CODE) for c in codes):
        return 2
    return PREEMPTED_EXIT_CODE if PREEMPTED_EXIT_CODE in codes else 0


def _print_summary(settings) -> None:
    from vistrain.tune.summary import load_study

    summary = load_study(settings.folder)
    typer.echo(summary.text())


@app.command("report")
def tune_report(
    study: Path = typer.Argument(..., help="The study's folder (OUT/NAME)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file (default: STUDY/report.html)."),
    best_config: bool = typer.Option(False, "--best-config", help="Print the best trial's config as YAML instead."),
) -> None:
    """Write a study's HTML report: optimisation history, parameter importances, trials, the best configs."""
    from vistrain.tune.summary import load_study

    summary = load_study(study)
    if best_config:
        typer.echo(summary.best_config_yaml(), nl=False)
        return
    from vistrain.tune.report import write_report

    path = write_report(summary, out or study / "report.html")
    typer.echo(f"wrote {path}")
