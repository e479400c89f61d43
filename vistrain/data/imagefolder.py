"""Image files as a lazy image set, and ``imagefolder:PATH`` (the torchvision layout ``PATH/<class>/<image>``).

The scan lists file names: nothing is decoded and no image is kept in memory. Only the headers of a few
files are read, for the channels and for whether the images share one size. A file that turns out
unreadable while training is skipped and reported by the loader (see :mod:`vistrain.data.pipeline`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vistrain.data.decode import (HEIF_EXTENSIONS, HEIF_HINT, IMAGE_EXTENSIONS, ImageDecodeError, header,
                                  heif_available, read_bytes, read_image_file)
from vistrain.data.source import DataSource, ImageSet, own_splits_line
from vistrain.errors import DataError

HEADER_SAMPLE = 48  # files whose headers are read to learn the channels and whether sizes are uniform
HEADER_BYTES = 1 << 17  # a JPEG's size is in its first segments (after EXIF, which is at most 64 KB)
DECODE_SAMPLE = 4  # of those, decoded in full: a folder of broken files is refused at once


class PathList:
    """Many file paths in two NumPy arrays (UTF-8 bytes and offsets) instead of a Python string each: a small,
    fixed memory cost per file that worker processes receive in one piece."""

    def __init__(self, paths: Sequence[str]):
        encoded = [os.fsencode(p) for p in paths]
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=self._offsets[1:])
        self._blob = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy() if encoded else np.zeros(0, np.uint8)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index: int) -> str:
        start, end = self._offsets[index], self._offsets[index + 1]
        return os.fsdecode(self._blob[start:end].tobytes())

    def take(self, indices: np.ndarray) -> PathList:
        """The paths at *indices*, in that order."""
        return PathList([self[int(i)] for i in indices])

    @property
    def nbytes(self) -> int:
        """Memory held."""
        return int(self._blob.nbytes + self._offsets.nbytes)


class FileImageSet(ImageSet):
    """Images read from files on demand; :meth:`raw` hands a loader the encoded bytes so that it can decode
    them at the size it needs."""

    def __init__(self, paths: Sequence[str] | PathList, labels: np.ndarray, channels: int = 3):
        self.paths = paths if isinstance(paths, PathList) else PathList(list(paths))
        self.labels = np.asarray(labels, dtype=np.int64)
        self.channels = channels
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths for {len(self.labels)} labels")

    def image(self, index: int) -> np.ndarray:
        try:
            return read_image_file(self.paths[index])
        except ImageDecodeError as exc:
            raise DataError(str(exc), hint="run 'vistrain datasets check' on the dataset to list broken files") from None

    def raw(self, index: int) -> bytes:
        return read_bytes(self.paths[index])

    def head(self, index: int) -> bytes:
        """The first bytes of the file: enough for a JPEG's or PNG's size."""
        try:
            with open(self.paths[index], "rb") as fh:
                return fh.read(HEADER_BYTES)
        except OSError as exc:
            raise ImageDecodeError(f"cannot read {self.paths[index]!r}: {exc.strerror or exc}") from None

    def name(self, index: int) -> str:
        return self.paths[index]


def hidden(name: str) -> bool:
    """Whether a file or folder is one that listings leave out: a dot name (``.ipynb_checkpoints``, ``.DS_Store``,
    macOS's ``._photo.jpg`` resource forks, which are not images) or the ``__MACOSX`` folder a zip made on a Mac
    holds them in."""
    return name.startswith(".") or name == "__MACOSX"


def walk_images(folder: Path, root_real: str | None = None, seen: set[str] | None = None) -> tuple[list[str], int]:
    """Image files under *folder* (sorted in each folder), following symlinked folders except those that lead back
    into *root_real* or to a folder already walked (loops, duplicates), and leaving out :func:`hidden` files and
    folders; returns (files, links skipped)."""
    root_real = root_real or os.path.realpath(folder)
    seen = set() if seen is None else seen
    found, skipped_links = [], 0
    for dirpath, dirs, files in os.walk(folder, followlinks=True):
        seen.add(os.path.realpath(dirpath))
        kept = []
        for d in sorted(dirs):
            if hidden(d):
                continue
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                real = os.path.realpath(full)
                if real in seen or real == root_real or real.startswith(root_real + os.sep):
                    skipped_links += 1
                    continue
            kept.append(d)
        dirs[:] = kept
        found += [os.path.join(dirpath, f) for f in sorted(files)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not hidden(f)]
    return found, skipped_links


def images_below(folder: Path) -> tuple[list[str], int]:
    """:func:`walk_images` of a folder that must hold images (``images:DIR``, ``predict DIR``): a folder without
    any is a one-line error that lists the extensions read."""
    found, skipped_links = walk_images(folder)
    if not found:
        raise DataError(f"{str(folder)!r} has no images",
                        hint=f"put {', '.join(sorted(IMAGE_EXTENSIONS))} files in it or in folders below it")
    return found, skipped_links


def check_decoders(paths: Sequence[str], where: str) -> None:
    """A one-line error when *paths* (the images *where*, e.g. "in 'DIR'") hold HEIC/HEIF images and pillow-heif,
    which reads them, is not installed: found before anything runs, not as thousands of unreadable images."""
    heif = [f for f in paths if f.lower().endswith(HEIF_EXTENSIONS)]
    if heif and not heif_available():
        raise DataError(f"{len(heif):,} HEIC/HEIF image(s) {where} (e.g. {heif[0]!r}) cannot be read", hint=HEIF_HINT)


def sample_headers(images: ImageSet, where: str) -> tuple[int, tuple[int, int] | None]:
    """(channels, the shared (h, w) or None) from the headers of up to HEADER_SAMPLE images spread over *images*;
    the first DECODE_SAMPLE of them with a readable header are decoded too (a JPEG at 1/8 size).

    An image that cannot be read is left to the loader (it reports it when it meets it); when none of the
    sampled images can be read, the dataset is refused."""
    n = len(images)
    picks = sorted({int(i) for i in np.linspace(0, n - 1, min(n, HEADER_SAMPLE))}) if n else []
    sizes, channels, read, decoded = set(), 1, 0, 0
    for i in picks:
        info = _header_of(images, i, decode_it=decoded < DECODE_SAMPLE)
        decoded += 1
        if info is None:
            continue
        read += 1
        sizes.add(info[:2])
        channels = max(channels, info[2])
    if picks and not read:
        raise DataError(f"none of the {len(picks)} images sampled in {where} could be read",
                        hint="check the files are valid images ('vistrain datasets check' lists broken ones)")
    return channels, (next(iter(sizes)) if len(sizes) == 1 else None)


def _header_of(images: ImageSet, index: int, decode_it: bool = False) -> tuple[int, int, int] | None:
    from vistrain.data.decode import decode

    try:
        info = header(images.head(index))
        if info is None or decode_it:  # a format without a known header, or one of the few checked in full
            img = decode(images.raw(index), min_size=(1, 1))
            info = info or (img.shape[0], img.shape[1], img.shape[2])
    except ImageDecodeError:
        return None
    return info


def scan_folder(root: Path, every_class: bool = True) -> tuple[list[str], list[str], list[int], int]:
    """Classes, image paths, labels and the number of symlinked folders left out because they lead back
    into the tree; missing, empty and class-less folders are one-line errors, and so (with *every_class*, for
    the training images) is a class folder without images."""
    if not root.exists():
        raise DataError(f"image folder {str(root)!r} does not exist", hint="check the path after 'imagefolder:'")
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a folder", hint="point imagefolder: at a folder laid out DIR/<class>/<image>")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not hidden(d.name))
    if not classes:
        raise DataError(f"image folder {str(root)!r} has no class subfolders", hint="lay it out as DIR/<class>/<image>.png")
    paths: list[str] = []
    labels: list[int] = []
    root_real, seen, skipped_links = os.path.realpath(root), set(), 0
    empty = []
    for label, name in enumerate(classes):
        files, links = walk_images(root / name, root_real, seen)
        paths += files
        labels += [label] * len(files)
        skipped_links += links
        empty += [] if files else [name]
    if not paths:
        raise DataError(f"image folder {str(root)!r} has no images",
                        hint=f"put {', '.join(sorted(IMAGE_EXTENSIONS))} files in its class subfolders")
    check_decoders(paths, f"in {str(root)!r}")
    if every_class and empty:  # torchvision's ImageFolder refuses it too: the model would get a class it never sees
        shown = ", ".join(repr(n) for n in empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        raise DataError(f"image folder {str(root)!r}: class folder(s) {shown} hold no images",
                        hint="put images in them or remove them; a folder whose name starts with '.' is left out")
    return classes, paths, labels, skipped_links


# the split folders of DIR/train/<class>/..., DIR/val/<class>/..., DIR/test/<class>/... (Ultralytics' and Kaggle's
# layout; fastai's "valid"), by the split each names
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def split_folders(root: Path) -> dict[str, Path] | None:
    """{split: folder} when *root* holds a ``train`` folder and otherwise only val/valid/validation and test
    folders (hidden ones aside); None for the plain DIR/<class>/ layout."""
    if not root.is_dir():
        return None
    found = {d.name: d for d in root.iterdir() if d.is_dir() and not hidden(d.name)}
    if "train" not in found or any(name not in SPLIT_NAMES for name in found):
        return None
    vals = sorted(name for name in found if SPLIT_NAMES[name] == "val")
    if len(vals) > 1:
        raise DataError(f"image folder {str(root)!r} has {len(vals)} val folders: {', '.join(vals)}",
                        hint="keep one of them, or rename the others")
    return {SPLIT_NAMES[name]: folder for name, folder in found.items()}


def _split_set(folder: Path, classes: list[str]) -> tuple[FileImageSet | None, str | None]:
    """The images of a val or test folder laid out <class>/<image>, labelled by *classes* (train's); (None, why)
    when the folder holds its images without class folders (e.g. a competition's unlabelled test images)."""
    if not any(d.is_dir() and not hidden(d.name) for d in folder.iterdir()):
        return None, (f"left out {str(folder)!r}: its images are not in class folders (no labels); use it as "
                      f"unlabelled images (--set data.unlabelled=images:{folder}) or label it with 'vistrain predict'")
    names, paths, labels, _links = scan_folder(folder, every_class=False)
    unknown = [name for name in names if name not in classes]
    if unknown:
        raise DataError(f"{str(folder)!r} has class folder(s) {', '.join(repr(n) for n in unknown[:5])} that "
                        f"{str(folder.parent / 'train')!r} has not",
                        hint="give every val and test class a folder of training images, with the same name")
    index = {name: i for i, name in enumerate(classes)}
    return FileImageSet(paths, np.array([index[names[label]] for label in labels]), 3), None


def load_imagefolder(arg: str | None, cfg) -> DataSource:
    """Load ``imagefolder:PATH``: one class per subfolder, its images anywhere below it; or, where PATH holds
    ``train/`` with ``val/`` (``valid/``, ``validation/``) and/or ``test/`` beside it, each laid out that way,
    the dataset's own splits."""
    if not arg:
        raise DataError("imagefolder needs a path", hint="use --data imagefolder:PATH")
    root = Path(arg).expanduser()
    layout = split_folders(root)
    classes, paths, labels, skipped_links = scan_folder(layout["train"] if layout else root)
    images = FileImageSet(paths, np.array(labels), 3)
    images.channels, size = sample_headers(images, repr(str(root)))
    notes = [f"left out {skipped_links} symlinked folder(s) of {str(root)!r} that lead back into it (a loop or "
             f"the same images twice)"] if skipped_links else []
    own: dict[str, FileImageSet | None] = {"val": None, "test": None}
    info = []
    if layout:
        for split in own:
            if split in layout:
                own[split], why = _split_set(layout[split], classes)
                notes += [why] if why else []
        for part in own.values():
            if part is not None:
                part.channels = images.channels
        used = [s for s, part in own.items() if part is not None]
        info.append(own_splits_line(f"imagefolder:{arg}", [f"train/ ({len(images):,} images)"]
                                    + [f"{layout[s].name}/ ({len(own[s]):,})" for s in used], used))
    return DataSource(f"imagefolder:{arg}", classes, images, test=own["test"], val=own["val"],
                      channels=images.channels, image_size=size, notes=notes, info=info)


def load_images(arg: str | None, cfg) -> DataSource:
    """``images:PATH``: every image below a folder (or one image file), without labels: an unlabelled pool
    (``data.unlabelled``)."""
    if not arg:
        raise DataError("images needs a path", hint="use images:PATH, e.g. --set data.unlabelled=images:~/photos")
    root = Path(arg).expanduser()
    if not root.exists():
        raise DataError(f"image folder {str(root)!r} does not exist", hint="check the path after 'images:'")
    paths, skipped_links = images_below(root) if root.is_dir() else ([str(root)], 0)
    check_decoders(paths, f"in {str(root)!r}")
    images = FileImageSet(paths, np.full(len(paths), -1, dtype=np.int64), 3)
    images.channels, size = sample_headers(images, repr(str(root)))
    notes = [f"left out {skipped_links} symlinked folder(s) of {str(root)!r} that lead back into it"] if skipped_links else []
    return DataSource(f"images:{arg}", [], images, channels=images.channels, image_size=size, notes=notes)
