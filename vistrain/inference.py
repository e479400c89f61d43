"""A checkpoint at work after training: evaluated on data, predicting image files, or as a k-NN embedding.

Every evaluation of a checkpoint goes through here: ``vistrain eval``, the run's final test split,
the report's val predictions and ``vistrain models knn-eval``. The checkpoint becomes a model through
:func:`vistrain.models.factory.load_model`; its data is prepared again the way its run prepared it
(same dataset, split seed and fractions), so a held-out split stays the same images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vistrain.data.pipeline import ImageTransform, InputSpec, build_loader
from vistrain.errors import CheckpointError, ConfigError, DataError  # noqa: F401 - ConfigError: TTA modes

SPLITS = ("auto", "val", "test", "all")
TTA_MODES = ("none", "flip", "crops", "crops-flip")
TTA_VIEWS = {"none": 0, "flip": 2, "crops": 5, "crops-flip": 10}  # views per image of each mode


class TestTimeAugmentation(torch.nn.Module):
    """A model scored on several views of each image: the mean of their softmax outputs, returned as its log
    (cross-entropy on it is the averaged prediction's negative log-likelihood; top-k ranks it).

    ``flip``: the image and its mirror. ``crops``: the four corners and the centre at the model's size, cut
    from the image resized to size / crop_pct (torchvision's FiveCrop; the loader provides that larger image,
    see :func:`tta_input`); ``crops-flip``: those five and their mirrors (TenCrop).
    """

    __test__ = False  # a model, not a pytest test class

    def __init__(self, model: torch.nn.Module, mode: str, size: int):
        super().__init__()
        if mode not in TTA_MODES or mode == "none":
            raise ConfigError(f"unknown test-time augmentation {mode!r}", hint=f"use one of {', '.join(TTA_MODES)}")
        self.model, self.mode, self.size = model, mode, size

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The views of batch *x* the model sees."""
        views = [x]
        if self.mode.startswith("crops"):
            s, h, w = self.size, x.shape[-2], x.shape[-1]
            top, left = (h - s) // 2, (w - s) // 2
            views = [x[..., :s, :s], x[..., :s, w - s:], x[..., h - s:, :s], x[..., h - s:, w - s:],
                     x[..., top:top + s, left:left + s]]
        if self.mode.endswith("flip"):
            views += [v.flip(-1) for v in views]
        return views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = self.views(x)
        probs = sum(torch.softmax(self.model(v).float(), dim=1) for v in views) / len(views)
        return probs.clamp_min(1e-12).log()


def tta_input(input_spec: InputSpec, mode: str) -> InputSpec:
    """The input the loader makes for *mode*: for crops, the image at size / crop_pct, whole."""
    import dataclasses

    if not mode.startswith("crops"):
        return input_spec
    return dataclasses.replace(input_spec, size=int(round(input_spec.size / input_spec.crop_pct)), crop_pct=1.0)


def with_tta(model, input_spec: InputSpec, mode: str | None):
    """(model, loader input spec) for test-time augmentation *mode* (none: the model itself)."""
    if not mode or mode == "none":
        return model, input_spec
    return TestTimeAugmentation(model, mode, input_spec.size).eval(), tta_input(input_spec, mode)


def class_mapping(data_classes: list[str], ckpt_classes: list[str]) -> torch.Tensor:
    """Map dataset label indices to checkpoint output indices by class name; mismatches are errors."""
    index = {name: i for i, name in enumerate(ckpt_classes)}
    missing = [c for c in data_classes if c not in index]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:5])
        raise CheckpointError(
            f"the dataset has class(es) {shown} that the checkpoint does not know; it was trained on "
            f"{len(ckpt_classes)} classes: {', '.join(ckpt_classes[:10])}{'...' if len(ckpt_classes) > 10 else ''}",
            hint="evaluate on data with the checkpoint's class names",
        )
    return torch.tensor([index[c] for c in data_classes], dtype=torch.long)


def images_loader(images, input_spec: InputSpec, batch_size: int, num_workers: int | str = "auto",
                  worker_start: str = "auto"):
    """Unaugmented, unshuffled batches of *images* as a model with *input_spec* takes them. Images in files are read
    and decoded by *num_workers* loader workers ("auto": one per core but one, as in training; in-memory images
    need none)."""
    return build_loader(images, ImageTransform(input_spec), batch_size, shuffle=False, num_workers=num_workers,
                        worker_start=worker_start)


