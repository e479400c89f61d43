"""``csv:FILE`` — a table of ``path,label`` rows; paths relative to the file's folder, any label text.

A first row ``path,label`` (any case) is a header. The class names are the labels seen, sorted (numerically
when they are all whole numbers). Every file must exist when the table is read: a row naming a missing file
is a one-line error that gives its line number.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from vistrain.data.imagefolder import FileImageSet, sample_headers
from vistrain.data.source import DataSource
from vistrain.errors import DataError


def _class_order(labels: set[str]) -> list[str]:
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def read_table(path: Path) -> tuple[list[str], list[str]]:
    """(absolute image paths, label texts) of the table at *path*."""
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc.strerror or exc}", hint="check the path after 'csv:'") from None
    base = path.parent
    paths, labels = [], []
    with fh:
        try:
            for line, row in enumerate(csv.reader(fh), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if line == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]:
                    continue
                if len(row) < 2 or not row[0].strip() or not row[1].strip():
                    raise DataError(f"{str(path)!r} line {line}: expected 'path,label', got {','.join(row)[:80]!r}",
                                    hint="one image per row: its path (relative to the table's folder) and its label")
                image = base / os.path.expanduser(row[0].strip())
                if not image.is_file():
                    raise DataError(f"{str(path)!r} line {line}: {row[0].strip()!r} does not exist ({image})",
                                    hint="fix the path (relative to the table's folder) or remove the row")
                paths.append(str(image))
                labels.append(row[1].strip())
        except UnicodeDecodeError:
            raise DataError(f"{str(path)!r} is not a UTF-8 text table", hint="save it as CSV (UTF-8)") from None
        except csv.Error as exc:
            raise DataError(f"{str(path)!r} is not a readable CSV table: {exc}") from None
    if not paths:
        raise DataError(f"{str(path)!r} lists no images", hint="add rows 'path,label'")
    return paths, labels


def load_csv(arg: str | None, cfg) -> DataSource:
    """Load ``csv:FILE``."""
    if not arg:
        raise DataError("csv needs a file", hint="use --data csv:FILE with rows 'path,label'")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise DataError(f"table {str(path)!r} does not exist", hint="check the path after 'csv:'")
    paths, label_texts = read_table(path)
    classes = _class_order(set(label_texts))
    index = {name: i for i, name in enumerate(classes)}
    images = FileImageSet(paths, np.array([index[t] for t in label_texts], dtype=np.int64), 3)
    images.channels, size = sample_headers(images, repr(str(path)))
    return DataSource(f"csv:{arg}", classes, images, channels=images.channels, image_size=size)
