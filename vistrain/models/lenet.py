"""LeNet-5 (LeCun et al. 1998): the course version (max pool, ReLU) and the classic (avg pool, tanh)."""

from __future__ import annotations

from torch import nn

from vistrain.models.base import FeatureClassifier


class LeNet5(FeatureClassifier):
    """conv5 → pool2 → conv5 → pool2 → FC120 → FC84 → classes; 61,706 params for 10 classes.

    ``width`` multiplies every layer's channels and units (6/16 maps, 120/84 units): ``width=2`` is a
    wider student for Noisy Student (about 4× the parameters). ``norm="batch"`` puts BatchNorm after each
    convolution and hidden fully connected layer, before its activation (Ioffe & Szegedy 2015): 61,932 parameters
    for 10 classes (the layers it follows lose their biases).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size: int = 28, classic: bool = False,
                 drop_rate: float = 0.0, width: float = 1.0, norm: str | None = None):
        super().__init__()
        self.num_classes = num_classes
        if input_size < 28:
            raise ValueError(f"LeNet-5 needs inputs of at least 28x28, got {input_size}")
        if not isinstance(width, (int, float)) or isinstance(width, bool) or width <= 0:
            raise ValueError(f"LeNet-5 width must be a positive number, got {width!r}")
        if norm not in (None, "none", "batch"):
            raise ValueError(f"LeNet-5 norm must be 'batch' or none, got {norm!r}")
        c1, c2, f1, f2 = (max(1, round(n * width)) for n in (6, 16, 120, 84))
        bn = norm == "batch"

        def block(layer: nn.Module, features: int, norm_layer: type[nn.Module]) -> list[nn.Module]:
            # without norm the layers (and so the checkpoints' weight names) are exactly the plain LeNet-5's
            return [layer, norm_layer(features), act()] if bn else [layer, act()]

        # 28x28 inputs are padded by 2 so the feature map is the paper's 5x5 after two pools.
        padding = 2 if input_size < 32 else 0
        act: type[nn.Module] = nn.Tanh if classic else nn.ReLU
        pool: type[nn.Module] = nn.AvgPool2d if classic else nn.MaxPool2d
        self.features = nn.Sequential(
            *block(nn.Conv2d(in_chans, c1, 5, padding=padding, bias=not bn), c1, nn.BatchNorm2d), pool(2, 2),
            *block(nn.Conv2d(c1, c2, 5, bias=not bn), c2, nn.BatchNorm2d), pool(2, 2),
        )
        side = (input_size + 2 * padding - 4) // 2
        side = (side - 4) // 2
        self.flatten_dim = c2 * side * side
        self.head_in = f2
        self.pre_logits = nn.Sequential(
            nn.Flatten(), *block(nn.Linear(self.flatten_dim, f1, bias=not bn), f1, nn.BatchNorm1d),
            *block(nn.Linear(f1, f2, bias=not bn), f2, nn.BatchNorm1d),
            nn.Dropout(drop_rate) if drop_rate else nn.Identity(),
        )
        self.classifier = nn.Linear(f2, num_classes)



def _create(num_classes: int, in_chans: int, input_size: int, classic: bool, drop_rate: float | None = None,
            pretrained: str | None = None, width: float = 1.0, norm: str | None = None) -> LeNet5:
    from vistrain.models.weights import with_pretrained

    return with_pretrained(LeNet5(num_classes, in_chans, input_size, classic=classic, drop_rate=drop_rate or 0.0,
                                  width=width, norm=norm), pretrained)


def create_lenet5(num_classes: int, in_chans: int, input_size: int, **kwargs) -> LeNet5:
    """The course LeNet-5: max pooling and ReLU."""
    return _create(num_classes, in_chans, input_size, classic=False, **kwargs)


def create_lenet5_classic(num_classes: int, in_chans: int, input_size: int, **kwargs) -> LeNet5:
    """The 1998 original's flavour: average pooling (subsampling) and tanh."""
    return _create(num_classes, in_chans, input_size, classic=True, **kwargs)
