"""Augmentation pipelines (placeholder until the augmentation module lands: only 'none')."""

from __future__ import annotations

from vistrain.errors import ConfigError


def build_from_config(cfg):
    """Return (per-image callable or None, batch transform or None)."""
    if cfg.spec in ("none", "", None) and not cfg.cutmix_alpha and not cfg.mixup_alpha:
        return None, None
    raise ConfigError(f"augmentation spec {cfg.spec!r} is not supported yet")
