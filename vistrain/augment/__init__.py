"""Augmentation: per-image ops on uint8 HWC arrays, pipelines, RandAugment, CutMix/MixUp."""

from __future__ import annotations


def build_augmentation(cfg):
    """Return (per-image callable or None, batch transform or None) for an AugmentConfig."""
    from vistrain.augment.pipeline import build_from_config

    return build_from_config(cfg)
