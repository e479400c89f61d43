"""What upright photos cost: decoding phone photos that carry an EXIF orientation tag, against the same files
without one, and against the PIL loop a torchvision user would write to get them upright.

    python benchmarks/exif.py                       # 40 photos of 4032x3024 (a 12 MP phone), 3 repeats
    python benchmarks/exif.py --count 10 --repeats 1

Writes (once, under --root) the same photo-like pixels twice as JPEG (quality 90): with EXIF orientation 6 (a
portrait photo as phones store it, sideways) and without EXIF. Then, in this process, one image at a time,
timed per image over all files and each variant's median over --repeats:

- vistrain, no EXIF: ``ImageTransform.from_bytes`` with the photo recipe's evaluation geometry at 224 px (the
  header, a reduced JPEG decode, the centre crop);
- vistrain, EXIF 6: the same on the tagged files (the tag is found and read, the image turned upright);
- PIL + ``ImageOps.exif_transpose``, then torchvision ``Resize(256)`` and ``CenterCrop(224)`` on the tagged
  files: what torchvision's ``ImageFolder`` loader gives only when the user adds ``exif_transpose`` (PIL
  decodes the full image unless ``draft`` is called, and torchvision does not call it).

Prints ms per image of each and the ratios, and how far vistrain's crop of the first tagged photo is from PIL's
upright one (and, for scale, the sideways crop of the untagged file).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import numpy as np


def make_photos(root: Path, count: int) -> tuple[list[Path], list[Path]]:
    """*count* photo-like 4032x3024 JPEGs, each written without EXIF and with orientation 6."""
    import cv2
    from PIL import Image

    plain, tagged = [], []
    (root / "plain").mkdir(parents=True, exist_ok=True)
    (root / "tagged").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        p, t = root / "plain" / f"{i:03d}.jpg", root / "tagged" / f"{i:03d}.jpg"
        plain.append(p)
        tagged.append(t)
        if p.exists() and t.exists():
            continue
        h, w = 3024, 4032
        img = np.zeros((h, w, 3), np.uint8)
        img[...] = np.linspace(30, 200, w, dtype=np.uint8)[None, :, None]
        for _ in range(12):
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(100, 800)), colour, -1)
        img = cv2.GaussianBlur(img, (0, 0), 3)
        img = np.clip(img.astype(np.int16) + rng.integers(-12, 12, img.shape, dtype=np.int16), 0, 255).astype(np.uint8)
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(img).save(p, "JPEG", quality=90)
        Image.fromarray(img).save(t, "JPEG", quality=90, exif=exif)
    return plain, tagged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/vistrain-exif", help="where the photos are written (kept for reruns)")
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch
    from PIL import Image, ImageOps
    from torchvision import transforms

    from vistrain.data.pipeline import ImageTransform, InputSpec

    torch.set_num_threads(1)
    plain, tagged = make_photos(Path(args.root), args.count)
    spec = InputSpec(3, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), resize="crop", crop_pct=0.875)
    tf = ImageTransform(spec)
    tv = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.PILToTensor()])

    def vistrain_run(files):
        return [tf.from_bytes(f.read_bytes(), str(f)) for f in files]

    def pil_run(files):
        out = []
        for f in files:
            with Image.open(io.BytesIO(f.read_bytes())) as im:
                out.append(tv(ImageOps.exif_transpose(im).convert("RGB")))
        return out

    runs = {"vistrain, no EXIF": (vistrain_run, plain), "vistrain, EXIF 6": (vistrain_run, tagged),
            "PIL + exif_transpose, EXIF 6": (pil_run, tagged)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs = {}
    for _ in range(args.repeats):
        for name, (fn, files) in runs.items():
            start = time.perf_counter()
            outputs[name] = fn(files)
            times[name].append((time.perf_counter() - start) / len(files) * 1000)

    upright = outputs["vistrain, EXIF 6"][0]
    assert upright.shape == (3, 224, 224)
    print(f"photos: {args.count} of 4032x3024 (EXIF 6: shown 3024x4032), {args.repeats} repeat(s), one thread")
    ms = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:32s} {ms[name]:7.2f} ms/image  (repeats: {', '.join(f'{x:.2f}' for x in t)})")
    print(f"ratio EXIF 6 / no EXIF (vistrain): {ms['vistrain, EXIF 6'] / ms['vistrain, no EXIF']:.3f}")
    print(f"ratio PIL + exif_transpose / vistrain (both EXIF 6): "
          f"{ms['PIL + exif_transpose, EXIF 6'] / ms['vistrain, EXIF 6']:.2f}")
    pil = outputs["PIL + exif_transpose, EXIF 6"][0].float()
    denorm = upright * torch.tensor(spec.std)[:, None, None] * 255 + torch.tensor(spec.mean)[:, None, None] * 255
    sideways = outputs["vistrain, no EXIF"][0] * torch.tensor(spec.std)[:, None, None] * 255 \
        + torch.tensor(spec.mean)[:, None, None] * 255
    print(f"mean absolute difference (0-255) from PIL's upright crop: vistrain's {(denorm - pil).abs().mean():.2f}, "
          f"the untagged file's (sideways) {(sideways - pil).abs().mean():.2f}")


if __name__ == "__main__":
    main()
