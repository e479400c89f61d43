"""``hf:NAME_OR_PATH`` — a Hugging Face ``datasets`` dataset: a folder written by ``save_to_disk``, local parquet or
arrow files, or a Hub name (downloaded only with ``--download``).

The data stays in Arrow, memory-mapped; images are kept encoded and decoded by vistrain's loaders at the size
they need (the image column is read with ``decode=False``). The image and label columns are
``data.image_column`` and ``data.label_column`` (default ``image`` and ``label``). A dataset with splits uses
``train`` as the labelled pool (val and test are carved out of it as for any dataset) and keeps its own
``test`` split when it has one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vistrain.data.decode import ImageDecodeError, read_bytes
from vistrain.data.imagefolder import sample_headers
from vistrain.data.source import DataSource, ImageSet
from vistrain.errors import DataError

EXTENSIONS = {".parquet": "parquet", ".arrow": "arrow"}


def _import_datasets():
    try:
        import datasets
    except ImportError:
        raise DataError("hf: datasets need the Hugging Face datasets package",
                        hint="pip install 'vistrain[hf]'") from None
    datasets.disable_progress_bars()  # vistrain reports its own progress; theirs would flood logs
    datasets.logging.set_verbosity_error()
    return datasets


class HFImageSet(ImageSet):
    """The rows of an Arrow-backed dataset: images still encoded, labels in this run's class order."""

    def __init__(self, table, image_column: str, labels: np.ndarray, where: str):
        self.table = table.select_columns([image_column])
        self.column = image_column
        self.labels = np.asarray(labels, dtype=np.int64)
        self.where = where

    def raw(self, index: int) -> bytes:
        cell = self.table[int(index)][self.column]
        if isinstance(cell, dict):
            if cell.get("bytes"):
                return cell["bytes"]
            if cell.get("path"):
                return read_bytes(cell["path"])
        if isinstance(cell, (bytes, bytearray)):
            return bytes(cell)
        raise ImageDecodeError(f"{self.name(index)} holds no image bytes")

    def image(self, index: int) -> np.ndarray:
        from vistrain.data.decode import decode

        try:
            return decode(self.raw(index), self.name(index))
        except ImageDecodeError as exc:
            raise DataError(str(exc)) from None

    def name(self, index: int) -> str:
        return f"{self.where} row {index}"


def _open(datasets, arg: str, download: bool):
    """The dataset or dataset dict *arg* names (see the module)."""
    path = Path(arg).expanduser()
    if path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
        return datasets.load_from_disk(str(path))
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in EXTENSIONS) if path.is_dir() else []
    if files:
        kinds = {EXTENSIONS.get(p.suffix) for p in files}
        if None in kinds or len(kinds) > 1:
            raise DataError(f"hf:{arg}: expected parquet or arrow files, one kind, found {', '.join(sorted(p.name for p in files)[:5])}",
                            hint="point hf: at a save_to_disk folder, or at .parquet or .arrow files")
        return datasets.load_dataset(kinds.pop(), data_files={"train": [str(p) for p in files]})
    if path.exists():
        raise DataError(f"hf:{arg} holds no dataset (no save_to_disk folder, parquet or arrow files)",
                        hint="point hf: at a save_to_disk folder, or at .parquet or .arrow files")
    if not download:
        raise DataError(f"hf:{arg} is not a local dataset, and vistrain downloads only when asked",
                        hint=f"pass --download to fetch {arg!r} from the Hugging Face Hub, or give a local path")
    try:
        return datasets.load_dataset(arg)
    except Exception as exc:  # noqa: BLE001 - the Hub's many errors become one line
        raise DataError(f"could not load hf:{arg} from the Hugging Face Hub: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}", hint="check the name and the network") from None


VAL_SPLITS = ("validation", "valid", "val")


def _split(dataset, name: str):
    """(train pool, val split's name or "", val split or None, test split or None) of a dataset or dataset dict."""
    if hasattr(dataset, "keys") and not hasattr(dataset, "features"):  # a DatasetDict
        names = list(dataset.keys())
        if "train" not in names:
            return dataset[names[0]], "", None, None
        val = next((n for n in VAL_SPLITS if n in names), "")
        return dataset["train"], val, dataset[val] if val else None, dataset["test"] if "test" in names else None
    return dataset, "", None, None


def _labels(table, column: str, classes: list[str] | None, where: str) -> tuple[np.ndarray, list[str]]:
    feature = table.features[column]
    values = table[column]
    names = getattr(feature, "names", None)
    if names:  # a ClassLabel column
        return np.asarray(values, dtype=np.int64), list(names)
    if all(isinstance(v, (int, np.integer)) for v in values[:1000]):
        array = np.asarray(values, dtype=np.int64)
        return array, classes or [str(i) for i in range(int(array.max()) + 1 if len(array) else 0)]
    texts = [str(v) for v in values]
    classes = classes or sorted(set(texts))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(t, -1) for t in texts], dtype=np.int64), classes


def load_hf(arg: str | None, cfg) -> DataSource:
    """Load ``hf:NAME_OR_PATH``."""
    if not arg:
        raise DataError("hf needs a dataset", hint="use --data hf:PATH (save_to_disk folder, parquet) or hf:NAME --download")
    if not cfg.download:  # never reach the Hub unless asked
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    datasets = _import_datasets()
    train, vname, val, test = _split(_open(datasets, arg, cfg.download), arg)
    image_col, label_col = cfg.image_column, cfg.label_column
    for column, key in ((image_col, "data.image_column"), (label_col, "data.label_column")):
        if column not in train.column_names:
            raise DataError(f"hf:{arg} has no column {column!r}; its columns: {', '.join(train.column_names)}",
                            hint=f"name the column with --set {key}=NAME")
    image_feature = train.features[image_col]
    if type(image_feature).__name__ == "Image":
        train, val, test = (t.cast_column(image_col, datasets.Image(decode=False)) if t is not None else None
                            for t in (train, val, test))
    labels, classes = _labels(train, label_col, None, arg)
    images = HFImageSet(train, image_col, labels, f"hf:{arg}")
    test_set = val_set = None
    if test is not None and label_col in test.column_names:
        test_labels, _ = _labels(test, label_col, classes, arg)
        test_set = HFImageSet(test, image_col, test_labels, f"hf:{arg} (test)")
    notes, info = [], []
    if val is not None and label_col in val.column_names:
        val_labels, _ = _labels(val, label_col, classes, arg)
        if np.any(val_labels < 0):  # labels the train split has not (or none): it cannot pick best.pt
            notes.append(f"left out the {vname} split of hf:{arg}: {int(np.sum(val_labels < 0)):,} of "
                         f"its images have no label or one the train split has not; a share of train is the val split")
        else:
            val_set = HFImageSet(val, image_col, val_labels, f"hf:{arg} ({vname})")
            info.append(f"hf:{arg} has its own {vname} split ({len(val_set):,} images): it picks "
                        f"best.pt (data.val_fraction does not apply)")
    channels, size = sample_headers(images, f"hf:{arg}")
    return DataSource(f"hf:{arg}", classes, images, test=test_set, val=val_set, channels=channels, image_size=size,
                      notes=notes, info=info)
