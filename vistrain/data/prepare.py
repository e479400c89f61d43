"""Turn a dataset spec and config into deterministic train / val / unlabelled / test sets."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vistrain.data.source import UNLABELED, ConcatImageSet, DataSource, ImageSet, RelabelledImageSet
from vistrain.data.splits import labelled_subset, stratified_split
from vistrain.errors import DataError, PluginError


@dataclass
class PreparedData:
    """The splits a strategy trains on. ``unlabeled`` keeps true labels (hidden) where known."""

    source: DataSource
    train: ImageSet
    val: ImageSet
    unlabeled: ImageSet | None = None
    test: ImageSet | None = None
    notes: list[str] = field(default_factory=list)  # what the split left out or could not do, for the run's log

    @property
    def classes(self) -> list[str]:
        """Class names, index = label."""
        return self.source.classes


def load_source(spec: str, cfg) -> DataSource:
    """Look *spec* up in the dataset registry and load it."""
    from vistrain.plugins import is_builtin, registry

    entry, arg = registry("dataset").get(spec)
    factory = entry.load()
    try:
        source = factory(arg, cfg)
    except (DataError, PluginError):
        raise
    except Exception as exc:
        if is_builtin(entry.plugin):
            raise
        raise PluginError(f"dataset {spec!r} from plugin {entry.plugin!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(source, DataSource):
        raise PluginError(f"dataset {spec!r} from plugin {entry.plugin!r} returned {type(source).__name__}, not a DataSource")
    if len(source.train) == 0:
        raise DataError(f"dataset {spec!r} is empty")
    return source


def prepare_data(source: DataSource, cfg) -> PreparedData:
    """Split *source* into train/val/test (stratified, seeded) and optionally labelled/unlabelled.

    The val and test splits are the dataset's own when it has them, else ``val_fraction`` and ``test_fraction``
    of the labelled pool.
    """
    labels = source.train.labels
    if np.any(labels == UNLABELED):
        raise DataError(f"dataset {source.name!r} has unlabelled items in its training set",
                        hint="train on a labelled dataset; an unlabelled one goes in data.unlabelled "
                             "(--set data.unlabelled=SPEC) for pseudo-label and noisy-student")
    present = np.unique(labels)
    if len(present) < 2:
        raise DataError(f"dataset {source.name!r} has only {len(present)} class(es); a classifier needs at least 2")
    test = source.test
    test_fraction = getattr(cfg, "test_fraction", 0.0)
    if source.val is not None:  # its own val split: the whole pool trains, less a test split where it has none
        train_idx = np.arange(len(labels))
        if test is None and test_fraction > 0:
            keep, test_pos = stratified_split(labels, test_fraction, cfg.split_seed + 1)
            test = source.train.subset(test_pos)
            train_idx = keep
        val = source.val
    else:
        train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.split_seed)
        if test is None and test_fraction > 0:
            # Carved out of what val left, as a share of the whole pool, so the val split is the same
            # with or without a test split; train.seed never moves it.
            keep, test_pos = stratified_split(labels[train_idx], test_fraction / (1.0 - cfg.val_fraction),
                                              cfg.split_seed + 1)
            test = source.train.subset(train_idx[test_pos])
            train_idx = train_idx[keep]
        val = source.train.subset(val_idx)
    notes = []
    if test is not None and len(test) == 0:  # no figure at all is better than "top-1 0.00 %" on nothing
        why = (f"data.test_fraction {test_fraction:g} takes no image: every class has at most one training "
               f"image left, and it stays in training" if source.test is None else f"dataset {source.name!r} has an empty test split")
        notes.append(f"no test split: {why}; the run is judged on val only")
        test = None
    train = source.train.subset(train_idx)
    unlabeled = source.unlabeled
    if cfg.labels_per_class is not None:
        classes, counts = np.unique(train.labels, return_counts=True)
        if cfg.labels_per_class > counts.min():
            small = classes[counts.argmin()]
            name = source.classes[small] if 0 <= small < len(source.classes) else str(small)
            raise DataError(f"--labels-per-class {cfg.labels_per_class} is larger than class {name!r}, which has "
                            f"{counts.min()} training images after the validation split",
                            hint=f"use at most {counts.min()} (fewer leaves unlabelled images for the pool)")
        lab_idx, unl_idx = labelled_subset(train.labels, cfg.labels_per_class, cfg.split_seed)
        pool = train.subset(unl_idx)
        train = train.subset(lab_idx)
        unlabeled = pool if unlabeled is None else ConcatImageSet(pool, unlabeled)
    if getattr(cfg, "unlabelled", None):
        extra = unlabelled_images(cfg.unlabelled, cfg, source.classes)
        unlabeled = extra if unlabeled is None else ConcatImageSet(unlabeled, extra)
    return PreparedData(source, train, val, unlabeled, test, notes)


def unlabelled_images(spec: str, cfg, classes: list[str]) -> ImageSet:
    """Every image of the dataset *spec* as an unlabelled pool; its labels are kept (hidden, for the
    pseudo-labels' accuracy) where its class names are *classes*, else ``-1``."""
    extra = load_source(spec, cfg.model_copy(update={"name": spec, "unlabelled": None, "labels_per_class": None}))
    images = extra.all_images()
    index = {name: i for i, name in enumerate(classes)}
    mapping = np.array([index.get(name, UNLABELED) for name in extra.classes] + [UNLABELED], dtype=np.int64)
    labels = np.asarray(images.labels, dtype=np.int64)
    return RelabelledImageSet(images, mapping[np.where(labels >= 0, labels, len(extra.classes))])

