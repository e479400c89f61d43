"""AlexNet (Krizhevsky et al. 2012): the paper's 227×227 layout with LRN, and a small-input variant.

The paper split conv2, conv4 and conv5 across two GPUs; ``groups=2`` (the default) keeps that
split as grouped convolutions, which gives the paper's ~61 M parameters (60,965,224 for 1,000
classes); ``groups=1`` is the single-GPU version (62,378,344).
"""

from __future__ import annotations

from torch import nn

from vistrain.models.base import FeatureClassifier

# Below this the 11×11 stride-4 stem would leave almost nothing; the small variant is used.
SMALL_INPUT_MAX = 100


def _lrn() -> nn.Module:
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)  # the paper's constants


class AlexNet(FeatureClassifier):
    """Five convs (LRN after the first two) and three FC layers with dropout."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, input_size: int = 227, lrn: bool = True,
                 groups: int = 2, drop_rate: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.small = input_size < SMALL_INPUT_MAX
        norm = _lrn if lrn else nn.Identity
        if self.small:
            # 5×5 stem, stride 1, and 2×2 pools: 28 px → 14 → 7 → 3; about half the paper's widths.
            c, hidden, pool = (48, 128, 192, 192, 128), 512, lambda: nn.MaxPool2d(2, 2)
            stem = nn.Conv2d(in_chans, c[0], 5, padding=2)
            groups = 1
        else:
            c, hidden, pool = (96, 256, 384, 384, 256), 4096, lambda: nn.MaxPool2d(3, 2)
            stem = nn.Conv2d(in_chans, c[0], 11, stride=4)
        self.features = nn.Sequential(
            stem, nn.ReLU(inplace=True), norm(), pool(),
            nn.Conv2d(c[0], c[1], 5, padding=2, groups=groups), nn.ReLU(inplace=True), norm(), pool(),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], 3, padding=1, groups=groups), nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], 3, padding=1, groups=groups), nn.ReLU(inplace=True),
            pool(),
        )
        side = self._feature_side(input_size)
        if side < 1:
            raise ValueError(f"AlexNet needs inputs of at least 28x28 (small variant) or 100x100, got {input_size}")
        self.head_in = hidden
        self.pre_logits = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(drop_rate), nn.Linear(c[4] * side * side, hidden), nn.ReLU(inplace=True),
            nn.Dropout(drop_rate), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def _feature_side(self, size: int) -> int:
        if self.small:
            return size // 8
        size = (size - 11) // 4 + 1
        for _ in range(3):
            size = (size - 3) // 2 + 1
        return size



def create_alexnet(num_classes: int, in_chans: int, input_size: int, *, lrn: bool = True, groups: int = 2,
                   drop_rate: float | None = None, pretrained: str | None = None) -> AlexNet:
    """AlexNet with LRN; the small-input variant below 100 px."""
    from vistrain.models.weights import with_pretrained

    model = AlexNet(num_classes, in_chans, input_size, lrn=lrn, groups=groups,
                    drop_rate=0.5 if drop_rate is None else drop_rate)
    return with_pretrained(model, pretrained)
