"""A checkpoint at work after training: evaluated on data, predicting image files, or as a k-NN embedding.

Every evaluation of a checkpoint goes through here: ``vistrain eval``, the run's final test split,
the report's val predictions and ``vistrain models knn-eval``. The checkpoint becomes a model through
:func:`vistrain.models.factory.load_model`; its data is prepared again the way its run prepared it
(same dataset, split seed and fractions), so a held-out split stays the same images.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vistrain.data.pipeline import ImageTransform, InputSpec, build_loader
from vistrain.errors import CheckpointError, ConfigError, DataError

SPLITS = ("auto", "val", "test", "all")


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


def images_loader(images, input_spec: InputSpec, batch_size: int):
    """Unaugmented, unshuffled batches of *images* as a model with *input_spec* takes them."""
    return build_loader(images, ImageTransform(input_spec), batch_size, shuffle=False, num_workers=0)


def evaluate_images(model, images, input_spec: InputSpec, *, device, batch_size: int = 512, class_map=None,
                    amp_dtype=None, epoch: int = 0, stage: str = "", split: str = "test",
                    emit: Callable | None = None) -> dict[str, Any]:
    """Loss, top-1 and top-5 of *model* on *images* (this process alone, no collective); emits an ``EvalEnd``
    through *emit* when given."""
    from vistrain.engine.loop import evaluate

    kwargs = {"emit": emit} if emit is not None else {}
    return evaluate(model, images_loader(images, input_spec, batch_size), device=device, amp_dtype=amp_dtype,
                    epoch=epoch, stage=stage, split=split, class_map=class_map, reduce=False, **kwargs)


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
    val split; another dataset's own test split, else all of it); returns (images, split name)."""
    from vistrain import checkpoint
    from vistrain.data.prepare import prepare_data

    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}", hint="use auto, val, test or all")
    if split == "all":
        return source.train, split
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
    return source.train, split


def evaluate_checkpoint(checkpoint_path, data_spec: str, *, split: str = "auto", batch_size: int = 512,
                        device: str = "auto", download: bool = False) -> dict:
    """Evaluate a checkpoint on a dataset split; returns loss, top1, top5, count, split and skipped files."""
    from vistrain import checkpoint
    from vistrain.engine.device import select_device
    from vistrain.models.factory import load_model

    dev = select_device(device)
    model, ckpt, input_spec = load_model(checkpoint_path, dev)
    source, data_cfg = checkpoint_source(ckpt, data_spec, download=download)
    mapping = class_mapping(source.classes, checkpoint.classes_of(ckpt))
    images, split = pick_split(ckpt, data_spec, split, source, data_cfg)
    result = evaluate_images(model, images, input_spec, device=dev, batch_size=batch_size, class_map=mapping)
    result.update(split=split, dataset=data_spec, skipped=source.skipped, notes=source.notes,
                  num_classes=len(checkpoint.classes_of(ckpt)))
    return result


@torch.no_grad()
def split_probabilities(checkpoint_path, split: str = "val", *, batch_size: int = 512, device: str = "cpu"):
    """Softmax outputs and true labels (in the checkpoint's class order) on a split of the dataset the checkpoint
    trained on; returns (probs (N, C) array, labels (N,) array, images, dataset spec, checkpoint)."""
    from vistrain import checkpoint
    from vistrain.engine.device import select_device
    from vistrain.engine.loop import predict_logits
    from vistrain.models.factory import load_model

    dev = select_device(device)
    model, ckpt, input_spec = load_model(checkpoint_path, dev)
    data_spec = checkpoint.trained_on(ckpt)
    if not data_spec:
        raise DataError(f"checkpoint {str(checkpoint_path)!r} does not record its dataset")
    source, data_cfg = checkpoint_source(ckpt)
    mapping = class_mapping(source.classes, checkpoint.classes_of(ckpt))
    images, _ = pick_split(ckpt, data_spec, split, source, data_cfg)
    logits, targets = predict_logits(model, images_loader(images, input_spec, batch_size), device=dev)
    return torch.softmax(logits, dim=1).numpy(), mapping[targets].numpy(), images, data_spec, ckpt


@torch.no_grad()
def predict_files(checkpoint_path, paths: list[Path], *, top_k: int = 5, device: str = "auto"):
    """Top-k (class, probability) per readable image; returns (results, unreadable paths)."""
    from vistrain import checkpoint
    from vistrain.data.decode import ImageDecodeError, read_bytes
    from vistrain.engine.device import select_device
    from vistrain.models.factory import load_model

    dev = select_device(device)
    model, ckpt, input_spec = load_model(checkpoint_path, dev)
    transform = ImageTransform(input_spec)
    classes = checkpoint.classes_of(ckpt)
    results, failed = [], []
    for path in paths:
        try:
            x = transform.from_bytes(read_bytes(path), repr(str(path)))  # the evaluation geometry, as eval uses
        except ImageDecodeError:
            failed.append(str(path))
            continue
        probs = torch.softmax(model(x.unsqueeze(0).to(dev)).float(), dim=1)[0].cpu()
        k = min(top_k, len(classes))
        values, idx = probs.topk(k)
        results.append((str(path), [(classes[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())]))
    return results, failed


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
