"""Built-in augmentation ops, registered like any plugin's (lazy targets: listing imports no op code).

``randaugment=True`` puts an op in RandAugment's default pool (the paper's 14 ops); ``p`` is the
default probability of the step in a pipeline; ``params`` documents what ``augment list`` shows.
"""

from vistrain.hookspecs import hookimpl

_M = "m (0..30, fixed strength)"

# name: (target, description, params, in RandAugment's pool, default p)
BUILTIN_OPS = {
    "identity": ("ops:Identity", "return the image unchanged", "", True, 1.0),
    "brightness": ("color:Brightness", "multiply by 1±factor (PIL brightness), clipped", "factor (±, default 0.5)", True, 1.0),
    "brightness-add": ("color:BrightnessAdd", "add ±delta to every pixel, clipped (the course's)", "delta (0..255, default 32)", False, 1.0),
    "contrast": ("color:Contrast", "blend with the mean grey by 1±factor", "factor (±, default 0.5)", True, 1.0),
    "color": ("color:Color", "saturation: blend with greyscale by 1±factor", "factor (±, default 0.5)", True, 1.0),
    "sharpness": ("color:Sharpness", "blend with PIL's smoothed image by 1±factor", "factor (±, default 0.5)", True, 1.0),
    "autocontrast": ("color:AutoContrast", "stretch each channel to 0..255", "", True, 1.0),
    "equalize": ("color:Equalize", "histogram equalisation per channel", "", True, 1.0),
    "solarize": ("color:Solarize", "invert pixels >= threshold", "threshold (0..256)", True, 1.0),
    "posterize": ("color:Posterize", "keep the top bits of each pixel", "bits (1..8)", True, 1.0),
    "flip-h": ("geometric:FlipH", "mirror left-right", "", False, 0.5),
    "flip-v": ("geometric:FlipV", "mirror top-bottom", "", False, 0.5),
    "rot90": ("geometric:Rot90", "rotate by k*90 degrees (random k when unset)", "k (1..3)", False, 1.0),
    "rotate": ("geometric:Rotate", "rotate about the centre by ±deg", "deg (default 15)", True, 1.0),
    "shear-x": ("geometric:ShearX", "horizontal shear by ±shear (tangent)", "shear (default 0.15)", True, 1.0),
    "shear-y": ("geometric:ShearY", "vertical shear by ±shear (tangent)", "shear (default 0.15)", True, 1.0),
    "translate-x": ("geometric:TranslateX", "shift horizontally by ±frac of the width", "frac (default 0.2)", True, 1.0),
    "translate-y": ("geometric:TranslateY", "shift vertically by ±frac of the height", "frac (default 0.2)", True, 1.0),
    "affine": ("geometric:Affine", "rotate, shift, scale and shear in one warp",
               "deg (10), shift (px, 2), scale (0.1), shear (deg, 5)", False, 1.0),
    "elastic": ("geometric:Elastic", "elastic distortion: smoothed random displacement field (Simard et al. 2003)",
                "alpha (px at 28 px, default 34), sigma (px at 28 px, default 4)", False, 1.0),
    "perspective": ("geometric:Perspective", "random perspective warp", "distortion (0..1, default 0.5)", False, 1.0),
    "crop": ("crop:Crop", "random crop of the same size after zero padding", "pad (px, default 4)", False, 1.0),
    "center-crop": ("crop:CenterCrop", "central crop resized back (zoom in)", "scale (side kept, 0.875)", False, 1.0),
    "resized-crop": ("crop:ResizedCrop", "random resized crop (Inception), resized back", "smin (area, 0.08)", False, 1.0),
    "cutout": ("crop:Cutout", "black out a random square", "frac (side, default 0.5), fmin (draw the side in [fmin, frac])", False, 1.0),
    "erase": ("crop:Erase", "random erasing of a rectangle", "smax (area, default 0.33)", False, 1.0),
}


@hookimpl
def register_augmentations(register):
    """Register the built-in ops and RandAugment (``rand``)."""
    for name, (target, description, params, pool, p) in BUILTIN_OPS.items():
        module, _, cls = target.partition(":")
        shown = ", ".join(x for x in (params, "" if name in ("flip-h", "flip-v") else _M) if x)
        register(name, f"vistrain.augment.{module}:{cls}", description=description, params=shown,
                 randaugment=pool, p=p)
    register("rand", "vistrain.augment.randaugment:RandAugment",
             description="RandAugment: n ops per image from the pool at magnitude m",
             params="n (2), m (9), mstd (magnitude noise, 0; above 100: uniform in [0, m]), ops (a+b+c)", randaugment=False, p=1.0)
