"""Classification figures from a confusion matrix: per-class precision, recall and F1, balanced accuracy, macro-F1.

Top-1 counts images, so on imbalanced data a model that ignores a rare class loses little of it. The
per-class figures count classes instead (the definitions of scikit-learn's ``precision_recall_fscore_support``,
``balanced_accuracy_score`` and ``f1_score(average="macro")``, which the tests compare against):

- recall of class c: right predictions of c over the images of c; precision: right predictions of c over
  all predictions of c (0 when c is never predicted); F1 their harmonic mean (0 when both are 0);
- balanced accuracy: the mean recall over the classes that have images;
- macro-F1: the mean F1 over the classes that have images or are predicted.

The confusion matrix is summed over batches (and DDP ranks) first, so the figures are exact for the whole split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion_matrix(labels, predicted, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class (int64, *num_classes* square)."""
    labels = np.asarray(labels, dtype=np.int64).ravel()
    predicted = np.asarray(predicted, dtype=np.int64).ravel()
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return flat[: num_classes * num_classes].reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num), dtype=np.float64), where=den > 0)


@dataclass
class ClassMetrics:
    """Per-class and class-averaged figures of one confusion matrix (see the module)."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # images per true class
    predicted: np.ndarray  # predictions per class
    balanced_top1: float
    macro_f1: float

    @classmethod
    def from_confusion(cls, cm) -> "ClassMetrics":
        """The figures of confusion matrix *cm* (rows true, columns predicted)."""
        cm = np.asarray(cm, dtype=np.int64)
        tp = np.diag(cm).astype(np.float64)
        support, predicted = cm.sum(axis=1), cm.sum(axis=0)
        precision, recall = _ratio(tp, predicted), _ratio(tp, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        present, seen = support > 0, (support > 0) | (predicted > 0)
        return cls(precision, recall, f1, support, predicted,
                   float(recall[present].mean()) if present.any() else 0.0,
                   float(f1[seen].mean()) if seen.any() else 0.0)

    @classmethod
    def from_predictions(cls, labels, predicted, num_classes: int) -> "ClassMetrics":
        """The figures of *predicted* against true *labels*."""
        return cls.from_confusion(confusion_matrix(labels, predicted, num_classes))

    def summary(self) -> dict:
        """``balanced_top1``, ``macro_f1`` and the per-class lists (``class_precision``, ``class_recall``,
        ``class_f1``, ``class_support``) for events and metrics (rounded to 6 places)."""
        return {"balanced_top1": self.balanced_top1, "macro_f1": self.macro_f1,
                "class_precision": [round(float(x), 6) for x in self.precision],
                "class_recall": [round(float(x), 6) for x in self.recall],
                "class_f1": [round(float(x), 6) for x in self.f1],
                "class_support": [int(x) for x in self.support]}

    def table(self, classes) -> list[list[str]]:
        """Rows of (class, precision, recall, F1, images), for text and HTML tables."""
        return [[str(name), f"{100 * p:.2f}%", f"{100 * r:.2f}%", f"{100 * f:.2f}%", str(int(n))]
                for name, p, r, f, n in zip(classes, self.precision, self.recall, self.f1, self.support)]


TABLE_HEADER = ["class", "precision", "recall", "F1", "images"]
