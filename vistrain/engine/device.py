"""Device selection, mixed precision and seeding."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
import os
import random

import numpy as np
import torch

from vistrain.errors import ConfigError


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}", hint="use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available", hint="use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) found")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' requested but MPS is not available", hint="use --device cpu or auto")
    return device


def amp_dtype(device: torch.device, amp: bool | str) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on *device*, or None for full precision.

    ``auto``: on for CUDA only; ``on``: bf16 where the device has it, else fp16; ``bf16``, ``fp16``: that one
    (fp16 trains with a gradient scaler, :func:`grad_scaler`); ``off`` (or False): none.
    """
    mode = ("on" if amp else "off") if isinstance(amp, bool) else str(amp)
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    cuda_bf16 = device.type != "cuda" or torch.cuda.is_bf16_supported()
    if mode == "fp16":
        return torch.float16
    if mode == "bf16":
        if not cuda_bf16:
            raise ConfigError("train.amp=bf16: this GPU has no bfloat16 support",
                              hint="use train.amp=fp16 (with a gradient scaler) or train.amp=on")
        return torch.bfloat16
    return torch.bfloat16 if cuda_bf16 else torch.float16


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """fp16 autocast needs a gradient scaler (its state is checkpointed); bf16 and full precision do not."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None


def prepare_model(model: torch.nn.Module, *, channels_last: bool = False, compile: bool = False,
                  wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> torch.nn.Module:
    """The module to train: *model* in channels-last format (in place: checkpoints hold the same tensors), then
    compiled with ``torch.compile``, then *wrap* (e.g. DDP) around it. *model* itself stays the one to save."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    trained = torch.compile(model) if compile else model
    return wrap(trained) if wrap is not None else trained


def input_format(channels_last: bool) -> torch.memory_format:
    """The memory format batches go to the device in."""
    return torch.channels_last if channels_last else torch.preserve_format


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context, or a no-op when *dtype* is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; deterministic mode also pins cuDNN/cuBLAS algorithms."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True


def rng_state() -> dict:
    """All RNG states as tensors/lists (safe for ``torch.load(weights_only=True)``)."""
    np_state = np.random.get_state()
    state = {
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved."""
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
