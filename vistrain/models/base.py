"""The layout the built-in CNNs share: ``features`` → ``pre_logits`` → ``classifier``."""

from __future__ import annotations

import torch
from torch import nn


class FeatureClassifier(nn.Module):
    """Base for models built as features, a penultimate embedding and a linear head.

    Subclasses set ``features``, ``pre_logits``, ``classifier`` and ``head_in`` (the embedding
    width); they get the forward pass, ``forward_features`` and head replacement from here.
    """

    head_in: int
    num_classes: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding (used by k-NN on features and by distillation)."""
        return self.pre_logits(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head for a new number of classes."""
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.head_in, num_classes)
