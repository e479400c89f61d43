"""Load pretrained weights from a local ``.safetensors`` or ``.pth`` file into a model.

Keys whose shapes differ only because of the head (a new class count) are skipped, and a
first conv trained on a different channel count is adapted, so a 1000-class RGB checkpoint
can start a 10-class grayscale model. Anything else that does not match is an error.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from vistrain.errors import CheckpointError

HINT = "pass a .safetensors or .pth file saved from the same architecture"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file; ``.pth`` is read with ``weights_only=True`` (never unpickles code)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"pretrained weights {str(path)!r} not found", hint=HINT)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"cannot read pretrained weights {str(path)!r}: {first[:160]}", hint=HINT) from None
    # Common wrappers: {"state_dict": ...} (Lightning, vistrain checkpoints) and {"model": ...}.
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{str(path)!r} does not hold a state dict of tensors", hint=HINT)
    return {k.removeprefix("module."): v for k, v in state.items()}


def _adapt_input_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """Re-shape a first-conv weight to *channels* inputs, keeping the response to a gray image."""
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-channels // weight.shape[1])
    return weight.repeat(1, reps, 1, 1)[:, :channels] * (weight.shape[1] / channels)


def load_pretrained(model: nn.Module, path: str | Path) -> list[str]:
    """Copy matching tensors from *path* into *model*; returns the skipped (head) keys."""
    state = read_state_dict(path)
    own = model.state_dict()
    unexpected = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    if unexpected or missing:
        sample = ", ".join((unexpected or missing)[:3])
        raise CheckpointError(
            f"weights {str(path)!r} do not fit {type(model).__name__}: {len(missing)} missing and "
            f"{len(unexpected)} unexpected key(s), e.g. {sample}", hint=HINT)
    num_classes = getattr(model, "num_classes", None)
    skipped, load = [], {}
    for key, value in state.items():
        target = own[key]
        if value.shape == target.shape:
            load[key] = value
        elif value.ndim == 4 and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]:
            load[key] = _adapt_input_conv(value, target.shape[1]).to(target.dtype)
        elif target.shape[0] == num_classes and value.shape[1:] == target.shape[1:]:
            skipped.append(key)  # the head, trained for a different number of classes
        else:
            raise CheckpointError(f"weights {str(path)!r}: {key} has shape {tuple(value.shape)}, the model "
                                  f"needs {tuple(target.shape)}", hint=HINT)
    own.update(load)
    model.load_state_dict(own)
    return skipped


def with_pretrained(model: nn.Module, pretrained: str | None) -> nn.Module:
    """Return *model*, first loading *pretrained* into it when a path is given (built-in factories)."""
    if pretrained:
        if pretrained == "hub":
            raise CheckpointError(f"{type(model).__name__} has no hub weights",
                                  hint="pass --pretrained PATH to a .safetensors or .pth file")
        load_pretrained(model, pretrained)
    return model
