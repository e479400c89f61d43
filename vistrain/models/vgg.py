"""VGG-11/13/16/19 (Simonyan & Zisserman 2014): configs A, B, D, E; 3×3 convs and 2×2 pools only.

From 100 px up the classifier is the paper's (7×7×512 → 4096 → 4096 → classes); smaller
inputs drop the pools that would shrink the map below 1×1 and use a 512-wide head.
"""

from __future__ import annotations

from torch import nn

from vistrain.models.base import FeatureClassifier

CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
DEPTH_TO_CONFIG = {11: "A", 13: "B", 16: "D", 19: "E"}
SMALL_INPUT_MAX = 100


def _make_features(cfg: list[int | str], in_chans: int, batch_norm: bool, input_size: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels, side = in_chans, input_size
    for v in cfg:
        if v == "M":
            if side < 2:  # small inputs: a pool here would leave an empty map
                continue
            layers.append(nn.MaxPool2d(2, 2))
            side //= 2
        else:
            layers.append(nn.Conv2d(channels, int(v), 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(v)))
            layers.append(nn.ReLU(inplace=True))
            channels = int(v)
    return nn.Sequential(*layers)


class VGG(FeatureClassifier):
    """A VGG conv stack and its classifier."""

    def __init__(self, config: str, num_classes: int = 1000, in_chans: int = 3, input_size: int = 224,
                 batch_norm: bool = False, drop_rate: float = 0.5):
        super().__init__()
        if input_size < 8:
            raise ValueError(f"VGG needs inputs of at least 8x8, got {input_size}")
        self.num_classes = num_classes
        self.small = input_size < SMALL_INPUT_MAX
        self.features = _make_features(CONFIGS[config], in_chans, batch_norm, input_size)
        if self.small:
            self.head_in = 512
            self.pre_logits = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(drop_rate),
            )
        else:
            self.head_in = 4096
            self.pre_logits = nn.Sequential(
                nn.AdaptiveAvgPool2d(7), nn.Flatten(),
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(drop_rate),
                nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(drop_rate),
            )
        self.classifier = nn.Linear(self.head_in, num_classes)
        for m in self.modules():  # He init for the ReLU stack, as torchvision does
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)



def _create(depth: int, batch_norm: bool, num_classes: int, in_chans: int, input_size: int, *,
            drop_rate: float | None = None, pretrained: str | None = None) -> VGG:
    from vistrain.models.weights import with_pretrained

    model = VGG(DEPTH_TO_CONFIG[depth], num_classes, in_chans, input_size, batch_norm=batch_norm,
                drop_rate=0.5 if drop_rate is None else drop_rate)
    return with_pretrained(model, pretrained)


def create_vgg11(num_classes: int, in_chans: int, input_size: int, batch_norm: bool = False, **kwargs) -> VGG:
    """VGG-11 (config A)."""
    return _create(11, batch_norm, num_classes, in_chans, input_size, **kwargs)


def create_vgg13(num_classes: int, in_chans: int, input_size: int, batch_norm: bool = False, **kwargs) -> VGG:
    """VGG-13 (config B)."""
    return _create(13, batch_norm, num_classes, in_chans, input_size, **kwargs)


def create_vgg16(num_classes: int, in_chans: int, input_size: int, batch_norm: bool = False, **kwargs) -> VGG:
    """VGG-16 (config D)."""
    return _create(16, batch_norm, num_classes, in_chans, input_size, **kwargs)


def create_vgg19(num_classes: int, in_chans: int, input_size: int, batch_norm: bool = False, **kwargs) -> VGG:
    """VGG-19 (config E)."""
    return _create(19, batch_norm, num_classes, in_chans, input_size, **kwargs)


def create_vgg11_bn(num_classes: int, in_chans: int, input_size: int, **kwargs) -> VGG:
    """VGG-11 with BatchNorm."""
    return _create(11, True, num_classes, in_chans, input_size, **kwargs)


def create_vgg13_bn(num_classes: int, in_chans: int, input_size: int, **kwargs) -> VGG:
    """VGG-13 with BatchNorm."""
    return _create(13, True, num_classes, in_chans, input_size, **kwargs)


def create_vgg16_bn(num_classes: int, in_chans: int, input_size: int, **kwargs) -> VGG:
    """VGG-16 with BatchNorm."""
    return _create(16, True, num_classes, in_chans, input_size, **kwargs)


def create_vgg19_bn(num_classes: int, in_chans: int, input_size: int, **kwargs) -> VGG:
    """VGG-19 with BatchNorm."""
    return _create(19, True, num_classes, in_chans, input_size, **kwargs)
