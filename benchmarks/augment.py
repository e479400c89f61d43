"""Time every augmentation op against its torchvision.transforms.v2 and albumentations equivalents.

All sides see the same RGB images (ours and albumentations' as uint8 HWC arrays, torchvision's
as uint8 CHW tensors converted beforehand, so no conversion is timed) at 32×32 and 224×224, one
thread each. Prints the per-op speed ratios (their time / ours) and the geometric mean per size.
albumentations is a benchmark-only extra (``pip install -e '.[bench]'``); without it, its
columns are left out. Ops it has no same-semantics equivalent for show "—".

    .venv/bin/python benchmarks/augment.py [--images 64] [--repeats 3] [--sizes 32,224]
"""

from __future__ import annotations

import argparse
import math
import time

import cv2
import numpy as np
import torch
from torchvision.transforms import InterpolationMode, v2

from vistrain.augment.pipeline import build_pipeline

BILINEAR = InterpolationMode.BILINEAR


def equivalents(size: int) -> dict[str, tuple[str, object]]:
    """Our spec and the torchvision v2 transform doing the same thing (same ranges, bilinear, black fill)."""
    return {
        "brightness": ("brightness-factor0.5", v2.ColorJitter(brightness=0.5)),
        "contrast": ("contrast-factor0.5", v2.ColorJitter(contrast=0.5)),
        "color": ("color-factor0.5", v2.ColorJitter(saturation=0.5)),
        "sharpness": ("sharpness-m9", v2.RandomAdjustSharpness(1.27, p=1.0)),
        "autocontrast": ("autocontrast", v2.RandomAutocontrast(p=1.0)),
        "equalize": ("equalize", v2.RandomEqualize(p=1.0)),
        "solarize": ("solarize-threshold128", v2.RandomSolarize(128, p=1.0)),
        "posterize": ("posterize-bits4", v2.RandomPosterize(4, p=1.0)),
        "flip-h": ("flip-h-p1", v2.RandomHorizontalFlip(p=1.0)),
        "flip-v": ("flip-v-p1", v2.RandomVerticalFlip(p=1.0)),
        "rotate": ("rotate-deg15", v2.RandomRotation(15, interpolation=BILINEAR)),
        "shear-x": ("shear-x-shear0.15", v2.RandomAffine(0, shear=(-8.5, 8.5), interpolation=BILINEAR)),
        "shear-y": ("shear-y-shear0.15", v2.RandomAffine(0, shear=(0, 0, -8.5, 8.5), interpolation=BILINEAR)),
        "translate-x": ("translate-x-frac0.2", v2.RandomAffine(0, translate=(0.2, 0.0))),
        "translate-y": ("translate-y-frac0.2", v2.RandomAffine(0, translate=(0.0, 0.2))),
        "affine": ("affine-deg10-shift2-scale0.1-shear5",
                   v2.RandomAffine(10, translate=(2 / size, 2 / size), scale=(0.9, 1.1), shear=5, interpolation=BILINEAR)),
        "perspective": ("perspective-distortion0.5", v2.RandomPerspective(0.5, p=1.0, interpolation=BILINEAR)),
        "crop": ("crop-pad4", v2.RandomCrop(size, padding=4)),
        "center-crop": ("center-crop-scale0.875", v2.Compose([v2.CenterCrop(int(round(size * 0.875))),
                                                                v2.Resize(size, interpolation=BILINEAR, antialias=False)])),
        "resized-crop": ("resized-crop-smin0.08", v2.RandomResizedCrop(size, interpolation=BILINEAR, antialias=False)),
        "cutout": ("cutout-frac0.5", v2.RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0))),
        "erase": ("erase-smax0.33", v2.RandomErasing(p=1.0)),
        "rot90": ("rot90-k1", v2.Lambda(lambda x: torch.rot90(x, 1, (-2, -1)))),
        "rand": ("rand-n2-m9", v2.RandAugment(2, 9, interpolation=BILINEAR)),
    }


