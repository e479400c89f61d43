"""``webdataset:PATTERN`` — WebDataset tar shards, read with random access, and ``vistrain datasets pack``.

A shard is a POSIX tar file whose members are samples: files sharing a key (``000123.jpg``,
``000123.cls``), with the image under an image extension and the class index, as text, under ``cls``.
PATTERN uses WebDataset's brace notation (``train-{000000..000099}.tar``) on local or shared storage.

The shards are indexed once (each member's place in its tar: the headers are read, not the images; the
index is cached beside the user's cache folder), so a shard set is an image set like a folder of files:
split, shuffled and shared out across DDP ranks and loader workers exactly as one is, every sample seen once
per epoch, and a resumed run continues at the very batch it stopped at. Class names come from a
``classes.txt`` beside the first shard (one per line, in index order), else the indices themselves.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from vistrain.data.decode import ImageDecodeError
from vistrain.data.imagefolder import PathList, sample_headers
from vistrain.data.source import DataSource, ImageSet, own_splits_line
from vistrain.errors import DataError

IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp", "ppm", "pgm", "bmp", "tif", "tiff")
BLOCK = 512
INDEX_VERSION = 1


def expand(pattern: str) -> list[str]:
    """The shard files of *pattern* (WebDataset's braces and ``::``, and shell wildcards); remote URLs and a
    pattern that matches no file are one-line errors."""
    from webdataset.shardlists import expand_urls

    if "://" in pattern or pattern.startswith("pipe:"):
        raise DataError(f"webdataset:{pattern}: vistrain reads shards on local or shared storage (a path), "
                        "not from URLs", hint="copy or mount the shards and give their path")
    paths: list[str] = []
    for item in expand_urls(os.path.expanduser(pattern)):
        paths += sorted(glob.glob(item)) if glob.has_magic(item) else ([item] if os.path.isfile(item) else [])
    if not paths:
        raise DataError(f"webdataset pattern {pattern!r} matches no shard file",
                        hint="check the folder and the braces, e.g. webdataset:/data/train-{000000..000009}.tar")
    return paths


def _octal(field: bytes) -> int:
    text = field.split(b"\0", 1)[0].strip()
    if field[:1] == b"\x80":  # GNU base-256 for large sizes
        return int.from_bytes(field[1:], "big")
    return int(text, 8) if text else 0


def _pax_path(data: bytes) -> str | None:
    for record in data.split(b"\n"):
        _length, _, rest = record.partition(b" ")
        key, _, value = rest.partition(b"=")
        if key == b"path":
            return value.decode("utf-8", "surrogateescape")
    return None


def read_members(path: str) -> Iterable[tuple[str, int, int]]:
    """(name, data offset, size) of every regular file in the tar at *path*, reading only its headers
    (ustar, GNU long names and pax paths)."""
    with open(path, "rb") as fh:
        offset, long_name = 0, None
        while True:
            fh.seek(offset)
            head = fh.read(BLOCK)
            if not head or head == b"\0" * BLOCK:
                return
            try:
                if len(head) < BLOCK or _octal(head[148:156]) != sum(head[:148]) + 256 + sum(head[156:]):
                    raise ValueError("bad header checksum")
                size = _octal(head[124:136])
            except ValueError:
                raise DataError(f"{path!r} is not a tar file (or it is damaged at byte {offset})",
                                hint="give WebDataset shards: uncompressed tar files") from None
            kind = head[156:157]
            data_at = offset + BLOCK
            if kind in (b"L", b"x"):
                fh.seek(data_at)
                extra = fh.read(size)
                long_name = extra.rstrip(b"\0").decode("utf-8", "surrogateescape") if kind == b"L" else _pax_path(extra)
            elif kind in (b"0", b"\0", b"7"):
                name = long_name
                if name is None:
                    prefix = head[345:500].split(b"\0", 1)[0] if head[257:262] == b"ustar" else b""
                    base = head[0:100].split(b"\0", 1)[0]
                    name = (prefix + b"/" + base if prefix else base).decode("utf-8", "surrogateescape")
                long_name = None
                yield name, data_at, size
            else:
                long_name = None
            offset = data_at + -(-size // BLOCK) * BLOCK


def _split_name(name: str) -> tuple[str, str]:
    """WebDataset's key and extension: the name up to the first dot of its last part, and the rest."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower() if dot else ""


def index_shard(path: str) -> dict[str, np.ndarray]:
    """One shard's samples: key, image offset and size, label (-1 without a ``cls``)."""
    keys, offsets, sizes, labels = [], [], [], []
    current, image, label = None, None, -1

    def flush() -> None:
        if current is not None and image is not None:
            keys.append(current)
            offsets.append(image[0])
            sizes.append(image[1])
            labels.append(label)

    with open(path, "rb") as fh:
        for name, offset, size in read_members(path):
            key, ext = _split_name(name)
            if key != current:
                flush()
                current, image, label = key, None, -1
            if ext in IMAGE_SUFFIXES and image is None:
                image = (offset, size)
            elif ext == "cls":
                fh.seek(offset)
                text = fh.read(size).strip()
                try:
                    label = int(text)
                except ValueError:
                    raise DataError(f"{path!r}: sample {key!r} has a cls that is not a class index: {text[:20]!r}",
                                    hint="write each sample's class index as text in its .cls member") from None
        flush()
    return {"keys": np.array(keys, dtype=object), "offsets": np.array(offsets, dtype=np.int64),
            "sizes": np.array(sizes, dtype=np.int64), "labels": np.array(labels, dtype=np.int64)}


def _cache_file(path: str) -> Path:
    stat = os.stat(path)
    key = f"{INDEX_VERSION}:{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}"
    home = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return home / "vistrain" / "shard-index" / f"{hashlib.sha1(key.encode()).hexdigest()}.npz"


def cached_index(path: str) -> dict[str, np.ndarray]:
    """:func:`index_shard`, kept in the user's cache folder (keyed by path, size and modification time)."""
    cache = _cache_file(path)
    try:
        with np.load(cache, allow_pickle=False) as saved:
            return {"keys": saved["keys"].astype(object), **{k: saved[k] for k in ("offsets", "sizes", "labels")}}
    except (OSError, KeyError, ValueError):
        pass
    index = index_shard(path)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.npz")
        np.savez(tmp, keys=index["keys"].astype(str), offsets=index["offsets"], sizes=index["sizes"],
                 labels=index["labels"])
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home: index again next time
    return index


class ShardImageSet(ImageSet):
    """Samples of WebDataset shards, read by offset (one open file per shard and process)."""

    def __init__(self, shards: list[str], shard_of: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
                 labels: np.ndarray, keys: PathList):
        self.shards = list(shards)
        self.shard_of = np.asarray(shard_of, dtype=np.int32)
        self.offsets, self.sizes = np.asarray(offsets, np.int64), np.asarray(sizes, np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.keys = keys
        self._files: dict[int, int] = {}

    def __getstate__(self):  # open file descriptors stay in their process
        return {**self.__dict__, "_files": {}}

    def raw(self, index: int) -> bytes:
        shard = int(self.shard_of[index])
        try:
            fd = self._files.get(shard)
            if fd is None:
                fd = self._files[shard] = os.open(self.shards[shard], os.O_RDONLY)
            data = os.pread(fd, int(self.sizes[index]), int(self.offsets[index]))
        except OSError as exc:
            raise ImageDecodeError(f"cannot read {self.name(index)!r}: {exc.strerror or exc}") from None
        if len(data) != int(self.sizes[index]):
            raise ImageDecodeError(f"{self.name(index)!r} is cut short (the shard changed since it was indexed)")
        return data

    def image(self, index: int) -> np.ndarray:
        from vistrain.data.decode import decode

        try:
            return decode(self.raw(index), repr(self.name(index)))
        except ImageDecodeError as exc:
            raise DataError(str(exc), hint="run 'vistrain datasets check' on the shards to list broken samples") from None

    def name(self, index: int) -> str:
        return f"{self.shards[int(self.shard_of[index])]}#{self.keys[index]}"


def _shard_set(shards: list[str]) -> ShardImageSet:
    """The samples of *shards*, indexed (each shard once, cached)."""
    parts = []
    for i, path in enumerate(shards):
        index = cached_index(path)
        if not len(index["keys"]):
            raise DataError(f"shard {path!r} has no images (no member with an image extension: "
                            f"{', '.join(IMAGE_SUFFIXES)})", hint="check it is a WebDataset shard: 000001.jpg, 000001.cls...")
        parts.append((i, index))
    labels = np.concatenate([p["labels"] for _, p in parts])
    return ShardImageSet(shards, np.concatenate([np.full(len(p["keys"]), i, np.int32) for i, p in parts]),
                         np.concatenate([p["offsets"] for _, p in parts]), np.concatenate([p["sizes"] for _, p in parts]),
                         labels, PathList([str(k) for _, p in parts for k in p["keys"]]))


def load_webdataset(arg: str | None, cfg) -> DataSource:
    """Load ``webdataset:PATTERN``, or ``webdataset:DIR``: the folder ``vistrain datasets pack`` wrote, its
    ``train-*.tar`` shards with its ``val-*.tar`` and ``test-*.tar`` as the dataset's own splits."""
    if not arg:
        raise DataError("webdataset needs a shard pattern", hint="use --data webdataset:/data/train-{000000..000009}.tar")
    folder = Path(arg).expanduser()
    own: dict[str, ShardImageSet | None] = {"val": None, "test": None}
    info = []
    if folder.is_dir():
        found = {split: sorted(glob.glob(str(folder / f"{split}-*.tar"))) for split in ("train", "val", "test")}
        if not found["train"]:
            raise DataError(f"{str(folder)!r} has no train-*.tar shards",
                            hint="give the folder 'vistrain datasets pack' wrote, or a shard pattern")
        images = _shard_set(found["train"])
        for split in own:
            own[split] = _shard_set(found[split]) if found[split] else None
        used = [split for split, part in own.items() if part is not None]
        if used:
            sizes = {"train": len(images), **{u: len(own[u]) for u in used}}
            info.append(own_splits_line(f"webdataset:{arg}", [f"{s}-*.tar ({n:,} images)" for s, n in sizes.items()],
                                        used))
        shards = found["train"]
    else:
        shards = expand(arg)
        images = _shard_set(shards)
    classes = _class_names(shards[0], images.labels)
    channels, size = sample_headers(images, repr(arg))
    for part in own.values():
        if part is not None and len(part.labels) and int(part.labels.max()) >= len(classes):
            raise DataError(f"webdataset:{arg}: a val or test shard uses class index {int(part.labels.max())}, "
                            f"and the training shards know {len(classes)} classes", hint="pack the splits together")
    return DataSource(f"webdataset:{arg}", classes, images, test=own["test"], val=own["val"], channels=channels,
                      image_size=size, info=info)


def _class_names(first_shard: str, labels: np.ndarray) -> list[str]:
    path = Path(first_shard).with_name("classes.txt")
    known = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    if path.is_file():
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(names) < known:
            raise DataError(f"{str(path)!r} names {len(names)} classes, and the shards use class index {known - 1}",
                            hint="list one class name per line, in index order")
        return names
    return [str(i) for i in range(known)]


# --- vistrain datasets pack ---------------------------------------------------------------------


def pack(images: ImageSet, out: Path, prefix: str, *, size: int, quality: int = 90, shard_mb: float = 256.0,
         progress: Callable[[int], None] = lambda n: None) -> list[str]:
    """Write *images* as WebDataset shards ``out/prefix-000000.tar``...: each JPEG-encoded with its shorter side
    at most *size* pixels (the aspect ratio kept), its label as ``cls``; returns the shard paths."""
    import cv2
    from webdataset import ShardWriter

    from vistrain.data.geometry import resize

    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    pattern = str(out / f"{prefix}-%06d.tar")
    with ShardWriter(pattern, maxsize=int(shard_mb * 1e6), maxcount=1_000_000, verbose=0) as sink:
        for i in range(len(images)):
            try:
                img = images.image(i)
            except DataError:
                progress(1)
                continue  # unreadable: `datasets check` names it; the pack leaves it out
            h, w = img.shape[:2]
            if min(h, w) > size:
                scale = size / min(h, w)
                img = resize(img, max(1, round(h * scale)), max(1, round(w * scale)))
            bgr = img[..., ::-1] if img.shape[2] == 3 else img
            ok, data = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
            if not ok:
                raise DataError(f"cannot encode {images.name(i)!r} as JPEG")
            sample = {"__key__": f"{i:09d}", "jpg": data.tobytes()}
            if int(images.labels[i]) >= 0:
                sample["cls"] = str(int(images.labels[i])).encode()
            sink.write(sample)
            progress(1)
        written = [pattern % n for n in range(sink.shard)]
    return [p for p in written if os.path.exists(p)]


def shard_pattern(paths: list[str]) -> str:
    """The brace pattern naming *paths* (``dir/train-{000000..000011}.tar``)."""
    if len(paths) == 1:
        return paths[0]
    head, first = os.path.split(paths[0])
    last = os.path.basename(paths[-1])
    stem, number = first.rsplit("-", 1)[0], first.rsplit("-", 1)[1].split(".")[0]
    return os.path.join(head, f"{stem}-{{{number}..{last.rsplit('-', 1)[1].split('.')[0]}}}.tar")
