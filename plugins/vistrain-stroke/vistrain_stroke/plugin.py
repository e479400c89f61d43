"""Hook implementation; the op is a lazy string, so importing this module imports no OpenCV."""

from __future__ import annotations

from vistrain.hookspecs import hookimpl


@hookimpl
def register_augmentations(register):
    """Add ``stroke`` and put it in RandAugment's default pool."""
    register("stroke", "vistrain_stroke.stroke:Stroke", randaugment=True, p=1.0,
             params="px (radius change, px at 28 px, default 1), kernel (ellipse|square), ink (light|dark), "
                    "m (0..30, fixed strength)",
             description="stroke width: thicker or thinner strokes by grey-level dilation or erosion")