def albumentations_equivalents(size: int) -> dict[str, object]:
    """albumentations transforms with the same semantics as our op (same ranges, bilinear, black fill, p=1)."""
    try:
        import albumentations as A
    except ImportError:
        return {}
    lin, black = cv2.INTER_LINEAR, dict(border_mode=cv2.BORDER_CONSTANT, fill=0)
    no_jitter = dict(brightness=0, contrast=0, saturation=0, hue=0, p=1.0)
    table = {
        "brightness": A.ColorJitter(**{**no_jitter, "brightness": 0.5}),
        "contrast": A.ColorJitter(**{**no_jitter, "contrast": 0.5}),
        "color": A.ColorJitter(**{**no_jitter, "saturation": 0.5}),
        "autocontrast": A.AutoContrast(method="pil", p=1.0),
        "equalize": A.Equalize(p=1.0),
        "solarize": A.Solarize(threshold_range=(128 / 255, 128 / 255), p=1.0),
        "posterize": A.Posterize(num_bits=4, p=1.0),
        "flip-h": A.HorizontalFlip(p=1.0),
        "flip-v": A.VerticalFlip(p=1.0),
        "rotate": A.Rotate(limit=15, interpolation=lin, p=1.0, **black),
        "shear-x": A.Affine(shear={"x": (-8.5, 8.5), "y": (0, 0)}, interpolation=lin, p=1.0, **black),
        "shear-y": A.Affine(shear={"x": (0, 0), "y": (-8.5, 8.5)}, interpolation=lin, p=1.0, **black),
        "translate-x": A.Affine(translate_percent={"x": (-0.2, 0.2), "y": (0, 0)}, interpolation=lin, p=1.0, **black),
        "translate-y": A.Affine(translate_percent={"x": (0, 0), "y": (-0.2, 0.2)}, interpolation=lin, p=1.0, **black),
        "affine": A.Affine(rotate=(-10, 10), translate_px=(-2, 2), scale=(0.9, 1.1), shear={"x": (-5, 5), "y": (0, 0)},
                           interpolation=lin, p=1.0, **black),
        "crop": A.Compose([A.PadIfNeeded(size + 8, size + 8, **black), A.RandomCrop(size, size)]),
        "center-crop": A.Compose([A.CenterCrop(int(round(size * 0.875)), int(round(size * 0.875))),
                                  A.Resize(size, size, interpolation=lin)]),
        "resized-crop": A.RandomResizedCrop((size, size), scale=(0.08, 1.0), interpolation=lin, p=1.0),
        "cutout": A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(0.5, 0.5), hole_width_range=(0.5, 0.5),
                                  fill=0, p=1.0),
        "erase": A.Erasing(scale=(0.02, 0.33), ratio=(0.3, 3.3), fill=0, p=1.0),
        "rot90": A.RandomRotate90(p=1.0),  # a random multiple of 90°, ours a fixed one: the same work
    }
    # sharpness (PIL's smooth-blend), perspective (corner jitter) and RandAugment have no same-semantics op
    return {name: (lambda img, t=t: t(image=img)["image"]) for name, t in table.items()}


def per_image_seconds(fn, images, repeats: int) -> float:
    """Best of *repeats* passes over *images*, in seconds per image."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for img in images:
            fn(img)
        best = min(best, time.perf_counter() - t0)
    return best / len(images)


def bench(size: int, n_images: int, repeats: int) -> dict[str, tuple[float, float, float | None]]:
    """(ours, torchvision, albumentations or None) seconds per image for every op at one size."""
    rng = np.random.default_rng(0)
    # Smooth random images (blurred noise) so histogram ops see realistic, not uniform, statistics.
    images = [cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (5, 5), 0) for _ in range(n_images)]
    tensors = [torch.from_numpy(img).permute(2, 0, 1).contiguous() for img in images]
    albu = albumentations_equivalents(size)
    results = {}
    for name, (spec, tv) in equivalents(size).items():
        pipeline = build_pipeline(spec)
        op_rng = np.random.default_rng(1)
        ours = per_image_seconds(lambda img: pipeline(img, op_rng), images, repeats)
        theirs = per_image_seconds(tv, tensors, repeats)
        al = per_image_seconds(albu[name], images, repeats) if name in albu else None
        results[name] = (ours, theirs, al)
    return results


def geomean(values: list[float]) -> float:
    """Geometric mean."""
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main() -> None:
    """Run the comparison and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="32,224")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    table = {size: bench(size, args.images if size <= 64 else max(8, args.images // 4), args.repeats) for size in sizes}
    with_albu = any(r[2] is not None for r in table[sizes[0]].values())
    cols = ["ours", "v2", "v2/ours"] + (["albu", "albu/ours"] if with_albu else [])
    print("| op | " + " | ".join(f"{c} {s}px" for s in sizes for c in cols) + " |")
    print("|" + "---|" * (1 + len(cols) * len(sizes)))
    for name in table[sizes[0]]:
        cells = []
        for s in sizes:
            ours, theirs, al = table[s][name]
            cells += [f"{ours * 1e6:.1f}", f"{theirs * 1e6:.1f}", f"{theirs / ours:.1f}×"]
            if with_albu:
                cells += ["—", "—"] if al is None else [f"{al * 1e6:.1f}", f"{al / ours:.1f}×"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("(times in µs per image)")
    print()
    for s in sizes:
        rows = table[s].values()
        line = (f"{s}x{s}: geometric mean speed-up over torchvision.transforms.v2 = "
                f"{geomean([t / o for o, t, _ in rows]):.1f}× ({len(table[s])} ops)")
        albu_rows = [(o, a) for o, _, a in rows if a is not None]
        if albu_rows:
            line += f"; over albumentations = {geomean([a / o for o, a in albu_rows]):.1f}× ({len(albu_rows)} ops)"
        print(line + ", 1 thread")


if __name__ == "__main__":
    main()
