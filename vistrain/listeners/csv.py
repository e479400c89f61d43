"""``metrics.csv``: one row per epoch with train and validation metrics."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from vistrain.errors import OutputError
from vistrain.events import EpochEnd, EvalEnd, Event, RunFailed, RunFinished, StageStarted
from vistrain.hookspecs import hookimpl

COLUMNS = ["stage", "epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "epoch_time_s",
           "val_balanced_top1", "val_macro_f1"]


def _header(path: Path) -> list[str]:
    """The column names of an existing CSV file (empty when it has none)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


class MetricsCsvWriter:
    """Listener collecting EpochEnd/EvalEnd pairs into CSV rows."""

    def __init__(self, path: Path):
        self.path = path
        self._pending: dict | None = None
        try:
            new = not path.exists() or path.stat().st_size == 0
            # a resumed run keeps the columns its file was started with (an older version wrote fewer)
            columns = COLUMNS if new else _header(path) or COLUMNS
            self._fh = open(path, "a", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._fh, fieldnames=columns, extrasaction="ignore")
            if new:
                self._writer.writeheader()
                self._fh.flush()
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}", hint="choose a writable --out folder") from None

    def _flush_pending(self) -> None:
        if self._pending is None:
            return
        try:
            self._writer.writerow(self._pending)
            self._fh.flush()
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}", hint="free disk space") from None
        self._pending = None

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Build a row at each epoch end; complete it with the validation result."""
        if isinstance(event, EpochEnd):
            self._flush_pending()
            self._pending = {"stage": event.stage, "epoch": event.epoch, "train_loss": f"{event.train_loss:.6f}",
                             "train_top1": f"{event.train_top1:.6f}", "lr": f"{event.lr:.6g}",
                             "epoch_time_s": f"{event.duration_s:.3f}"}
        elif isinstance(event, EvalEnd) and event.split == "val" and self._pending is not None \
                and self._pending["epoch"] == event.epoch and self._pending["stage"] == event.stage:
            self._pending.update(val_loss=f"{event.loss:.6f}", val_top1=f"{event.top1:.6f}", val_top5=f"{event.top5:.6f}")
            if event.balanced_top1 is not None and event.macro_f1 is not None:
                self._pending.update(val_balanced_top1=f"{event.balanced_top1:.6f}", val_macro_f1=f"{event.macro_f1:.6f}")
            self._flush_pending()
        elif isinstance(event, (StageStarted, RunFinished, RunFailed)):
            self._flush_pending()

    def close(self) -> None:
        """Write any pending row and close."""
        try:
            self._flush_pending()
            self._fh.close()
        except (OSError, OutputError):
            pass


def trim_after_checkpoint(path: Path, stage: str, epoch: int) -> int:
    """Drop the rows a resumed run will write again: those after *stage*'s *epoch* (the checkpoint's).

    A run killed after an epoch's row but before its checkpoint would otherwise repeat that row.
    Returns how many rows were dropped.
    """
    if not path.exists():
        return 0
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    ours = [i for i, r in enumerate(rows) if r.get("stage") == stage]
    done = [i for i in ours if str(r := rows[i].get("epoch", "")).isdigit() and int(r) <= epoch]
    keep = done[-1] + 1 if done else (ours[0] if ours else len(rows))
    if keep == len(rows):
        return 0
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows[:keep])
    os.replace(tmp, path)
    return len(rows) - keep
