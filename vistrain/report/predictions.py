"""A checkpoint's predictions on the val split it was selected on: confusion, per-class accuracy, mistakes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class SplitPredictions:
    """Softmax outputs and true labels (in the checkpoint's class order) for one split."""

    checkpoint: Path
    dataset: str
    classes: list[str]
    probs: np.ndarray  # (N, C)
    labels: np.ndarray  # (N,)
    images: object  # the ImageSet, for drawing the images themselves

    @property
    def predicted(self) -> np.ndarray:
        """Arg-max class per image."""
        return self.probs.argmax(axis=1)

    @property
    def top1(self) -> float:
        """Share of images predicted right."""
        return float((self.predicted == self.labels).mean()) if len(self.labels) else 0.0

    def confusion(self) -> np.ndarray:
        """Counts, rows = true class, columns = predicted class."""
        from vistrain.metrics import confusion_matrix

        return confusion_matrix(self.labels, self.predicted, len(self.classes))

    def class_metrics(self):
        """Per-class precision, recall (a class's top-1; 0 without images) and F1 with the images per class,
        balanced top-1 and macro-F1 (:class:`~vistrain.metrics.ClassMetrics`)."""
        from vistrain.metrics import ClassMetrics

        return ClassMetrics.from_confusion(self.confusion())

    def confident_mistakes(self, k: int) -> list[int]:
        """Indices of up to *k* wrong predictions, most confident first."""
        wrong = np.flatnonzero(self.predicted != self.labels)
        conf = self.probs[wrong, self.predicted[wrong]]
        return [int(i) for i in wrong[np.argsort(-conf, kind="stable")][:k]]


def val_predictions(checkpoint: str | Path, *, batch_size: int = 512, device: str = "cpu") -> SplitPredictions:
    """Predict the val split the checkpoint was trained with (same dataset, split seed and fraction)."""
    from vistrain.checkpoint import classes_of
    from vistrain.inference import split_probabilities

    probs, labels, images, dataset, ckpt = split_probabilities(checkpoint, "val", batch_size=batch_size, device=device)
    return SplitPredictions(Path(checkpoint), dataset, classes_of(ckpt), probs, labels, images)