def evaluate_images(model, images, input_spec: InputSpec, *, device, batch_size: int = 512, class_map=None,
                    amp_dtype=None, epoch: int = 0, stage: str = "", split: str = "test",
                    emit: Callable | None = None, tta: str | None = None, num_workers: int | str = "auto",
                    worker_start: str = "auto") -> dict[str, Any]:
    """Loss, top-1 and top-5 of *model* on *images* (this process alone, no collective), with test-time
    augmentation *tta* (see :class:`TestTimeAugmentation`); emits an ``EvalEnd`` through *emit* when given."""
    from vistrain.engine.loop import evaluate

    model, input_spec = with_tta(model, input_spec, tta)
    kwargs = {"emit": emit} if emit is not None else {}
    loader = images_loader(images, input_spec, batch_size, num_workers, worker_start)
    return evaluate(model, loader, device=device, amp_dtype=amp_dtype,
                    epoch=epoch, stage=stage, split=split, class_map=class_map, reduce=False, **kwargs)


@torch.no_grad()
def split_logits(model, images, input_spec: InputSpec, device, class_map=None, batch_size: int = 512,
                 tta: str | None = None, num_workers: int | str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels in the model's class order) of *model* over *images*."""
    from vistrain.engine.loop import predict_logits

    model, input_spec = with_tta(model, input_spec, tta)
    logits, targets = predict_logits(model, images_loader(images, input_spec, batch_size, num_workers), device=device)
    return logits.float(), (class_map[targets] if class_map is not None else targets)


def scores(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> dict[str, Any]:
    """Loss, top-1, top-5 and count of *logits* against *labels*, the per-class figures of
    :class:`~vistrain.metrics.ClassMetrics` (``classes``, and its summary's keys), with the ECE (15 bins) and
    reliability table of their softmax at *temperature* (the loss too is at that temperature; top-k does not
    depend on it)."""
    import torch.nn.functional as F

    from vistrain.calibration import reliability
    from vistrain.engine.loop import topk_correct
    from vistrain.metrics import ClassMetrics

    n = len(labels)
    if not n:
        raise DataError("no readable image to evaluate", hint="check the dataset with 'vistrain datasets check'")
    scaled = logits / temperature
    c1, c5 = topk_correct(scaled, labels, (1, 5))
    table = reliability(torch.softmax(scaled, dim=1).numpy(), labels.numpy())
    per_class = ClassMetrics.from_predictions(labels.numpy(), scaled.argmax(dim=1).numpy(), scaled.shape[1])
    return {"loss": float(F.cross_entropy(scaled, labels)), "top1": int(c1) / n, "top5": int(c5) / n,
            "num_samples": n, "ece": table.ece, "reliability": table, "temperature": temperature,
            "classes": per_class, **per_class.summary()}


def checkpoint_source(ckpt: dict, data_spec: str | None = None, *, download: bool = False, labels_per_class=...):
    """(source, data config) of *data_spec* (default: the dataset the checkpoint trained on), with the checkpoint's
    own split seed and fractions, so ``prepare_data`` splits it as the run did. *labels_per_class* overrides
    the saved setting when given."""
    from vistrain import checkpoint
    from vistrain.data.prepare import load_source

    data_cfg = checkpoint.saved_config(ckpt).data
    update: dict[str, Any] = {"name": data_spec or data_cfg.name, "download": download, "unlabelled": None}
    if labels_per_class is not ...:
        update["labels_per_class"] = labels_per_class
    data_cfg = data_cfg.model_copy(update=update)
    return load_source(data_cfg.name, data_cfg), data_cfg


def checkpoint_data(ckpt: dict, data_spec: str | None = None, **kwargs):
    """(source, splits) of *data_spec* split as the checkpoint's run split it (see :func:`checkpoint_source`)."""
    from vistrain.data.prepare import prepare_data

    source, data_cfg = checkpoint_source(ckpt, data_spec, **kwargs)
    return source, prepare_data(source, data_cfg)


def pick_split(ckpt: dict, data_spec: str, split: str, source, data_cfg) -> tuple[Any, str]:
    """The images of *split* (auto: the held-out test split of the dataset the checkpoint trained on, else its
    val split; another dataset's own test split, else all of it; all: its training pool and its own val and test
    splits); returns (images, split name)."""
    from vistrain import checkpoint
    from vistrain.data.prepare import prepare_data

    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}", hint="use auto, val, test or all")
    if split == "all":
        return source.all_images(), split
    prepared = prepare_data(source, data_cfg)
    if split == "auto":
        if data_spec == checkpoint.trained_on(ckpt):
            split = "test" if prepared.test is not None else "val"
        else:
            split = "test" if source.test is not None else "all"
    if split == "val":
        return prepared.val, split
    if split == "test":
        if prepared.test is None:
            raise DataError(f"dataset {data_spec!r} has no test split", hint="use --split val or --split all")
        return prepared.test, split
    return source.all_images(), split


def evaluate_checkpoint(checkpoint_path, data_spec: str, *, split: str = "auto", batch_size: int = 512,
                        device: str = "auto", download: bool = False, tta: str = "none",
                        num_workers: int | str = "auto") -> dict:
    """Evaluate a checkpoint on a dataset split; returns loss, top1, top5, count, split and skipped files."""
    from vistrain import checkpoint
    from vistrain.engine.device import select_device
    from vistrain.models.factory import load_model

    dev = select_device(device)
    model, ckpt, input_spec = load_model(checkpoint_path, dev)
    source, data_cfg = checkpoint_source(ckpt, data_spec, download=download)
    mapping = class_mapping(source.classes, checkpoint.classes_of(ckpt))
    images, split = pick_split(ckpt, data_spec, split, source, data_cfg)
    result = scores(*split_logits(model, images, input_spec, dev, mapping, batch_size, tta, num_workers),
                    checkpoint.temperature(ckpt))
    result.update(tta=tta, split=split, dataset=data_spec, skipped=source.skipped, notes=source.notes,
                  num_classes=len(checkpoint.classes_of(ckpt)), class_names=list(checkpoint.classes_of(ckpt)))
    return result


@dataclass
class OwnData:
    """A checkpoint's model with the dataset it trained on, split as its run split it."""

    model: Any
    ckpt: dict
    input_spec: InputSpec
    device: Any
    data_spec: str
    source: Any
    data_cfg: Any
    mapping: torch.Tensor

    @classmethod
    def load(cls, checkpoint_path, device: str = "auto") -> OwnData:
        from vistrain import checkpoint
        from vistrain.engine.device import select_device
        from vistrain.models.factory import load_model

        dev = select_device(device)
        model, ckpt, input_spec = load_model(checkpoint_path, dev)
        data_spec = checkpoint.trained_on(ckpt)
        if not data_spec:
            raise DataError(f"checkpoint {str(checkpoint_path)!r} does not record its dataset")
        source, data_cfg = checkpoint_source(ckpt)
        mapping = class_mapping(source.classes, checkpoint.classes_of(ckpt))
        return cls(model, ckpt, input_spec, dev, data_spec, source, data_cfg, mapping)

    def split(self, name: str):
        """The images of split *name* (see :func:`pick_split`)."""
        return pick_split(self.ckpt, self.data_spec, name, self.source, self.data_cfg)[0]


@torch.no_grad()
def split_probabilities(checkpoint_path, split: str = "val", *, batch_size: int = 512, device: str = "cpu"):
    """Softmax outputs and true labels (in the checkpoint's class order) on a split of the dataset the checkpoint
    trained on; returns (probs (N, C) array, labels (N,) array, images, dataset spec, checkpoint)."""
    from vistrain import checkpoint

    own = OwnData.load(checkpoint_path, device)
    images = own.split(split)
    logits, labels = split_logits(own.model, images, own.input_spec, own.device, own.mapping, batch_size)
    probs = torch.softmax(logits / checkpoint.temperature(own.ckpt), dim=1)
    return probs.numpy(), labels.numpy(), images, own.data_spec, own.ckpt


def image_paths(paths: list[Path]) -> list[str]:
    """The image files *paths* name: a file as given (whatever its extension), a folder as every image below it
    (sorted, as ``images:DIR`` reads it). A folder without images is an error; a missing file is left for the
    reader to report as unreadable, beside the others."""
    from vistrain.data.imagefolder import check_decoders, images_below

    found: list[str] = []
    for path in paths:
        path = Path(path).expanduser()
        if not path.is_dir():
            found.append(str(path))
            continue
        found += images_below(path)[0]
    check_decoders(found, "to predict")
    return found


class Predictions:
    """Top-k (class, probability) of each readable image, in the order given, as batches finish: iterate for
    ``(path, [(class, probability), ...])``; :attr:`failed` then names the images that could not be read."""

    def __init__(self, checkpoint_path, paths: list[str], *, top_k: int = 5, device: str = "auto",
                 batch_size: int = 64, num_workers: int | str = "auto", tta: str = "none"):
        from vistrain import checkpoint
        from vistrain.data.imagefolder import FileImageSet
        from vistrain.engine.device import select_device
        from vistrain.models.factory import load_model

        self.device = select_device(device)
        model, ckpt, input_spec = load_model(checkpoint_path, self.device)
        self.model, input_spec = with_tta(model, input_spec, tta)
        self.classes = checkpoint.classes_of(ckpt)
        self.temperature = checkpoint.temperature(ckpt)
        self.paths, self.top_k = list(paths), min(top_k, len(self.classes))
        # each image's "label" is its index, so the batches say which images they hold (unreadable ones are left out)
        images = FileImageSet(self.paths, np.arange(len(self.paths)), input_spec.channels)
        self.loader = images_loader(images, input_spec, batch_size, num_workers)
        self.failed: list[str] = []

    def __len__(self) -> int:
        return len(self.paths)

    @torch.no_grad()
    def __iter__(self):
        for x, index in self.loader:  # the evaluation geometry, as eval uses
            logits = self.model(x.to(self.device)).float() / self.temperature
            values, idx = torch.softmax(logits, dim=1).topk(self.top_k, dim=1)
            for i, vs, ks in zip(index.tolist(), values.cpu().tolist(), idx.cpu().tolist()):
                yield self.paths[i], [(self.classes[k], float(v)) for v, k in zip(vs, ks)]
        self.failed = self.loader.take_skipped()


def knn_eval_checkpoint(checkpoint_path, data_spec: str | None = None, *, k: int = 3, metric: str = "l2",
                        batch_size: int = 512, device: str = "auto") -> dict:
    """k-NN on a checkpoint's embedding: memorise the train split's embeddings, classify the val split; returns
    top1, top5, loss and counts.

    The split is the one the checkpoint was trained with (same seed and fraction), so val stays held out.
    The dataset's own labels are used, so its classes need not be the checkpoint's.
    """
    from vistrain import checkpoint
    from vistrain.engine.device import select_device
    from vistrain.models.factory import load_model
    from vistrain.models.knn import KNNClassifier

    dev = select_device(device)
    backbone, ckpt, input_spec = load_model(checkpoint_path, dev)
    if not hasattr(backbone, "forward_features"):
        raise ConfigError(f"the model in {str(checkpoint_path)!r} has no forward_features()",
                          hint="k-NN evaluation needs a model that exposes its embedding")
    _source, data = checkpoint_data(ckpt, data_spec, labels_per_class=None)
    try:
        model = KNNClassifier(len(data.classes), k=k, metric=metric, backbone=backbone).to(dev)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="use --k 1 or more and --metric l2 or cosine") from None
    stored = model.fit(images_loader(data.train, input_spec, batch_size), dev)
    result = evaluate_images(model, data.val, input_spec, device=dev, batch_size=batch_size, split="val")
    result.update(dataset=data_spec or checkpoint.trained_on(ckpt), references=stored, k=k, metric=metric,
                  num_classes=len(data.classes),
                  embedding_dim=int(model.bank.shape[1]))
    return result


@dataclass
class Calibrated:
    """A checkpoint with its fitted temperature, and the scores before and after on val (and test)."""

    ckpt: dict
    temperature: float
    val_count: int
    report: dict[str, tuple[dict, dict]]


def calibrate_checkpoint(checkpoint_path, *, device: str = "auto", fit: Callable | None = None) -> Calibrated:
    """Temperature scaling of a checkpoint on the val split of its own dataset (as its run split it): T is fitted on
    val logits alone; the test split, when the run had one, is scored before and after for the report only."""
    from vistrain.calibration import fit_temperature

    own = OwnData.load(checkpoint_path, device)
    logits, labels = split_logits(own.model, own.split("val"), own.input_spec, own.device, own.mapping)
    temperature = (fit or fit_temperature)(logits, labels)
    report = {"val": (scores(logits, labels), scores(logits, labels, temperature))}
    try:
        test = own.split("test")
    except DataError:
        test = None
    if test is not None:  # scored after the fit, for the report
        t_logits, t_labels = split_logits(own.model, test, own.input_spec, own.device, own.mapping)
        report["test"] = (scores(t_logits, t_labels), scores(t_logits, t_labels, temperature))
    return Calibrated({**own.ckpt, "temperature": temperature}, temperature, len(labels), report)
