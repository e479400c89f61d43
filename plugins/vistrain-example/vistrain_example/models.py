"""The example model."""

from __future__ import annotations

from torch import nn


class ExampleCNN(nn.Module):
    """conv-relu-pool ×2, global average pooling, linear head."""

    def __init__(self, num_classes: int, in_chans: int, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward_features(self, x):
        """Pooled features."""
        return self.features(x)

    def forward(self, x):
        return self.classifier(self.features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """New head."""
        self.classifier = nn.Linear(self.classifier.in_features, num_classes)


def create_example_cnn(num_classes: int, in_chans: int, input_size: int, **kwargs) -> ExampleCNN:
    """Factory called by vistrain."""
    kwargs.pop("drop_rate", None)
    return ExampleCNN(num_classes, in_chans, **kwargs)
