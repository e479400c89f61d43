"""Checkpoint averaging: the uniform average of several checkpoints' weights of one model (``vistrain average``).

Averaging the weights of the last epochs of a run (Izmailov et al. 2018's SWA with a uniform
average; Polyak averaging) lands in a flatter region than any one of them. The checkpoints must hold
the same model (spec, classes and weight names). Floating-point tensors are averaged; integer buffers
(BatchNorm's batch counter) are the last checkpoint's. BatchNorm running statistics of averaged
weights are not the average of the statistics, so they are recomputed with
``torch.optim.swa_utils.update_bn`` over the training split of the run's dataset, unaugmented.
The result is a checkpoint for ``eval``, ``predict``, ``export`` and teachers, not for ``--resume``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vistrain import checkpoint


@dataclass
class Averaged:
    """An averaged checkpoint and what went into it."""

    ckpt: dict
    sources: list[str]
    bn_images: int  # images BatchNorm statistics were recomputed on (0: the model has no BatchNorm)


def has_batchnorm(model: torch.nn.Module) -> bool:
    """Whether *model* has a BatchNorm layer (whose running statistics averaging must recompute)."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def batchnorm_from_images(model: torch.nn.Module, ckpt: dict, images, device: torch.device,
                          batch_size: int = 256) -> int:
    """Fresh BatchNorm statistics of *model* over *images*, unaugmented, prepared as *ckpt*'s model reads them;
    returns the number of images (0 when the model has no BatchNorm, which is left as it is)."""
    from torch.optim.swa_utils import update_bn

    from vistrain.data.pipeline import InputSpec
    from vistrain.inference import images_loader

    if not has_batchnorm(model):
        return 0
    input_spec = InputSpec.from_dict(checkpoint.model_description(ckpt)[1])
    update_bn(images_loader(images, input_spec, batch_size), model, device=device)
    model.eval()
    return len(images)


def recompute_batchnorm(model: torch.nn.Module, ckpt: dict, data_spec: str | None, device: torch.device,
                        batch_size: int = 256) -> int:
    """Fresh BatchNorm statistics over the training split of *data_spec* (default: the checkpoint's dataset);
    returns the number of images (0 when the model has no BatchNorm)."""
    from vistrain.inference import checkpoint_data

    if not has_batchnorm(model):
        return 0  # without reading the dataset
    _source, splits = checkpoint_data(ckpt, data_spec)
    return batchnorm_from_images(model, ckpt, splits.train, device, batch_size)


def average_checkpoints(paths: list[Path], *, data_spec: str | None = None, update_bn: bool = True,
                        device: str = "auto") -> Averaged:
    """Average *paths* (see the module); the checkpoint dict is the last one's with the averaged weights."""
    from vistrain.engine.device import select_device
    from vistrain.models.factory import build_from_spec

    names = [str(p) for p in paths]
    ckpts = [checkpoint.load_checkpoint(p) for p in paths]
    weights = checkpoint.average_weights(ckpts, names)
    last = ckpts[-1]
    model = build_from_spec(checkpoint.model_description(last)[0])
    model.load_state_dict(weights)
    dev = select_device(device)
    model.to(dev)
    bn_images = recompute_batchnorm(model, last, data_spec, dev) if update_bn else 0
    ckpt = checkpoint.averaged_checkpoint(last, model.state_dict(), [Path(n).name for n in names])
    return Averaged(ckpt, names, bn_images)
