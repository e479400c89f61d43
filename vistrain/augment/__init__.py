"""Augmentation: per-image ops on uint8 HWC arrays, pipelines, RandAugment, CutMix/MixUp, preview.

The policy search drives whole runs, so it lives above the runner in :mod:`vistrain.policy_search`.
"""

from __future__ import annotations


def build_augmentation(cfg, num_classes: int | None = None, pipeline=...):
    """Return (per-image callable or None, batch transform or None) for an AugmentConfig.

    Pass *num_classes* so CutMix/MixUp build soft targets of the model's width; without it the
    width is inferred from the largest label seen. *pipeline*: ``cfg.spec`` already built.
    """
    from vistrain.augment.pipeline import build_from_config

    return build_from_config(cfg, num_classes, pipeline)
