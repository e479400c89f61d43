"""Load a checkpoint as a ready model; evaluate it on a dataset or predict image files."""

from __future__ import annotations

from pathlib import Path

import torch

from vistrain.data.pipeline import ImageTransform, InputSpec, build_loader
from vistrain.errors import CheckpointError, DataError


def load_model(checkpoint: str | Path, device: torch.device | str = "cpu"):
    """Rebuild a checkpoint's model in eval mode; returns (model, checkpoint dict, InputSpec)."""
    from vistrain.engine.checkpoint import load_checkpoint
    from vistrain.models.factory import build_from_spec

    ckpt = load_checkpoint(checkpoint)
    try:
        spec, input_spec = ckpt["model"], InputSpec.from_dict(ckpt["input"])
        classes = ckpt["classes"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} lacks its model description ({exc})") from None
    model = build_from_spec(spec)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} does not match model {spec['name']!r}: {first}",
                              hint="the weights come from a different architecture or class count") from None
    if len(classes) != spec["num_classes"]:
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} lists {len(classes)} classes for a {spec['num_classes']}-class head")
    model.to(device).eval()
    return model, ckpt, input_spec


def saved_data_config(ckpt: dict):
    """The DataConfig a checkpoint was trained with (same split seed and fraction), unknown keys dropped."""
    from vistrain.config import DataConfig

    saved = dict((ckpt.get("config") or {}).get("data", {}))
    # Checkpoints from before data.test_fraction trained on every non-val image: no test split to carve.
    saved.setdefault("test_fraction", 0.0)
    return DataConfig.model_validate({k: v for k, v in saved.items() if k in DataConfig.model_fields})


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


def evaluate_checkpoint(checkpoint, data_spec: str, *, split: str = "auto", batch_size: int = 512,
                        device: str = "auto", download: bool = False) -> dict:
    """Evaluate a checkpoint on a dataset split; returns loss, top1, top5, count, split and skipped files."""
    from vistrain.data.prepare import load_source, prepare_data
    from vistrain.engine.device import select_device
    from vistrain.engine.loop import evaluate

    dev = select_device(device)
    model, ckpt, input_spec = load_model(checkpoint, dev)
    data_cfg = saved_data_config(ckpt)
    trained_on = ((ckpt.get("config") or {}).get("data") or {}).get("name")  # None for a foreign checkpoint
    data_cfg = data_cfg.model_copy(update={"name": data_spec, "download": download})
    source = load_source(data_spec, data_cfg)
    mapping = class_mapping(source.classes, ckpt["classes"])
    prepared = prepare_data(source, data_cfg) if split in ("auto", "val", "test") else None
    if split == "auto":
        if data_spec == trained_on:  # the held-out test split when the run had one
            split = "test" if prepared.test is not None else "val"
        else:
            split = "test" if source.test is not None else "all"
    if split == "val":
        images = prepared.val
    elif split == "test":
        if prepared.test is None:
            raise DataError(f"dataset {data_spec!r} has no test split", hint="use --split val or --split all")
        images = prepared.test
    elif split == "all":
        images = source.train
    else:
        raise DataError(f"unknown split {split!r}", hint="use auto, val, test or all")
    loader = build_loader(images, ImageTransform(input_spec), batch_size, shuffle=False, num_workers=0)
    result = evaluate(model, loader, device=dev, class_map=mapping)
    result.update(split=split, dataset=data_spec, skipped=source.skipped, notes=source.notes)
    return result


@torch.no_grad()
def predict_files(checkpoint, paths: list[Path], *, top_k: int = 5, device: str = "auto"):
    """Top-k (class, probability) per readable image; returns (results, unreadable paths)."""
    from vistrain.data.imagefolder import read_image
    from vistrain.engine.device import select_device

    dev = select_device(device)
    model, ckpt, input_spec = load_model(checkpoint, dev)
    transform = ImageTransform(input_spec)
    classes = ckpt["classes"]
    results, failed = [], []
    for path in paths:
        img = read_image(path)
        if img is None:
            failed.append(str(path))
            continue
        probs = torch.softmax(model(transform(img).unsqueeze(0).to(dev)).float(), dim=1)[0].cpu()
        k = min(top_k, len(classes))
        values, idx = probs.topk(k)
        results.append((str(path), [(classes[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())]))
    return results, failed
