"""Batch-level CutMix (Yun et al. 2019) and MixUp (Zhang et al. 2018) on torch tensors, on the device.

Both return soft targets (one probability row per image), which the engine's loss and
accuracy accept. CutMix recomputes λ from the box actually pasted, after clipping to the
image, so the label mix equals the pasted area exactly.
"""

from __future__ import annotations

import math

import torch


def one_hot(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices → float one-hot rows; probability rows pass through."""
    if targets.ndim == 2:
        return targets.float()
    return torch.nn.functional.one_hot(targets.long(), num_classes).float()


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """A box (y0, y1, x0, x1) of about (1−λ) of the area, centred uniformly and clipped to the image."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(height, (1,), generator=generator))
    cx = int(torch.randint(width, (1,), generator=generator))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, height)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, width)
    return y0, y1, x0, x1


def cutmix(images: torch.Tensor, soft: torch.Tensor, alpha: float = 1.0,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste a box from a shuffled partner into each image; returns (images, targets, exact λ)."""
    batch, _, height, width = images.shape
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if generator is None else _beta(alpha, generator)
    perm = torch.randperm(batch, generator=generator).to(images.device)
    y0, y1, x0, x1 = cutmix_box(height, width, lam, generator)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[perm, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
    return mixed, lam * soft + (1.0 - lam) * soft[perm], lam


def mixup(images: torch.Tensor, soft: torch.Tensor, alpha: float = 0.2,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Blend each image with a shuffled partner: λ·x_a + (1−λ)·x_b, labels alike; returns λ too."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if generator is None else _beta(alpha, generator)
    perm = torch.randperm(images.shape[0], generator=generator).to(images.device)
    mixed = images * lam + images[perm] * (1.0 - lam)
    return mixed, lam * soft + (1.0 - lam) * soft[perm], lam


def _beta(alpha: float, generator: torch.Generator) -> float:
    # Beta(a, a) from two Gamma draws, through the given generator (torch.distributions has no generator).
    g = torch._standard_gamma(torch.full((2,), float(alpha)), generator=generator)
    return float(g[0] / g.sum())


class BatchMix:
    """``batch_transform(images, targets) -> (images, soft targets)``: CutMix or MixUp, each with a probability.

    When both are enabled one of them is picked per batch with equal chance. Randomness comes
    from torch's global generator, which ``train.seed`` seeds.
    """

    def __init__(self, cutmix_alpha: float = 0.0, cutmix_prob: float = 0.5, mixup_alpha: float = 0.0,
                 mixup_prob: float = 0.5, num_classes: int | None = None):
        self.cutmix_alpha, self.cutmix_prob = float(cutmix_alpha), float(cutmix_prob)
        self.mixup_alpha, self.mixup_prob = float(mixup_alpha), float(mixup_prob)
        # Without the class count, it is inferred as the largest label seen so far + 1.
        self.num_classes = num_classes
        self._seen = 0

    def _classes(self, targets: torch.Tensor) -> int:
        if self.num_classes is not None:
            return self.num_classes
        self._seen = max(self._seen, int(targets.max()) + 1)
        return self._seen

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        soft = one_hot(targets, targets.shape[1] if targets.ndim == 2 else self._classes(targets))
        modes = [m for m in (("cutmix", self.cutmix_alpha, self.cutmix_prob), ("mixup", self.mixup_alpha, self.mixup_prob))
                 if m[1] > 0]
        if not modes:
            return images, soft
        name, alpha, prob = modes[int(torch.randint(len(modes), (1,)))] if len(modes) > 1 else modes[0]
        if float(torch.rand(())) >= prob:
            return images, soft
        fn = cutmix if name == "cutmix" else mixup
        mixed, mixed_targets, _ = fn(images, soft.to(images.device), alpha)
        return mixed, mixed_targets
