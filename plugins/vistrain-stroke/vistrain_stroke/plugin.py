"""Hook implementation; the op is a lazy string, so importing this module imports no OpenCV."""

from __future__ import annotations

from vistrain.hookspecs import hookimpl


@hookimpl
def register_augmentations(register):
    """Add ``elastic`` and put it in RandAugment's default pool."""
    register("elastic", "vistrain_elastic.elastic:Elastic", randaugment=True, p=1.0,
             params="alpha (px at 28 px, default 34), sigma (px at 28 px, default 4)",
             description="elastic distortion: smoothed random displacement field (Simard et al. 2003)")
