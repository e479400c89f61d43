"""``csv:FILE`` — a table of ``path,label`` rows; paths relative to the file's folder, any label text.

A first row ``path,label`` or ``path,label,split`` (any case) is a header. Under the second, the third column
names each row's split: ``train`` (or empty), ``val`` (``valid``, ``validation``) or ``test``: the dataset's own
splits, as an image folder's ``train/``, ``val/`` and ``test/``. Without it, further columns are ignored. The class names are the training rows' labels, sorted (numerically
when they are all whole numbers). Every file must exist when the table is read: a row naming a missing file, an
unknown split or a val/test label no training row has is a one-line error that gives its line number.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from vistrain.data.imagefolder import SPLIT_NAMES, FileImageSet, check_decoders, sample_headers
from vistrain.data.source import DataSource, own_splits_line
from vistrain.errors import DataError


def _class_order(labels: set[str]) -> list[str]:
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def read_table(path: Path) -> tuple[list[str], list[str], list[str], list[int]]:
    """(absolute image paths, label texts, splits (train, val or test), line numbers) of the table at *path*."""
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc.strerror or exc}", hint="check the path after 'csv:'") from None
    base = path.parent
    paths, labels, splits, lines = [], [], [], []
    has_split = False
    with fh:
        try:
            for line, row in enumerate(csv.reader(fh), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if line == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]:
                    has_split = len(row) > 2 and row[2].strip().lower() == "split"
                    continue
                if len(row) < 2 or not row[0].strip() or not row[1].strip():
                    raise DataError(f"{str(path)!r} line {line}: expected 'path,label', got {','.join(row)[:80]!r}",
                                    hint="one image per row: its path (relative to the table's folder) and its label")
                image = base / os.path.expanduser(row[0].strip())
                if not image.is_file():
                    raise DataError(f"{str(path)!r} line {line}: {row[0].strip()!r} does not exist ({image})",
                                    hint="fix the path (relative to the table's folder) or remove the row")
                split = row[2].strip().lower() if has_split and len(row) > 2 and row[2].strip() else "train"
                if split not in SPLIT_NAMES:
                    raise DataError(f"{str(path)!r} line {line}: unknown split {row[2].strip()!r}",
                                    hint="the third column is train, val (valid, validation) or test, or empty")
                paths.append(str(image))
                labels.append(row[1].strip())
                splits.append(SPLIT_NAMES[split])
                lines.append(line)
        except UnicodeDecodeError:
            raise DataError(f"{str(path)!r} is not a UTF-8 text table", hint="save it as CSV (UTF-8)") from None
        except csv.Error as exc:
            raise DataError(f"{str(path)!r} is not a readable CSV table: {exc}") from None
    if not paths:
        raise DataError(f"{str(path)!r} lists no images", hint="add rows 'path,label'")
    return paths, labels, splits, lines


def load_csv(arg: str | None, cfg) -> DataSource:
    """Load ``csv:FILE``."""
    if not arg:
        raise DataError("csv needs a file", hint="use --data csv:FILE with rows 'path,label'")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise DataError(f"table {str(path)!r} does not exist", hint="check the path after 'csv:'")
    paths, label_texts, splits, lines = read_table(path)
    rows = {name: [i for i, split in enumerate(splits) if split == name] for name in ("train", "val", "test")}
    if not rows["train"]:
        raise DataError(f"{str(path)!r} has no training rows", hint="mark training rows 'train' (or leave the split empty)")
    check_decoders(paths, f"in {str(path)!r}")
    classes = _class_order({label_texts[i] for i in rows["train"]})
    index = {name: i for i, name in enumerate(classes)}
    parts: dict[str, FileImageSet | None] = {}
    for name, picked in rows.items():
        unknown = next((i for i in picked if label_texts[i] not in index), None)
        if unknown is not None:
            raise DataError(f"{str(path)!r} line {lines[unknown]}: label {label_texts[unknown]!r} of a {name} row is on "
                            f"no training row", hint="give every val and test class training rows, with the same label")
        parts[name] = FileImageSet([paths[i] for i in picked],
                                   np.array([index[label_texts[i]] for i in picked], dtype=np.int64), 3) if picked else None
    images = parts["train"]
    images.channels, size = sample_headers(images, repr(str(path)))
    info = []
    for part in (parts["val"], parts["test"]):
        if part is not None:
            part.channels = images.channels
    own = [name for name in ("val", "test") if parts[name] is not None]
    if own:
        info.append(own_splits_line(f"csv:{arg}", [f"{len(rows[name]):,} {name} rows" for name in ("train", *own)], own))
    return DataSource(f"csv:{arg}", classes, images, test=parts["test"], val=parts["val"], channels=images.channels,
                      image_size=size, info=info)
