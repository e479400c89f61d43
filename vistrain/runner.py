"""Runs one job: validates names, prepares data and the run folder, wires listeners, calls the strategy."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vistrain.config import Config
from vistrain.errors import VistrainError
from vistrain.events import Log, RunFailed, RunFinished, RunStarted


@dataclass
class RunResult:
    """What a finished run reports back to its front end."""

    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False


def environment_info(device) -> dict[str, Any]:
    """Versions and hardware a run used, recorded in RunStarted so reports can show them later."""
    import platform

    import torch

    from vistrain import __version__

    info: dict[str, Any] = {"vistrain": __version__, "python": platform.python_version(), "torch": torch.__version__,
                            "platform": platform.platform(), "cpu_count": os.cpu_count() or 0,
                            "torch_threads": torch.get_num_threads(), "device": str(device),
                            "host": platform.node(), "pid": os.getpid()}
    if device.type == "cuda":
        info.update(device_name=torch.cuda.get_device_name(device), cuda=torch.version.cuda or "")
    return info


@dataclass
class RunPlan:
    """What a config names, looked up once before any data is loaded: an unknown model, dataset, strategy,
    optimizer, scheduler or op, a misspelt strategy parameter or a bad augmentation spec fails here."""

    strategy: Any  # the strategy's function: strategy(ctx) -> metrics
    params: Any  # strategy.params, validated against the strategy's parameter model
    pipeline: Any  # the per-image augmentation of ``augment.spec`` (None for none; ... while it is "auto")


def plan_run(cfg: Config) -> RunPlan:
    """Check every name *cfg* uses and build what the run will reuse (see :class:`RunPlan`)."""
    from vistrain.augment.pipeline import build_pipeline
    from vistrain.plugins import registry
    from vistrain.strategies.params import parse_params

    registry("model").get(cfg.model.name)
    registry("dataset").get(cfg.data.name)
    entry = registry("strategy").entry(cfg.strategy.name)
    params = parse_params(cfg.strategy.name, cfg.strategy.params)
    registry("optimizer").get(cfg.optim.name)
    registry("scheduler").get(cfg.sched.name)
    pipeline = build_pipeline(cfg.augment.spec) if cfg.augment.spec != "auto" else ...
    return RunPlan(entry.load(), params, pipeline)


def evaluate_test_split(ctx) -> dict[str, Any]:
    """Evaluate the run's ``best.pt`` (else ``last.pt``) once on the held-out test split.

    The test split never reaches training or the choice of ``best.pt``; this is its only use.
    Emits an ``EvalEnd`` with ``split="test"`` and returns ``test_*`` metrics (empty without a checkpoint).
    """
    from vistrain.checkpoint import position
    from vistrain.inference import TTA_VIEWS, evaluate_images
    from vistrain.models.factory import load_model

    if not ctx.dist.is_main:  # under DDP rank 0 alone evaluates the test split, without collectives
        return {}
    path = next((p for p in map(ctx.folder.checkpoint, ("best.pt", "last.pt")) if p.exists()), None)
    if path is None:
        return {}
    model, ckpt, input_spec = load_model(path, ctx.device)
    result = evaluate_images(model, ctx.data.test, input_spec, device=ctx.device,
                             batch_size=ctx.config.data.eval_batch_size, amp_dtype=ctx.amp_dtype,
                             epoch=position(ckpt)["epoch"], stage="test", split="test", emit=ctx.emit,
                             tta=ctx.config.train.test_tta, num_workers=ctx.config.data.num_workers,
                             worker_start=ctx.config.data.worker_start)
    return {"test_top1": result["top1"], "test_top5": result["top5"], "test_loss": result["loss"],
            "test_balanced_top1": result["balanced_top1"], "test_macro_f1": result["macro_f1"],
            "test_samples": result["num_samples"], "test_checkpoint": path.name,
            "test_tta_views": TTA_VIEWS[ctx.config.train.test_tta]}


def prepare_inputs(cfg: Config):
    """What a run and an LR sweep share, in this order: the process group (DDP), torch's CPU threads, the seeds,
    the device, the data source, the dataset's recipe (``augment.spec``/``data.resize`` left to vistrain) and
    the splits. Returns (config with the recipe, dist info, device, source, splits, the recipe's log line)."""
    import torch

    from vistrain.data import recipes
    from vistrain.data.prepare import load_source, prepare_data
    from vistrain.engine import distributed as dist
    from vistrain.engine.device import seed_everything, select_device

    dinfo = dist.setup(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    # rank 0 seeds as a single process would (DDP broadcasts its initial weights); other ranks differ
    seed_everything(cfg.train.seed + dinfo.rank, cfg.train.deterministic)
    device = dist.device_for(dinfo, select_device(cfg.train.device))
    source = load_source(cfg.data.name, cfg.data)
    cfg, recipe_line = recipes.resolve(cfg, source)
    return cfg, dinfo, device, source, prepare_data(source, cfg.data), recipe_line


def execute(cfg: Config, *, listeners: list[Any] | None = None, control=None, resume: dict | None = None,
            run_dir: Path | None = None) -> RunResult:
    """Run the configured strategy end to end and return its metrics.

    *listeners* are extra ``on_event`` plugins for this run only (console reporter, dashboard
    bridge). ``events.jsonl``, ``metrics.csv`` and checkpoints go to the run folder.
    """
    import torch

    from vistrain import runfolder
    from vistrain.augment import build_augmentation
    from vistrain.augment.pipeline import build_pipeline
    from vistrain.checkpoint import position, stage_of
    from vistrain.data.balance import balance_line, class_counts
    from vistrain.dispatch import EventDispatcher
    from vistrain.durable import clean_stale_temps
    from vistrain.engine import distributed as dist
    from vistrain.engine.control import StopRequested, TrainControl
    from vistrain.engine.device import amp_dtype
    from vistrain.engine.system import SystemSampler
    from vistrain.listeners.csv import MetricsCsvWriter, trim_after_checkpoint
    from vistrain.listeners.jsonl import JsonlWriter
    from vistrain.plugins import get_plugin_manager
    from vistrain.strategies.base import RunContext

    plan = plan_run(cfg)
    cfg, dinfo, device, source, data, recipe_line = prepare_inputs(cfg)
    pipeline = plan.pipeline if plan.pipeline is not ... else build_pipeline(cfg.augment.spec)

    if dinfo.is_main:
        folder = (runfolder.RunFolder(Path(run_dir)) if run_dir is not None else
                  runfolder.create(cfg.output.dir, cfg.output.name, cfg.model.name, cfg.data.name))
        folder.write_config(cfg.to_yaml())
        clean_stale_temps(folder.checkpoints)
        run_dir = folder.path
    run_dir = Path(dist.broadcast_object(str(run_dir) if run_dir is not None else None))
    folder = runfolder.RunFolder(run_dir)

    if dinfo.is_main:
        if resume is not None and stage_of(resume)[0]:  # rows past the checkpoint will be written again
            trim_after_checkpoint(folder.metrics, stage_of(resume)[0], position(resume)["epoch"])
        own = [("vistrain.run.jsonl", JsonlWriter(folder.events)), ("vistrain.run.csv", MetricsCsvWriter(folder.metrics))]
        own += [(f"vistrain.run.listener{i}", obj) for i, obj in enumerate(listeners or [])]
        emit = EventDispatcher(get_plugin_manager(), listeners=own)
    else:  # only rank 0 reports: the other ranks' events would repeat its own
        own = [(f"vistrain.run.listener{i}", obj) for i, obj in enumerate(listeners or [])]
        emit = EventDispatcher(None, listeners=own)
    relay = dist.SampleRelay(dinfo) if dinfo.world_size > 1 else None
    sampler = SystemSampler(emit, cfg.output.system_interval_s, relay=relay, rank=dinfo.rank,
                            gpu_index=device.index if device.type == "cuda" else None)
    ctx = RunContext(config=cfg, device=device, data=data, run_dir=run_dir, emit=emit,
                     control=control or TrainControl(), amp_dtype=amp_dtype(device, cfg.train.amp), resume=resume,
                     dist=dinfo, params=plan.params,
                     augmentation=build_augmentation(cfg.augment, len(data.classes), pipeline=pipeline))
    run_name = run_dir.name
    t0 = time.perf_counter()
    try:
        emit(RunStarted(run_name=run_name, run_dir=str(run_dir), strategy=cfg.strategy.name, model=cfg.model.name,
                        dataset=cfg.data.name, device=str(device), num_classes=len(data.classes),
                        num_train=len(data.train), num_val=len(data.val), config=cfg.model_dump(mode="json"),
                        environment=environment_info(device)))
        if dinfo.world_size > 1:
            emit(Log(level="info", message=f"DDP: {dinfo.world_size} processes ({dinfo.backend}); "
                                           f"rank 0 writes the run folder"))
        for line in source.info:
            emit(Log(level="info", message=line))
        if recipe_line:
            emit(Log(level="info", message=recipe_line))
        balance = balance_line(class_counts(data.train.targets(), len(data.classes)), data.classes, cfg.data.sampler,
                               cfg.train.class_weights)
        if balance:
            emit(Log(level="info", message=balance))
        if source.skipped:
            shown = ", ".join(os.path.basename(p) for p in source.skipped[:5])
            more = f" and {len(source.skipped) - 5} more" if len(source.skipped) > 5 else ""
            emit(Log(level="warning", message=f"skipped {len(source.skipped)} unreadable image(s): {shown}{more}"))
        for note in [*source.notes, *data.notes]:
            emit(Log(level="warning", message=note))
        sampler.start()
        try:
            metrics = plan.strategy(ctx) or {}
            stopped = False
        except StopRequested:
            metrics, stopped = {}, True
        if not stopped and data.test is not None:
            metrics.update(evaluate_test_split(ctx))
        sampler.stop()  # the run's last event is its last: no system sample after it
        emit(RunFinished(run_name=run_name, duration_s=time.perf_counter() - t0,
                         metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                         stopped_early=stopped))
        return RunResult(run_dir, metrics, stopped)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, VistrainError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, KeyboardInterrupt):
            message = "interrupted by the user; checkpoints written so far are intact"
        try:
            sampler.stop()
            emit(RunFailed(run_name=run_name, error=type(exc).__name__, message=message))
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        raise
    finally:
        sampler.stop()
        emit.close()
        for _name, obj in own:
            close = getattr(obj, "close", None)
            if close is not None:
                close()
