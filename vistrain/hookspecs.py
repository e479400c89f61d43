"""Every hook vistrain defines, grouped by lifecycle.

Registry hooks receive a ``register(name, factory, **meta)`` callback; vistrain owns the
dictionaries. Registration hooks are called once per plugin, each call isolated, so a plugin
that raises is reported by name and does not affect the others. Factories may be callables or
lazy ``"package.module:attribute"`` strings, so listing names never imports torch.

The event hook is called for every event of a run; see :mod:`vistrain.events`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from vistrain.events import Event

PROJECT = "vistrain"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callback a registry hook receives."""

    def __call__(self, name: str, factory: Any, /, **meta: Any) -> None: ...


# --- start-up: registries ---------------------------------------------------------------


@hookspec
def register_models(register: Register) -> None:
    """Register model factories.

    ``factory(num_classes: int, in_chans: int, input_size: int, **kwargs) -> torch.nn.Module``.
    Meta keys: ``description``, ``family``, ``in_chans`` (default channels), ``input_size``
    (default square size), ``min_size``/``max_size`` (range of sizes the model accepts natively),
    ``mean``/``std`` (normalisation), ``takes_arg`` (the name is a prefix such as ``timm:``).
    Fired once when the model registry is first used; every implementation is called.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset factories.

    ``factory(arg: str | None, cfg: vistrain.config.DataConfig) -> vistrain.data.source.DataSource``.
    ``arg`` is the text after ``name:`` in a spec such as ``imagefolder:PATH``.
    Meta keys: ``description``, ``takes_arg``, ``needs_download``.
    Fired once when the dataset registry is first used; every implementation is called.
    """


@hookspec
def register_augmentations(register: Register) -> None:
    """Register per-image augmentation ops working on uint8 HWC NumPy arrays.

    See :mod:`vistrain.augment` for the op protocol. Meta keys: ``description``,
    ``randaugment`` (bool: joins RandAugment's default pool), ``params`` (accepted params).
    Fired once when the augmentation registry is first used; every implementation is called.
    """


@hookspec
def register_strategies(register: Register) -> None:
    """Register training strategies.

    ``factory(ctx: vistrain.strategies.base.RunContext) -> dict`` runs the whole strategy,
    composing the engine's functions into stages, and returns final metrics.
    Fired once when the strategy registry is first used; every implementation is called.
    """


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizer factories: ``factory(params, cfg: OptimConfig) -> torch.optim.Optimizer``.

    Fired once when the optimizer registry is first used; every implementation is called.
    """


@hookspec
def register_schedulers(register: Register) -> None:
    """Register LR scheduler factories stepped once per optimizer step.

    ``factory(optimizer, cfg: SchedConfig, total_steps: int, steps_per_epoch: int) -> LRScheduler``.
    Fired once when the scheduler registry is first used; every implementation is called.
    """


@hookspec
def register_distill_losses(register: Register) -> None:
    """Register logit losses for the ``distill`` strategy (``strategy.params.loss``).

    ``factory(**loss_kwargs)`` returns ``loss(student_logits, teacher_logits, targets, temperature)
    -> torch.Tensor``, the teacher term that ``distill`` weighs by ``alpha`` against the labels'
    cross-entropy; ``targets`` are class indices or soft (N, classes) targets. ``loss_kwargs`` come
    from ``strategy.params.loss_kwargs``. Meta keys: ``description``. Fired once when the registry
    is first used; every implementation is called.
    """


@hookspec
def register_commands(register: Register) -> None:
    """Register CLI commands.

    ``factory`` is a ``typer.Typer`` (a command group) or a plain function (a single command,
    its signature parsed by Typer). Meta keys: ``help`` (with it, ``vistrain --help`` lists the
    command without importing a lazy ``"module:attr"`` factory; it is imported when invoked).
    Keep module imports light: this hook runs for ``vistrain --help``. Fired once at CLI
    start-up; every implementation is called.
    """


# --- during a run: events -------------------------------------------------------------


@hookspec
def on_event(event: Event) -> None:
    """Receive one event of a run (started, stage, batch, eval, checkpoint, system, log...).

    Called for every listener, in registration order, from the thread that emitted the event
    (the training thread, or the system sampler thread for ``SystemSample``). A third-party
    listener that raises is reported once and then skipped for the rest of the run.
    """
