"""The perceptron (one fully connected layer over all pixels) and MLPs with hidden layers."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Flatten → [Linear → ReLU → Dropout] × len(hidden) → Linear(classes); no hidden layer = perceptron."""

    def __init__(self, num_classes: int, in_chans: int, input_size: int, hidden: tuple[int, ...] = (),
                 drop_rate: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        self.input_shape = (in_chans, input_size, input_size)
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_chans * input_size * input_size
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(inplace=True)]
            if drop_rate:
                layers.append(nn.Dropout(drop_rate))
            width = int(h)
        self.head_in = width
        self.pre_logits = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding: the last hidden layer, or the raw pixels for a perceptron."""
        return self.pre_logits(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head for a new number of classes."""
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.head_in, num_classes)


def _hidden(value) -> tuple[int, ...]:
    # --set model.kwargs.hidden=800,800 arrives as a string; YAML gives a list.
    if isinstance(value, str):
        return tuple(int(v) for v in value.replace("x", ",").split(",") if v.strip())
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def create_perceptron(num_classes: int, in_chans: int, input_size: int, *, drop_rate: float | None = None,
                      pretrained: str | None = None) -> MLP:
    """One fully connected layer from every pixel to every class (the course's first model)."""
    from vistrain.models.weights import with_pretrained

    return with_pretrained(MLP(num_classes, in_chans, input_size, (), drop_rate or 0.0), pretrained)


def create_mlp(num_classes: int, in_chans: int, input_size: int, *, hidden=(800, 800),
               drop_rate: float | None = None, pretrained: str | None = None) -> MLP:
    """An MLP; ``hidden`` lists the layer widths (default 2×800, Hinton's distillation student)."""
    from vistrain.models.weights import with_pretrained

    return with_pretrained(MLP(num_classes, in_chans, input_size, _hidden(hidden), drop_rate or 0.0), pretrained)
