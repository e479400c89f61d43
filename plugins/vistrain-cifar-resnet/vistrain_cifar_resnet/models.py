"""CIFAR ResNets (He et al. 2016, section 4.2): 6n+2 layers, widths 16/32/64, option-A shortcuts.

Option A: when a block halves the size and doubles the width, the shortcut subsamples by 2 and
pads the new channels with zeros, so shortcuts add no parameters (ResNet-20 has 0.27 M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a parameter-free shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.extra = stride, planes - in_planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Identity, or subsample and zero-pad the channels (option A)."""
        if self.stride == 1 and self.extra == 0:
            return x
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """conv3x3(16) -> 3 stages of n blocks (16, 32, 64 channels) -> global average pool -> linear."""

    def __init__(self, depth: int, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_chans, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled 64-d features."""
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """A new head for *num_classes*."""
        self.classifier = nn.Linear(64, num_classes)


def _create(depth: int, num_classes: int, in_chans: int, input_size: int, **kwargs) -> CifarResNet:
    kwargs.pop("drop_rate", None)
    if kwargs:
        raise TypeError(f"resnet{depth} takes no options {sorted(kwargs)}")
    return CifarResNet(depth, num_classes, in_chans)


def resnet20(num_classes: int, in_chans: int, input_size: int, **kwargs) -> CifarResNet:
    """ResNet-20 (0.27 M parameters)."""
    return _create(20, num_classes, in_chans, input_size, **kwargs)


def resnet32(num_classes: int, in_chans: int, input_size: int, **kwargs) -> CifarResNet:
    """ResNet-32 (0.46 M parameters)."""
    return _create(32, num_classes, in_chans, input_size, **kwargs)


def resnet44(num_classes: int, in_chans: int, input_size: int, **kwargs) -> CifarResNet:
    """ResNet-44 (0.66 M parameters)."""
    return _create(44, num_classes, in_chans, input_size, **kwargs)


def resnet56(num_classes: int, in_chans: int, input_size: int, **kwargs) -> CifarResNet:
    """ResNet-56 (0.85 M parameters)."""
    return _create(56, num_classes, in_chans, input_size, **kwargs)


def resnet110(num_classes: int, in_chans: int, input_size: int, **kwargs) -> CifarResNet:
    """ResNet-110 (1.7 M parameters)."""
    return _create(110, num_classes, in_chans, input_size, **kwargs)
