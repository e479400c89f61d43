"""Time every augmentation op against its torchvision.transforms.v2 equivalent, one thread each.

Both sides see the same RGB images (ours as uint8 HWC arrays, torchvision's as uint8 CHW
tensors converted beforehand, so no conversion is timed) at 32×32 and 224×224. Prints the
per-op speed ratio (torchvision time / ours) and the geometric mean per size.

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


def per_image_seconds(fn, images, repeats: int) -> float:
    """Best of *repeats* passes over *images*, in seconds per image."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for img in images:
            fn(img)
        best = min(best, time.perf_counter() - t0)
    return best / len(images)


def bench(size: int, n_images: int, repeats: int) -> dict[str, tuple[float, float]]:
    """(ours, torchvision) seconds per image for every op at one size."""
    rng = np.random.default_rng(0)
    # Smooth random images (blurred noise) so histogram ops see realistic, not uniform, statistics.
    images = [cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (5, 5), 0) for _ in range(n_images)]
    tensors = [torch.from_numpy(img).permute(2, 0, 1).contiguous() for img in images]
    results = {}
    for name, (spec, tv) in equivalents(size).items():
        pipeline = build_pipeline(spec)
        op_rng = np.random.default_rng(1)
        ours = per_image_seconds(lambda img: pipeline(img, op_rng), images, repeats)
        theirs = per_image_seconds(tv, tensors, repeats)
        results[name] = (ours, theirs)
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
    header = "| op | " + " | ".join(f"ours {s}px µs | v2 {s}px µs | ratio {s}px" for s in sizes) + " |"
    print(header)
    print("|" + "---|" * (1 + 3 * len(sizes)))
    for name in table[sizes[0]]:
        cells = []
        for s in sizes:
            ours, theirs = table[s][name]
            cells += [f"{ours * 1e6:.1f}", f"{theirs * 1e6:.1f}", f"{theirs / ours:.1f}×"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    means = [f"{geomean([t / o for o, t in table[s].values()]):.1f}×" for s in sizes]
    print("| **geometric mean** | " + " | ".join(f" | | **{m}**" for m in means) + " |")
    print()
    for s, m in zip(sizes, means):
        print(f"{s}x{s}: geometric mean speed-up over torchvision.transforms.v2 = {m} ({len(table[s])} ops, 1 thread)")


if __name__ == "__main__":
    main()
