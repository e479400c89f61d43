"""Turn vistrain events into TensorBoard scalars with ``torch.utils.tensorboard.SummaryWriter``.

Tags are ``STAGE/NAME``: per batch ``loss`` and ``lr`` (x = global step); per epoch
``epoch_train_loss``, ``epoch_train_top1``, ``epoch_lr``; per evaluation ``SPLIT_loss``,
``SPLIT_top1``, ``SPLIT_top5`` (x = epoch); ``system/cpu_percent`` and ``system/ram_used_gb``
(x = sample number). Each event's own time is the wall time, so a replayed run keeps its timing.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

SUBDIR = "tensorboard"


class ScalarWriter:
    """Write the scalars of one run's events into a TensorBoard log folder."""

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self._tb = SummaryWriter(log_dir=str(self.log_dir))
        self._samples = 0

    @classmethod
    def for_run(cls, run_dir: str | Path) -> ScalarWriter:
        """A writer for RUN_DIR/tensorboard."""
        return cls(Path(run_dir) / SUBDIR)

    def _add(self, tag: str, value: float | None, step: int, walltime: float) -> None:
        if value is not None:
            self._tb.add_scalar(tag, float(value), global_step=step, walltime=walltime)

    def write(self, event) -> None:
        """Write the scalars *event* carries (events without scalars are ignored)."""
        kind, t = event.kind, event.time
        if kind == "batch_end":
            self._add(f"{event.stage}/loss", event.loss, event.global_step, t)
            self._add(f"{event.stage}/lr", event.lr, event.global_step, t)
        elif kind == "epoch_end":
            self._add(f"{event.stage}/epoch_train_loss", event.train_loss, event.epoch, t)
            self._add(f"{event.stage}/epoch_train_top1", event.train_top1, event.epoch, t)
            self._add(f"{event.stage}/epoch_lr", event.lr, event.epoch, t)
        elif kind == "eval_end":
            for name in ("loss", "top1", "top5"):
                self._add(f"{event.stage}/{event.split}_{name}", getattr(event, name), event.epoch, t)
        elif kind == "system_sample":
            self._samples += 1
            self._add("system/cpu_percent", event.cpu_percent, self._samples, t)
            self._add("system/ram_used_gb", event.ram_used_gb, self._samples, t)
        elif kind in ("run_finished", "run_failed"):
            self._tb.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._tb.close()
