"""k-NN evaluation of a checkpoint's features: how well its embedding separates the classes."""

from __future__ import annotations

from pathlib import Path


def knn_eval_checkpoint(checkpoint: str | Path, data_spec: str | None = None, *, k: int = 3, metric: str = "l2",
                        batch_size: int = 512, device: str = "auto") -> dict:
    """Memorise the train split's embeddings, classify the val split; returns top1, top5, loss and counts.

    The split is the one the checkpoint was trained with (same seed and fraction), so val stays held out.
    The dataset's own labels are used, so its classes need not be the checkpoint's.
    """
    from vistrain.data.pipeline import ImageTransform, build_loader
    from vistrain.data.prepare import load_source, prepare_data
    from vistrain.engine.device import select_device
    from vistrain.engine.loop import evaluate
    from vistrain.errors import ConfigError
    from vistrain.inference import load_model, saved_data_config
    from vistrain.models.knn import KNNClassifier

    dev = select_device(device)
    backbone, ckpt, input_spec = load_model(checkpoint, dev)
    if not hasattr(backbone, "forward_features"):
        raise ConfigError(f"the model in {str(checkpoint)!r} has no forward_features()",
                          hint="k-NN evaluation needs a model that exposes its embedding")
    data_cfg = saved_data_config(ckpt)
    data_spec = data_spec or data_cfg.name
    data_cfg = data_cfg.model_copy(update={"name": data_spec, "labels_per_class": None})
    data = prepare_data(load_source(data_spec, data_cfg), data_cfg)
    try:
        model = KNNClassifier(len(data.classes), k=k, metric=metric, backbone=backbone).to(dev)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="use --k 1 or more and --metric l2 or cosine") from None
    transform = ImageTransform(input_spec)
    train = build_loader(data.train, transform, batch_size, shuffle=False, num_workers=0)
    val = build_loader(data.val, transform, batch_size, shuffle=False, num_workers=0)
    stored = model.fit(train, dev)
    result = evaluate(model, val, device=dev)
    result.update(dataset=data_spec, references=stored, k=k, metric=metric,
                  embedding_dim=int(model.bank.shape[1]))
    return result
